"""Read-side service functions shared by the JSON API, the CLI and (later) dashboards.

Routes stay thin: they validate input, call one of these and shape the output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.clock import Clock
from monitor.config import Settings, SloConfig
from monitor.errors import NotFoundError
from monitor.storage import repository
from monitor.storage.repository import StoredResult
from probes.base import TargetConfig
from slo.budget import BURN_WINDOWS
from slo.rollup import MINUTE, bucket_start
from slo.status import SloStatus, build_status


@dataclass(frozen=True, slots=True)
class TargetView:
    """A configured target and its newest stored result (None before the first probe)."""

    config: TargetConfig
    last: StoredResult | None


class MonitorService:
    """Answers questions about targets, results and SLOs at the clock's current time."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock

    def targets(self) -> list[TargetView]:
        latest = repository.latest_results(self.engine)
        return [TargetView(t, latest.get(t.name)) for t in self.settings.targets]

    def target(self, name: str) -> TargetConfig:
        target = self.settings.target(name)
        if target is None:
            raise NotFoundError("target", name)
        return target

    def target_results(self, name: str, *, since: float | None = None,
                       before_id: int | None = None, limit: int = 100) -> list[StoredResult]:
        self.target(name)
        return repository.results_page(self.engine, name, since=since, before_id=before_id,
                                       limit=limit)

    def slo_statuses(self) -> list[SloStatus]:
        return self._evaluate(self.settings.slos, self.clock.now())

    def slo_status(self, name: str) -> SloStatus:
        slo = self.settings.slo(name)
        if slo is None:
            raise NotFoundError("SLO", name)
        return self._evaluate([slo], self.clock.now())[0]

    def _evaluate(self, slos: Sequence[SloConfig], now: float) -> list[SloStatus]:
        """Two grouped queries per distinct SLO window, however many SLOs there are."""
        current = bucket_start(now)
        statuses: dict[str, SloStatus] = {}
        by_window: dict[int, list[SloConfig]] = defaultdict(list)
        for slo in slos:
            by_window[int(slo.window)].append(slo)
        for window, group in by_window.items():
            names = [slo.name for slo in group]
            windows = {window, *(seconds for _, seconds in BURN_WINDOWS)}
            counts = repository.window_counts_many(self.engine, names, current, windows)
            bins = repository.window_bins_many(self.engine, names,
                                               current - window + MINUTE, current)
            for slo in group:
                statuses[slo.name] = build_status(
                    name=slo.name, target=slo.target, sli_kind=slo.sli,
                    objective=slo.objective, window_seconds=window, threshold=slo.threshold,
                    evaluated_at=now, counts=counts[slo.name], bins=bins[slo.name])
        return [statuses[slo.name] for slo in slos]
