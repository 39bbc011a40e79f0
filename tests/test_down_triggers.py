"""Consecutive-failure down alerts, decision triggers and phases over stored results."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.down import DownDetector
from monitor.ingest import ResultWriter
from monitor.phases import TriggerTracker, phase_statuses, statistic
from monitor.slo_engine import SloEngine
from probes.base import ProbeResult

T0 = 1_767_225_600


def config() -> Settings:
    return Settings.model_validate({
        "targets": [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/",
                     "down_after": 3},
                    {"name": "db", "type": "sql", "url": "sqlite:///x.db"}],
        "slos": [{"name": "fast", "target": "api", "sli": "latency", "threshold": "500ms",
                  "objective": 90, "window": "1h"},
                 {"name": "up", "target": "api", "sli": "availability", "objective": 99,
                  "window": "1d"}],
        "phases": [{"name": "p1", "title": "Phase 1", "slos": ["fast", "up"]}],
        "triggers": [
            {"name": "slow", "target": "api", "measure": "latency", "stat": "p95",
             "above": "500ms", "window": "1h", "phase": "p1"},
            {"name": "big-db", "target": "db", "measure": "database_size_bytes",
             "stat": "last", "above": "10GB", "window": "1h"}]})


def probe(t: float, ok: bool = True, latency: float = 0.05, target: str = "api",
          **extra: object) -> ProbeResult:
    return ProbeResult(target=target, started_at=t, ok=ok, latency=latency,
                       error=None if ok else "status 503", **extra)  # type: ignore[arg-type]


def test_down_after_consecutive_failures_and_up_after_one_success(engine: Engine) -> None:
    settings = config()
    write = ResultWriter(engine, settings.slos)
    detector = DownDetector(settings.targets[:1])
    write([probe(T0, ok=True), probe(T0 + 10, ok=False), probe(T0 + 20, ok=False)])
    [state] = detector.evaluate(engine, T0 + 25)
    assert not state.down and state.transition is None and state.failures == 2
    write([probe(T0 + 30, ok=False)])
    [state] = detector.evaluate(engine, T0 + 35)
    assert state.down and state.transition == "fired" and state.since == T0 + 10
    assert "3 consecutive failures; last: status 503" in state.reason
    [state] = detector.evaluate(engine, T0 + 36)
    assert state.down and state.transition is None  # still down: no second alert
    write([probe(T0 + 40, ok=True)])
    [state] = detector.evaluate(engine, T0 + 45)
    assert not state.down and state.transition == "resolved"


def test_a_target_in_maintenance_is_never_down(engine: Engine) -> None:
    settings = config()
    ResultWriter(engine, settings.slos)([probe(T0 + i, ok=False) for i in range(5)])
    detector = DownDetector(settings.targets[:1], suppressed=lambda _t, _now: True)
    [state] = detector.evaluate(engine, T0 + 10)
    assert not state.down and state.transition is None


def test_triggers_fire_on_measured_data_and_remember_since(engine: Engine) -> None:
    settings = config()
    write = ResultWriter(engine, settings.slos)
    write([probe(T0 + i * 10, latency=0.1) for i in range(100)]
          + [probe(T0 + i * 10, target="db", values={"database_size_bytes": 9e9})
             for i in range(3)])
    tracker = TriggerTracker(settings.triggers)
    slow, big = tracker.evaluate(engine, T0 + 1000)
    assert not slow.firing and slow.value == 0.1 and slow.samples == 100
    assert not big.firing and big.value == 9e9
    write([probe(T0 + 1000 + i, latency=0.9) for i in range(20)]
          + [probe(T0 + 1100, target="db", values={"database_size_bytes": 1.2e10})])
    slow, big = tracker.evaluate(engine, T0 + 1200)
    assert slow.firing and slow.transition == "fired" and slow.since == T0 + 1200
    assert big.firing and big.value == 1.2e10
    peek = tracker.evaluate(engine, T0 + 1300, track=False)
    assert peek[0].firing and peek[0].transition is None and peek[0].since == T0 + 1200


def test_statistics() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert statistic(samples, "p95", 60) == 95.0
    assert statistic(samples, "max", 60) == 100.0
    assert statistic(samples, "mean", 60) == 50.5
    assert statistic(samples, "sum", 100) == 5050.0
    assert statistic(samples, "rate", 100) == 50.5
    assert statistic([], "p95", 60) is None


def test_a_phase_is_met_only_when_all_its_slos_are(engine: Engine) -> None:
    settings = config()
    evaluator = SloEngine(engine)
    [phase] = phase_statuses(settings.phases, {s.name: s for s in evaluator.evaluate(
        settings.slos, T0)})
    assert phase.state == "unknown"  # no data yet
    # Half an hour every 30 s, all fast; then 25 minutes all slow: the hour's budget
    # (10% of the ~120 probes it holds) is overspent, so `fast` breaches.
    ResultWriter(engine, settings.slos)([probe(T0 + 30 * i, latency=0.1) for i in range(50)])
    [phase] = phase_statuses(settings.phases, {s.name: s for s in evaluator.evaluate(
        settings.slos, T0 + 1500)})
    assert phase.state == "met"
    ResultWriter(engine, settings.slos)([probe(T0 + 1500 + 30 * i, latency=0.9)
                                         for i in range(50)])
    [phase] = phase_statuses(settings.phases, {s.name: s for s in evaluator.evaluate(
        settings.slos, T0 + 3000)})
    assert phase.state == "not_met"
    assert dict(phase.slos) == {"fast": "breaching", "up": "ok"}
