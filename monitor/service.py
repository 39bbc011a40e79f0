"""Read-side service functions shared by the JSON API, the CLI and the dashboards.

Routes stay thin: they validate input, call one of these and shape the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.clock import Clock
from monitor.config import Settings
from monitor.down import DownDetector
from monitor.errors import NotFoundError
from monitor.maintenance import MaintenanceCalendar
from monitor.phases import PhaseStatus, TriggerStatus, TriggerTracker, phase_statuses
from monitor.slo_engine import SloEngine, probe_rates
from monitor.storage import repository
from monitor.storage.repository import StoredResult
from probes.base import TargetConfig
from slo.status import SloStatus


@dataclass(frozen=True, slots=True)
class TargetView:
    """A configured target and its newest stored result (None before the first probe)."""

    config: TargetConfig
    last: StoredResult | None


class MonitorService:
    """Answers questions about targets, results and SLOs at the clock's current time."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock,
                 calendar: MaintenanceCalendar | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.calendar = calendar or MaintenanceCalendar.from_config(settings.maintenance)
        self.triggers = TriggerTracker(settings.triggers)
        self.down = DownDetector(settings.targets, suppressed=lambda target, now: any(
            w.covers(target, "", now) for w in self.calendar.windows()))
        self.slo_engine = SloEngine(
            engine, in_maintenance=lambda slo, now: self.calendar.covers(slo.target,
                                                                          slo.name, now),
            probes_per_second=probe_rates(settings))

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
        return self.slo_engine.evaluate(self.settings.slos, self.clock.now())

    def slo_status(self, name: str) -> SloStatus:
        slo = self.settings.slo(name)
        if slo is None:
            raise NotFoundError("SLO", name)
        return self.slo_engine.evaluate([slo], self.clock.now())[0]

    def phases(self, statuses: list[SloStatus] | None = None) -> list[PhaseStatus]:
        """Each scaling phase against its SLOs (evaluated now unless given)."""
        current = statuses if statuses is not None else self.slo_statuses()
        return phase_statuses(self.settings.phases, {s.name: s for s in current})

    def trigger_statuses(self) -> list[TriggerStatus]:
        """Decision triggers judged now (the evaluation tick keeps their history)."""
        return self.triggers.evaluate(self.engine, self.clock.now(), track=False)
