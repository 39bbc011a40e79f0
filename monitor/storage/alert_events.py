"""Recording and reading alert state changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from monitor.storage.models import AlertEventRow


@dataclass(frozen=True, slots=True)
class AlertEvent:
    key: str
    kind: str
    severity: str | None
    transition: str
    at: float
    reason: str


def record(engine: Engine, events: Sequence[AlertEvent]) -> None:
    if not events:
        return
    with engine.begin() as connection:
        connection.execute(insert(AlertEventRow), [
            {"key": e.key, "kind": e.kind, "severity": e.severity,
             "transition": e.transition, "at": e.at, "reason": e.reason[:500]}
            for e in events])


def between(engine: Engine, start: float, end: float) -> list[AlertEvent]:
    query = (select(AlertEventRow).where(AlertEventRow.at >= start, AlertEventRow.at < end)
             .order_by(AlertEventRow.at, AlertEventRow.id))
    with engine.connect() as connection:
        return [AlertEvent(r.key, r.kind, r.severity, r.transition, r.at, r.reason)
                for r in connection.execute(query)]
