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


def test_an_instance_silent_for_three_heartbeats_pages_unless_it_said_goodbye() -> None:
    from monitor.storage.models import InstanceRow
    from monitor.watchdog import silent_instances

    def member(name: str, role: str, heartbeat: float) -> InstanceRow:
        return InstanceRow(instance=name, region=f"r-{name}", role=role, host="h", pid=1,
                           started_at=T0, heartbeat_at=heartbeat)

    members = [member("me", "leader", T0), member("gone", "follower", T0 - 16),
               member("fresh", "follower", T0 - 4), member("left", "stopped", T0 - 600)]
    alerts = silent_instances(members, "me", interval=5.0, now=T0)
    assert [a.key for a in alerts] == ["instance:gone"]
    assert alerts[0].labels["region"] == "r-gone" and "16 s" in alerts[0].summary
