"""Probe scheduling on APScheduler 3 (asyncio): one interval job per target.

Targets sharing an interval get evenly spread start offsets so they do not fire
together; `max_instances=1` forbids overlapping runs of one target (a skipped run is
counted); lag (actual start − planned start) is measured on every run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.metrics import Metrics
from monitor.observability import report_exception
from probes.base import Probe, ProbeResult, TargetConfig

log = logging.getLogger(__name__)
logging.getLogger("apscheduler").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class ScheduledTarget:
    config: TargetConfig
    probe: Probe


def start_offsets(targets: Mapping[str, float], now: float) -> dict[str, float]:
    """First-run times: targets with the same interval are spread evenly across it."""
    by_interval: dict[float, list[str]] = defaultdict(list)
    for name, interval in targets.items():
        by_interval[interval].append(name)
    first: dict[str, float] = {}
    for interval, names in by_interval.items():
        names.sort()
        step = interval / len(names)
        for index, name in enumerate(names):
            first[name] = now + 0.5 + index * step
    return first


class ProbeScheduler:
    """Runs every target's probe on its interval and hands results to `on_result`."""

    def __init__(self, targets: Mapping[str, ScheduledTarget],
                 on_result: Callable[[ProbeResult], None], metrics: Metrics) -> None:
        self._targets = targets
        self._on_result = on_result
        self._metrics = metrics
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._first_run: dict[str, float] = {}
        self.last_run: dict[str, float] = {}
        self.runs = 0
        self._in_flight: set[asyncio.Task[object]] = set()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Add one job per target and start; must be called inside the event loop."""
        intervals = {name: t.config.interval for name, t in self._targets.items()}
        self._first_run = start_offsets(intervals, time.time())
        for name, target in self._targets.items():
            interval = target.config.interval
            self._scheduler.add_job(
                self._run_target, IntervalTrigger(
                    seconds=interval,
                    start_date=datetime.fromtimestamp(self._first_run[name], UTC)),
                args=[name], id=name, name=f"probe {name}", max_instances=1,
                coalesce=True, misfire_grace_time=max(1, int(interval)),
            )
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop at once; APScheduler cancels probes still running."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def stop(self, timeout: float) -> None:
        """Start no new probes, let running ones finish within `timeout` (their results
        still count), then shut down."""
        if self._scheduler.running:
            self._scheduler.pause()
        pending = {t for t in self._in_flight if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self.shutdown()

    def _planned(self, name: str, now: float) -> float:
        first = self._first_run[name]
        interval = self._targets[name].config.interval
        return first + round((now - first) / interval) * interval

    async def _run_target(self, name: str) -> None:
        started = time.time()
        lag = max(0.0, started - self._planned(name, started))
        self._metrics.scheduler_lag.observe(lag)
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            result = await self._targets[name].probe.run(started)
        except asyncio.CancelledError:
            return  # shutting down: an unfinished probe measured nothing
        except Exception as exc:  # boundary: a broken probe must not stop the schedule
            log.exception("probe %s raised; this is a bug in the probe", name,
                          extra={"target": name})
            report_exception(exc)
            return
        finally:
            if task is not None:
                self._in_flight.discard(task)
        self.last_run[name] = started
        self.runs += 1
        self._metrics.observe_probe(result)
        self._on_result(result)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        self._metrics.probes_skipped.labels(event.job_id).inc()
        log.warning("probe %s still running at its next start; run skipped", event.job_id)
