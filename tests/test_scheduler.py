"""The probe scheduler: spread start offsets, no overlapping runs, lag measured."""

from __future__ import annotations

import asyncio
import itertools
import time

from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.scheduler import ProbeScheduler, ScheduledTarget, start_offsets
from probes.base import ProbeResult
from probes.http import HttpTarget


class RecordingProbe:
    """A probe that takes `duration` seconds and records how many runs overlap."""

    def __init__(self, name: str, duration: float) -> None:
        self.name = name
        self.duration = duration
        self.running = 0
        self.max_running = 0
        self.starts: list[float] = []

    async def run(self, started_at: float) -> ProbeResult:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.starts.append(started_at)
        try:
            await asyncio.sleep(self.duration)
        finally:
            self.running -= 1
        return ProbeResult(target=self.name, started_at=started_at, ok=True,
                           latency=self.duration)

    async def aclose(self) -> None:
        pass


def target(name: str, interval: float) -> HttpTarget:
    return HttpTarget(name=name, type="http", url="http://127.0.0.1:1/", interval=interval,
                      timeout=interval)


def test_targets_with_the_same_interval_are_spread_evenly() -> None:
    offsets = start_offsets({"a": 10, "b": 10, "c": 10, "d": 10, "slow": 60}, now=1000.0)
    same = sorted(offsets[n] for n in "abcd")
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(same)]
    assert gaps == [2.5, 2.5, 2.5]
    assert all(1000 < t < 1011 for t in offsets.values())


def run_scheduler(probes: dict[str, RecordingProbe], interval: float, seconds: float,
                  metrics: Metrics) -> list[ProbeResult]:
    received: list[ProbeResult] = []
    targets = {name: ScheduledTarget(target(name, interval), probe)
               for name, probe in probes.items()}

    async def scenario() -> None:
        scheduler = ProbeScheduler(targets, received.append, metrics)
        scheduler.start()
        await asyncio.sleep(seconds)
        scheduler.shutdown()

    asyncio.run(scenario())
    return received


def test_every_target_runs_on_its_interval_and_lag_is_measured() -> None:
    metrics = Metrics(CollectorRegistry())
    probes = {f"t{i}": RecordingProbe(f"t{i}", 0.001) for i in range(4)}
    received = run_scheduler(probes, interval=0.2, seconds=1.6, metrics=metrics)
    for probe in probes.values():
        assert 5 <= len(probe.starts) <= 8
        gaps = [b - a for a, b in itertools.pairwise(probe.starts)]
        assert all(0.1 < gap < 0.3 for gap in gaps)
    assert {r.target for r in received} == set(probes)
    lag_count = metrics.registry.get_sample_value("primewatch_scheduler_lag_seconds_count")
    assert lag_count == sum(len(p.starts) for p in probes.values())
    assert metrics.registry.get_sample_value("primewatch_probe_success", {"target": "t0"}) == 1


def test_a_slow_probe_never_overlaps_itself_and_skips_are_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    slow = RecordingProbe("slow", duration=0.5)
    run_scheduler({"slow": slow}, interval=0.1, seconds=1.7, metrics=metrics)
    assert slow.max_running == 1
    assert 2 <= len(slow.starts) <= 4
    skipped = metrics.registry.get_sample_value("primewatch_probes_skipped_total",
                                                {"target": "slow"})
    assert skipped is not None and skipped >= 3


def test_a_probe_that_raises_does_not_stop_the_schedule() -> None:
    class Broken(RecordingProbe):
        async def run(self, started_at: float) -> ProbeResult:
            self.starts.append(started_at)
            raise RuntimeError("bug")

    metrics = Metrics(CollectorRegistry())
    broken = Broken("broken", 0)
    healthy = RecordingProbe("healthy", 0.001)
    started = time.monotonic()
    received = run_scheduler({"broken": broken, "healthy": healthy}, 0.2, 1.0, metrics)
    assert time.monotonic() - started < 5
    assert len(broken.starts) >= 3  # still scheduled after raising
    assert {r.target for r in received} == {"healthy"}


def test_shutdown_lets_running_probes_finish_so_their_results_count() -> None:
    metrics = Metrics(CollectorRegistry())
    probe = RecordingProbe("p", duration=0.4)
    received: list[ProbeResult] = []

    async def scenario() -> None:
        scheduler = ProbeScheduler({"p": ScheduledTarget(target("p", 5.0), probe)},
                                   received.append, metrics)
        scheduler.start()
        while not probe.starts:
            await asyncio.sleep(0.01)
        await scheduler.stop(timeout=2.0)

    asyncio.run(scenario())
    assert len(probe.starts) == 1
    assert [r.target for r in received] == ["p"]
