"""Reading incidents and their timelines; the writes live with the escalation logic."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select

from alerts.member_store import IncidentMember, incident_ids_with_slo, load_members
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
    paged_at: float | None = None
    page_impact_started_at: float | None = None
    latched: bool = False
    members: tuple[IncidentMember, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def slos(self) -> tuple[str, ...]:
        """Every SLO the incident included, in the order they joined; an incident from
        before members were recorded has its own `slo` only."""
        named = [m.slo for m in self.members if m.slo]
        if not self.members and self.slo:
            named = [self.slo]
        return tuple(dict.fromkeys(named))

    @property
    def active_members(self) -> tuple[IncidentMember, ...]:
        return tuple(m for m in self.members if m.active)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: float
    kind: str
    text: str
    data: dict[str, Any]


FIELDS = [name for name in Incident.__dataclass_fields__
          if name not in ("has_postmortem", "members")]


def incident_columns() -> list[Any]:
    return [getattr(IncidentRow, name) for name in FIELDS] + [
        IncidentRow.postmortem.is_not(None).label("has_postmortem")]


def to_incident(row: Any, members: tuple[IncidentMember, ...] = ()) -> Incident:
    values = {name: getattr(row, name) for name in FIELDS}
    values["labels"] = dict(values["labels"] or {})
    values["latched"] = bool(values["latched"])
    return Incident(**values, has_postmortem=bool(row.has_postmortem), members=members)


def with_members(connection: Connection, rows: Sequence[Any]) -> list[Incident]:
    """Incidents from rows of `incident_columns()`, their members read in one query."""
    members = load_members(connection, [int(row.id) for row in rows])
    return [to_incident(row, members.get(int(row.id), ())) for row in rows]


_BY_ID = select(*incident_columns()).where(IncidentRow.id == bindparam("incident_id"))
"""Built once: building and keying this select cost more than running it."""


def get_incident(connection: Connection | Engine, incident_id: int) -> Incident | None:
    params = {"incident_id": incident_id}
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            rows = conn.execute(_BY_ID, params).all()
            found = with_members(conn, rows)
    else:
        found = with_members(connection, connection.execute(_BY_ID, params).all())
    return found[0] if found else None


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
        return with_members(connection, rows), total


def open_incidents(connection: Connection, keys: Collection[str] | None = None
                   ) -> list[Incident]:
    """Every open incident, or those open under one of `keys`."""
    query = (select(*incident_columns()).where(IncidentRow.status != "resolved")
             .order_by(IncidentRow.id))
    if keys is not None:
        query = query.where(IncidentRow.open_key.in_(list(keys)))
    return with_members(connection, connection.execute(query).all())


def incidents_of_slo(engine: Engine, slo: str, target: str, since: float,
                     limit: int = 50) -> list[Incident]:
    """Incidents that include `slo` (or an outage of its target), open at some time
    since `since`, newest first: what an SLO's page lists."""
    query = (select(*incident_columns())
             .where(incident_ids_with_slo(slo, target),
                    or_(IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at >= since))
             .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc()).limit(limit))
    with engine.connect() as connection:
        return with_members(connection, connection.execute(query).all())


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


_INSERT_EVENT = insert(IncidentEventRow)


def add_event(connection: Connection, incident_id: int, at: float, kind: str, text: str,
              data: dict[str, Any] | None = None) -> None:
    connection.execute(_INSERT_EVENT, {"incident_id": incident_id, "at": at, "kind": kind,
                                       "text": text[:1000], "data": data or {}})


def postmortem_text(engine: Engine, incident_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(select(IncidentRow.postmortem)
                                  .where(IncidentRow.id == incident_id)).scalar_one_or_none()


def thread_of(connection: Connection, incident_id: int, channel: str) -> dict[str, str]:
    found = connection.execute(select(IncidentThreadRow.thread).where(
        IncidentThreadRow.incident_id == incident_id, IncidentThreadRow.channel == channel)
    ).scalar_one_or_none()
    return dict(found or {})
