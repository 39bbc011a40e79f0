"""Reading incidents and their timelines; the writes live with the escalation logic."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from monitor.storage.models import IncidentEventRow, IncidentRow, IncidentThreadRow

STATUSES = ("triggered", "acknowledged", "resolved")


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    key: str
    kind: str
    title: str
    summary: str
    severity: str
    status: str
    slo: str | None
    target: str | None
    labels: dict[str, str]
    policy: str | None
    manual_resolve: bool
    opened_at: float
    impact_started_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    resolved_by: str | None
    cleared_at: float | None
    peak_burn_rate: float | None
    budget_remaining: float | None
    cycle_started_at: float
    next_step: int
    repeat: int
    escalation_round: int
    next_escalation_at: float | None
    ack_deadline: float | None
    has_postmortem: bool
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: float
    kind: str
    text: str
    data: dict[str, Any]


FIELDS = [name for name in Incident.__dataclass_fields__ if name != "has_postmortem"]


def incident_columns() -> list[Any]:
    return [getattr(IncidentRow, name) for name in FIELDS] + [
        IncidentRow.postmortem.is_not(None).label("has_postmortem")]


def to_incident(row: Any) -> Incident:
    values = {name: getattr(row, name) for name in FIELDS}
    values["labels"] = dict(values["labels"] or {})
    return Incident(**values, has_postmortem=bool(row.has_postmortem))


def get_incident(connection: Connection | Engine, incident_id: int) -> Incident | None:
    query = select(*incident_columns()).where(IncidentRow.id == incident_id)
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            row = conn.execute(query).first()
    else:
        row = connection.execute(query).first()
    return None if row is None else to_incident(row)


def list_incidents(engine: Engine, *, status: str | None = None, limit: int = 50,
                   offset: int = 0) -> tuple[list[Incident], int]:
    """Newest first, and the total matching (for pagination)."""
    query = select(*incident_columns())
    count = select(func.count()).select_from(IncidentRow)
    if status is not None:
        query = query.where(IncidentRow.status == status)
        count = count.where(IncidentRow.status == status)
    query = query.order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
    with engine.connect() as connection:
        rows = connection.execute(query.limit(limit).offset(offset)).all()
        total = int(connection.execute(count).scalar_one())
    return [to_incident(row) for row in rows], total


def open_incidents(connection: Connection) -> list[Incident]:
    query = (select(*incident_columns()).where(IncidentRow.status != "resolved")
             .order_by(IncidentRow.id))
    return [to_incident(row) for row in connection.execute(query)]


def timeline(connection: Connection | Engine, incident_id: int) -> list[TimelineEvent]:
    query = (select(IncidentEventRow.at, IncidentEventRow.kind, IncidentEventRow.text,
                    IncidentEventRow.data)
             .where(IncidentEventRow.incident_id == incident_id)
             .order_by(IncidentEventRow.at, IncidentEventRow.id))
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = connection.execute(query).all()
    return [TimelineEvent(r.at, r.kind, r.text, dict(r.data or {})) for r in rows]


def add_event(connection: Connection, incident_id: int, at: float, kind: str, text: str,
              data: dict[str, Any] | None = None) -> None:
    connection.execute(insert(IncidentEventRow).values(
        incident_id=incident_id, at=at, kind=kind, text=text[:1000], data=data or {}))


def postmortem_text(engine: Engine, incident_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(select(IncidentRow.postmortem)
                                  .where(IncidentRow.id == incident_id)).scalar_one_or_none()


def thread_of(connection: Connection, incident_id: int, channel: str) -> dict[str, str]:
    found = connection.execute(select(IncidentThreadRow.thread).where(
        IncidentThreadRow.incident_id == incident_id, IncidentThreadRow.channel == channel)
    ).scalar_one_or_none()
    return dict(found or {})
