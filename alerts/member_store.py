"""Storage of what incidents are made of: their members, the SLOs they handled, latches.

The SQL for incidents' satellites lives here, beside `alerts/store.py` (the incidents
themselves); the decisions built on it live in `alerts/members.py`, `alerts/handled.py`
and `alerts/latch.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.storage.models import HandledSloRow, IncidentMemberRow, IncidentRow


@dataclass(frozen=True, slots=True)
class IncidentMember:
    """One alert grouped into an incident, with its own figures as last seen."""

    key: str
    kind: str
    severity: str
    title: str
    summary: str
    slo: str | None
    target: str | None
    burn_rate: float | None
    burn_window: str | None
    budget_remaining: float | None
    impact_started_at: float | None
    first_seen_at: float
    paged_at: float | None
    cleared_at: float | None

    @property
    def active(self) -> bool:
        """Whether it fired at the last evaluation."""
        return self.cleared_at is None


MEMBER_FIELDS = list(IncidentMember.__dataclass_fields__)


def load_members(connection: Connection, incident_ids: Collection[int]
                 ) -> dict[int, tuple[IncidentMember, ...]]:
    """The members of each incident, in the order they joined."""
    if not incident_ids:
        return {}
    columns = [getattr(IncidentMemberRow, name) for name in MEMBER_FIELDS]
    query = (select(IncidentMemberRow.incident_id, *columns)
             .where(IncidentMemberRow.incident_id.in_(list(incident_ids)))
             .order_by(IncidentMemberRow.incident_id, IncidentMemberRow.first_seen_at,
                       IncidentMemberRow.key))
    found: dict[int, list[IncidentMember]] = {}
    for row in connection.execute(query):
        member = IncidentMember(**{name: getattr(row, name) for name in MEMBER_FIELDS})
        found.setdefault(int(row.incident_id), []).append(member)
    return {incident_id: tuple(sorted(members, key=_joined_order))
            for incident_id, members in found.items()}


def _joined_order(member: IncidentMember) -> tuple[float, bool, bool, str]:
    """When it joined; among those joining together, pages and outages first."""
    return (member.first_seen_at, member.severity != "page", member.kind != "down",
            member.key)


def insert_member(connection: Connection, incident_id: int, values: Mapping[str, Any]
                  ) -> None:
    connection.execute(insert(IncidentMemberRow).values(incident_id=incident_id, **values))


def update_member(connection: Connection, incident_id: int, key: str,
                  values: Mapping[str, Any]) -> None:
    connection.execute(update(IncidentMemberRow).where(
        IncidentMemberRow.incident_id == incident_id, IncidentMemberRow.key == key)
        .values(**values))


def incident_ids_with_slo(slo: str, target: str) -> Any:
    """A WHERE clause: incidents that include `slo`, or an outage of its `target` (a
    down target hurts every SLO on it); incidents from before members were recorded
    fall back to their own `slo` / `target` columns."""
    member = IncidentMemberRow
    includes = select(member.incident_id).where(or_(
        member.slo == slo, and_(member.kind == "down", member.target == target)))
    has_members = select(member.incident_id)
    legacy = and_(IncidentRow.id.not_in(has_members), or_(
        IncidentRow.slo == slo, and_(IncidentRow.slo.is_(None), IncidentRow.target == target)))
    return or_(IncidentRow.id.in_(includes), legacy)


# -- handled until ---------------------------------------------------------------------


def handled_until(connection: Connection) -> dict[str, float]:
    """Per SLO, until when a resolved incident dealt with its bad events."""
    rows = connection.execute(select(HandledSloRow.slo, HandledSloRow.handled_until))
    return {str(slo): float(until) for slo, until in rows}


def record_handled(connection: Connection, slos: Iterable[str], incident_id: int,
                   at: float) -> None:
    """Mark the SLOs' bad events up to `at` as handled by `incident_id` (later wins)."""
    table = HandledSloRow.__table__
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    for slo in sorted(set(slos)):
        statement = dialect.insert(table).values(slo=slo, handled_until=at,
                                                 incident_id=incident_id)
        connection.execute(statement.on_conflict_do_update(
            index_elements=["slo"],
            set_={"handled_until": statement.excluded.handled_until,
                  "incident_id": statement.excluded.incident_id},
            where=table.c.handled_until <= statement.excluded.handled_until))


# -- the human-resolve latch -----------------------------------------------------------


def latched_keys(connection: Connection) -> dict[str, int]:
    """Keys held by a human resolve, and the incident holding each."""
    rows = connection.execute(select(IncidentRow.key, IncidentRow.id)
                              .where(IncidentRow.latched.is_(True))
                              .order_by(IncidentRow.id))
    return {str(key): int(incident_id) for key, incident_id in rows}


def set_latched(connection: Connection, incident_id: int, latched: bool) -> None:
    connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                       .values(latched=latched))
