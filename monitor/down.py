"""Hard-outage detection: `down_after` consecutive failed probes of a target page at once,
without waiting for a burn rate to build up; the first success resolves it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from monitor.storage.models import ProbeResultRow
from probes.base import TargetConfig


@dataclass(frozen=True, slots=True)
class DownState:
    target: str
    down: bool
    since: float | None
    failures: int
    transition: str | None  # "fired" | "resolved" | None
    reason: str


def recent_outcomes(engine: Engine, target: str,
                    count: int) -> list[tuple[float, bool, str | None]]:
    """The newest `count` results of a target, newest first: (started_at, ok, error)."""
    query = (select(ProbeResultRow.started_at, ProbeResultRow.ok, ProbeResultRow.error)
             .where(ProbeResultRow.target == target)
             .order_by(ProbeResultRow.started_at.desc()).limit(count))
    with engine.connect() as connection:
        return [(float(t), bool(ok), error) for t, ok, error in connection.execute(query)]


class DownDetector:
    """Tracks which targets are down across evaluation ticks."""

    def __init__(self, targets: Sequence[TargetConfig],
                 suppressed: Callable[[str, float], bool] | None = None) -> None:
        self.targets = list(targets)
        self._suppressed = suppressed or (lambda _target, _now: False)
        self._since: dict[str, float] = {}
        self.last: dict[str, DownState] = {}

    def evaluate(self, engine: Engine, now: float) -> list[DownState]:
        states = []
        for target in self.targets:
            outcomes = recent_outcomes(engine, target.name, target.down_after)
            failing = (len(outcomes) == target.down_after
                       and not any(ok for _, ok, _ in outcomes))
            was_down = target.name in self._since
            if self._suppressed(target.name, now):
                failing = False
            transition = None
            if failing and not was_down:
                self._since[target.name] = outcomes[-1][0]  # the first of the failures
                transition = "fired"
            elif not failing and was_down:
                del self._since[target.name]
                transition = "resolved"
            last_error = outcomes[0][2] if outcomes and not outcomes[0][1] else None
            reason = (f"{target.down_after} consecutive failures"
                      + (f"; last: {last_error}" if last_error else "") if failing else "")
            state = DownState(target.name, failing, self._since.get(target.name),
                              sum(1 for _, ok, _ in outcomes if not ok), transition, reason)
            self.last[target.name] = state
            states.append(state)
        return states
