"""An incident's members: keeping them in step with its firing group, and when the
group no longer justifies keeping the incident open.

Members are the alerts grouped into an incident (per target, like Alertmanager's
`group_by`), each stored with its own SLO or target, kind, severity and figures. They
are what the incident is named after (`alerts/causes.py`), which SLOs it affected
(the API's `slos`, the SLO pages), and which cause paged (time to detect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from alerts.member_store import IncidentMember, insert_member, update_member
from alerts.rules import ActiveAlert
from alerts.store import Incident
from monitor.config_slo import SloConfig


@dataclass(frozen=True, slots=True)
class MemberChanges:
    """What one tick changed in an incident's membership."""

    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    paging: tuple[ActiveAlert, ...] = ()
    """Members firing at page severity now that were not before (new or raised)."""

    @property
    def membership_changed(self) -> bool:
        return bool(self.joined or self.left)

    def describe(self) -> str:
        parts = []
        if self.joined:
            parts.append("joined: " + ", ".join(self.joined))
        if self.left:
            parts.append("left: " + ", ".join(self.left))
        return "Members " + "; ".join(parts)


def _figures(alert: ActiveAlert) -> dict[str, Any]:
    return {"kind": alert.kind, "severity": alert.severity, "title": alert.title[:300],
            "summary": alert.summary[:2000], "slo": alert.slo, "target": alert.target,
            "burn_rate": alert.burn_rate, "burn_window": alert.window,
            "budget_remaining": alert.budget_remaining}


def add_members(connection: Connection, incident_id: int, alert: ActiveAlert,
                now: float) -> None:
    """The members of a new incident."""
    for part in alert.parts:
        insert_member(connection, incident_id, {
            "key": part.key, **_figures(part),
            "impact_started_at": part.since if part.since is not None else now,
            "first_seen_at": now, "cleared_at": None,
            "paged_at": now if part.severity == "page" else None})


def sync_members(connection: Connection, incident: Incident, alert: ActiveAlert,
                 now: float) -> MemberChanges:
    """Bring the stored members in line with this tick's group: add who joined (or
    came back), refresh everyone's figures, mark who stopped firing."""
    stored = {m.key: m for m in incident.members}
    joined: list[str] = []
    paging: list[ActiveAlert] = []
    current = {part.key: part for part in alert.parts}
    for key, part in current.items():
        known = stored.get(key)
        figures = _figures(part)
        if known is None:
            insert_member(connection, incident.id, {
                "key": key, **figures, "first_seen_at": now, "cleared_at": None,
                "impact_started_at": part.since if part.since is not None else now,
                "paged_at": now if part.severity == "page" else None})
            joined.append(key)
        else:
            if not known.active:
                joined.append(key)
                figures["impact_started_at"] = part.since if part.since is not None else now
                figures["cleared_at"] = None
            if part.severity == "page" and known.paged_at is None:
                figures["paged_at"] = now
            changed = {name: value for name, value in figures.items()
                       if getattr(known, name) != value}
            if changed:  # most ticks change nothing but the numbers, often not even those
                update_member(connection, incident.id, key, changed)
        if part.severity == "page" and (known is None or not known.active
                                        or known.severity != "page"):
            paging.append(part)
    left = [key for key, m in stored.items() if m.active and key not in current]
    for key in left:
        update_member(connection, incident.id, key, {"cleared_at": now})
    return MemberChanges(tuple(joined), tuple(left), tuple(paging))


def affected_slo_names(incident: Incident, slos: Sequence[SloConfig]) -> tuple[str, ...]:
    """The SLOs an incident affected, in config order: its members' SLOs, and every SLO
    of a target that was down in it (failed probes are bad events for each of them,
    whether or not their burn rate fired). SLOs no longer configured come last."""
    down = {m.target for m in incident.members if m.kind == "down" and m.target}
    named = set(incident.slos) | {s.name for s in slos if s.target in down}
    configured = [s.name for s in slos if s.name in named]
    return tuple(configured + sorted(named - set(configured)))


def single_slo(incident: Incident, alert: ActiveAlert) -> str | None:
    """The incident's `slo` column: its one SLO, if all its members ever had only one."""
    names = {m.slo for m in incident.members if m.slo} | {p.slo for p in alert.parts if p.slo}
    return next(iter(names)) if len(names) == 1 else None


def page_impact_start(paging: Sequence[ActiveAlert], members: Sequence[IncidentMember],
                      paged_at: float) -> float:
    """When the impact of what paged began: the earliest start among the members that
    page, never that of an older ticket grouped with them."""
    starts = [p.since for p in paging if p.since is not None]
    starts += [m.impact_started_at for m in members
               if m.active and m.severity == "page" and m.impact_started_at is not None]
    return min([*starts, paged_at])


def detection_changes(incident: Incident, alert: ActiveAlert,
                      paging: Sequence[ActiveAlert], now: float) -> dict[str, Any]:
    """When the incident first paged, and when the impact of what paged began: an
    older ticket of the same target does not make the detection look instant."""
    if incident.paged_at is None:
        if alert.severity != "page":
            return {}
        return {"paged_at": now, "page_impact_started_at": page_impact_start(
            paging, incident.members, now)}
    # A cause joining later whose impact began before the page (a down target's
    # first failure) was part of what paged.
    earlier = [p.since for p in paging
               if p.since is not None and p.since <= incident.paged_at]
    known = incident.page_impact_started_at
    if earlier and (known is None or min(earlier) < known):
        return {"page_impact_started_at": min(earlier)}
    return {}


# -- when a firing group no longer holds its incident open -------------------------------


DOWN_CLEARED = ("The target answers again: a down page resolves at the next success "
                "(burn-rate tiers still firing only count the outage's failures)")
PAGE_CLEARED = ("No page tier fires and the last 5 minutes are clean: the slower "
                "tiers still firing only hold the outage this incident handled")


def release_reason(incident: Incident, alert: ActiveAlert) -> str | None:
    """Why the incident may resolve although its group still fires, or None.

    - A down page resolves at the next success: once no member is down, its targets'
      burn-rate members only count the outage's failures.
    - A page incident resolves when no page tier fires and its fast windows are clean:
      ticket tiers that fire then hold only the outage it handled (their long windows
      keep it for days), and `alerts/handled.py` keeps them from opening a new one.
    """
    parts = alert.parts
    if any(p.kind == "down" for p in parts):
        return None
    down_page = any(m.kind == "down" for m in incident.members)
    paged = incident.severity == "page"
    for part in parts:
        if part.kind != "burn_rate":
            return None
        if down_page:
            continue
        if not (paged and part.severity == "ticket" and part.fast_clean):
            return None
    return DOWN_CLEARED if down_page else PAGE_CLEARED
