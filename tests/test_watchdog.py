"""Watching the watcher: a target primewatch stops probing pages on its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.watchdog import stalled_targets
from tests.conftest import make_settings

T0 = 1_767_225_600.0


def test_a_target_silent_for_three_intervals_is_stalled_and_others_are_not() -> None:
    settings = make_settings(targets=[
        {"name": "fast", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"},
        {"name": "slow", "type": "http", "url": "http://127.0.0.1:1/", "interval": "5m"},
        {"name": "never", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"},
    ], slos=[])
    last_run = {"fast": T0 + 60, "slow": T0 + 60}
    # 35 s after the last fast probe: more than 3 × 10 s; slow is well within 3 × 5 min.
    alerts = stalled_targets(settings.targets, last_run, running_since=T0, now=T0 + 95)
    assert sorted(a.key for a in alerts) == ["stalled:fast", "stalled:never"]
    fast = next(a for a in alerts if a.key == "stalled:fast")
    assert fast.severity == "page" and fast.since == T0 + 60
    assert "not probing fast" in fast.title and "35 s" in fast.summary
    # Just started: nothing has had three intervals yet.
    assert stalled_targets(settings.targets, {}, running_since=T0, now=T0 + 20) == []


def test_liveness_metrics_for_an_external_prometheus() -> None:
    metrics = Metrics(CollectorRegistry())
    assert metrics.registry.get_sample_value("primewatch_up") == 1.0
    metrics.last_evaluation.set(T0)
    assert metrics.registry.get_sample_value(
        "primewatch_last_evaluation_timestamp_seconds") == T0
