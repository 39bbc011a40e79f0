"""The write path: classify a batch of probe results for every SLO and store it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.maintenance import MaintenanceCalendar
from monitor.storage.repository import write_batch
from probes.base import ProbeResult
from slo.rollup import BucketDelta, rollup_deltas


class Classifier:
    """Which SLOs each target feeds, minus what maintenance windows exclude."""

    def __init__(self, slos: Sequence[SloConfig],
                 calendar: MaintenanceCalendar | None = None) -> None:
        by_target: dict[str, list[SloConfig]] = defaultdict(list)
        for slo in slos:
            by_target[slo.target].append(slo)
        self.slos_by_target = dict(by_target)
        self.calendar = calendar or MaintenanceCalendar()

    def deltas(self, results: Sequence[ProbeResult]) -> dict[tuple[str, int], BucketDelta]:
        return rollup_deltas(results, self.slos_by_target, excluded=self.calendar.covers)


class ResultWriter:
    """Callable used by the sink (in a worker thread): results → raw rows + rollups."""

    def __init__(self, engine: Engine, slos: Sequence[SloConfig],
                 calendar: MaintenanceCalendar | None = None,
                 on_written: Callable[[float], None] | None = None,
                 on_events: Callable[[str, int, int], None] | None = None) -> None:
        self._engine = engine
        self.classifier = Classifier(slos, calendar)
        self._on_written = on_written
        self._on_events = on_events

    def __call__(self, results: Sequence[ProbeResult]) -> None:
        deltas = self.classifier.deltas(results)
        write_batch(self._engine, results, deltas)
        if self._on_written is not None and deltas:
            # The oldest minute touched: lets the SLO engine drop cached sums that a
            # late batch (flushed after a database outage) has just changed.
            self._on_written(float(min(bucket for _, bucket in deltas)))
        if self._on_events is not None:
            # Stored, so countable: Prometheus' counters then agree with the rollups.
            per_slo: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for (slo, _), delta in deltas.items():
                per_slo[slo][0] += delta.good
                per_slo[slo][1] += delta.total
            for slo, (good, total) in per_slo.items():
                self._on_events(slo, good, total)
