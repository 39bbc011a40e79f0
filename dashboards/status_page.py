"""`/status`: the public status page (no login even when the dashboard needs one).

Why a separate layout and a view built here: everything on it is public, so it is
assembled from what `dashboard.status_page` lists and nothing else. Components appear
under their public names; incidents are described in fixed public wording from their
kind and status times. No SLO, target, URL, channel, person or incident number reaches
the markup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, case, func, literal, select, union_all

from alerts.store import Incident
from dashboards.data import TtlCache, cache_of, open_incidents, statuses
from dashboards.render import ENV
from dashboards.svg import day_bars
from monitor.config import Settings, StatusComponent
from monitor.down import recent_outcomes
from monitor.runtime import Runtime
from monitor.storage import rollups
from monitor.storage.models import ProbeResultRow
from slo.status import SloStatus

router = APIRouter()
DAY = 86400
DAYS = 90
GOOD_DAY = 0.999  # a day under this is not green, and is listed in words
BAD_DAYS_LISTED = 5
State = Literal["operational", "degraded", "partial_outage", "major_outage", "no_data"]
SEVERITY: dict[State, int] = {"no_data": 0, "operational": 1, "degraded": 2,
                              "partial_outage": 3, "major_outage": 4}
LOOKS: dict[State, tuple[str, str, str]] = {  # icon, words, css class: never colour alone
    "operational": ("✓", "Operational", "ok"),
    "degraded": ("!", "Degraded performance", "warn"),
    "partial_outage": ("▲", "Partial outage", "bad"),
    "major_outage": ("✕", "Major outage", "bad"),
    "no_data": ("◌", "No data yet", "nodata"),
}
PUBLIC_KINDS = ("burn_rate", "down")  # user impact; no_data and triggers are internal


@dataclass(frozen=True, slots=True)
class Members:
    """What a component stands for: its SLOs and the targets they and it name."""

    slos: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ComponentView:
    name: str
    state: State
    bars: str
    uptime: float | None
    bad_days: tuple[tuple[str, float], ...]  # the bars' colours in words (worst first)
    measured_days: int = 0  # days with data: the uptime is over these, not all 90


@dataclass(frozen=True, slots=True)
class Update:
    status: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class PublicIncident:
    title: str
    status: str
    started_at: float
    updates: tuple[Update, ...]  # newest first


@dataclass(frozen=True, slots=True)
class StatusView:
    title: str
    overall: str
    overall_state: State
    components: tuple[ComponentView, ...]
    incidents: tuple[PublicIncident, ...]


def members(settings: Settings, component: StatusComponent) -> Members:
    """Names that exist now (an SLO of a disabled target is skipped, not an error)."""
    slos = tuple(name for name in component.slos if settings.slo(name) is not None)
    targets = [t for t in component.targets if settings.target(t) is not None]
    for name in slos:
        slo = settings.slo(name)
        if slo is not None and slo.target not in targets and settings.target(slo.target):
            targets.append(slo.target)
    return Members(slos, tuple(targets))


def component_state(slos: Sequence[SloStatus], down: Sequence[bool],
                    latest_ok: Sequence[bool]) -> State:
    """Now, not over the window: a target down is a major outage, a paging burn rate a
    partial one, a ticket burn or a failed latest probe degraded performance. A window
    already breached but not burning now is history, shown by the bars."""
    if any(down):
        return "major_outage"
    alerts = [s.alert.severity for s in slos if not s.alert.no_data and not s.alert.suppressed]
    if "page" in alerts:
        return "partial_outage"
    if "ticket" in alerts or not all(latest_ok):
        return "degraded"
    if latest_ok or any(s.state != "no_data" for s in slos):
        return "operational"
    return "no_data"


def overall(states: Sequence[State]) -> tuple[str, State]:
    """The banner: the worst component decides."""
    if not states:
        return "No components are listed yet", "no_data"
    worst = max(states, key=SEVERITY.__getitem__)
    if worst == "major_outage":
        return "Major outage", worst
    if worst == "partial_outage":
        return "Partial outage", worst
    if worst == "degraded":
        return "Degraded performance", worst
    if worst == "no_data":
        return "No data yet", worst
    if "no_data" in states:
        return "All systems with data operational", worst
    return "All systems operational", worst


def _raw_days(engine: Engine, targets: Sequence[str], first: int, days: int
              ) -> dict[int, tuple[int, int]]:
    """(good, total) probes per UTC day, one UNION ALL branch per day: an index range
    seek each, and no day arithmetic in SQL (SQLite and PostgreSQL round differently)."""
    if not targets:
        return {}
    good = func.coalesce(func.sum(case((ProbeResultRow.ok, 1), else_=0)), 0)
    branches = [
        select(literal(index).label("day"), good.label("good"), func.count().label("total"))
        .where(ProbeResultRow.target.in_(list(targets)),
               ProbeResultRow.started_at >= first + index * DAY,
               ProbeResultRow.started_at < first + (index + 1) * DAY)
        for index in range(days)]
    with engine.connect() as connection:
        return {first + int(day) * DAY: (int(g), int(t))
                for day, g, t in connection.execute(union_all(*branches))}


def _uptime_slo(settings: Settings, component: StatusComponent, found: Members) -> str | None:
    """The component's first availability SLO; else one on its targets (day rollups
    reach back 400 days where raw results are kept 14)."""
    for name in (*found.slos, *(s.name for t in component.targets
                                for s in settings.slos_for(t))):
        slo = settings.slo(name)
        if slo is not None and slo.sli == "availability":
            return name
    return None


def daily_uptime(engine: Engine, settings: Settings, component: StatusComponent,
                 found: Members, now: float) -> list[tuple[int, int, int]]:
    """(day start, good, total) for the last DAYS UTC days, today included."""
    first = int(now // DAY * DAY) - (DAYS - 1) * DAY
    slo = _uptime_slo(settings, component, found)
    if slo is not None:
        rows = rollups.series(engine, [slo], rollups.DAY, first, first + DAYS * DAY)[slo]
        counts = {bucket: (good, total) for bucket, good, total in rows}
    else:
        counts = _raw_days(engine, found.targets, first, DAYS)
    return [(day, *counts.get(day, (0, 0))) for day in range(first, first + DAYS * DAY, DAY)]


def _bars(days: Sequence[tuple[int, int, int]]
          ) -> tuple[str, float | None, tuple[tuple[str, float], ...]]:
    """The SVG, the uptime over all days, and the days under GOOD_DAY (worst first)."""
    labelled = [(datetime.fromtimestamp(day, UTC).date().isoformat(),
                 good / total if total else None) for day, good, total in days]
    good = sum(g for _, g, _ in days)
    total = sum(t for _, _, t in days)
    bad = sorted(((day, up) for day, up in labelled if up is not None and up < GOOD_DAY),
                 key=lambda item: item[1])
    return day_bars(labelled, good_at=GOOD_DAY), (good / total if total else None), \
        tuple(bad[:BAD_DAYS_LISTED])


def _problem(incident: Incident, settings: Settings) -> tuple[str, str]:
    """(headline words, words in a sentence) for what users notice."""
    if incident.kind == "down":
        return "Outage", "an outage"
    slo = settings.slo(incident.slo) if incident.slo else None
    words = {"availability": "elevated error rates", "latency": "slow responses"}.get(
        slo.sli if slo is not None else "", "degraded performance")
    return words[0].upper() + words[1:], words


def _affects(incident: Incident, component: StatusComponent, found: Members) -> bool:
    if incident.slo:
        return incident.slo in component.slos or incident.target in component.targets
    return incident.target in found.targets


def public_incidents(incidents: Sequence[Incident], settings: Settings,
                     components: Sequence[tuple[StatusComponent, Members]]
                     ) -> list[PublicIncident]:
    """Open incidents touching a listed component, in public words with their status
    changes; the internal title, summary, numbers and people are never read."""
    out = []
    for incident in incidents:
        if incident.kind not in PUBLIC_KINDS:
            continue
        names = [c.name for c, found in components if _affects(incident, c, found)]
        if not names:
            continue
        heading, problem = _problem(incident, settings)
        where = ", ".join(names)
        updates = [Update("Investigating", f"We are investigating {problem} on {where}.",
                          incident.opened_at)]
        if incident.acknowledged_at is not None:
            updates.append(Update("Identified", "Our engineers are working on it.",
                                  incident.acknowledged_at))
        if incident.cleared_at is not None:
            updates.append(Update("Monitoring", "The problem is no longer seen; we are "
                                                "watching before we close this incident.",
                                  incident.cleared_at))
        updates.sort(key=lambda u: u.at, reverse=True)
        out.append(PublicIncident(f"{heading} on {where}", updates[0].status,
                                  incident.impact_started_at or incident.opened_at,
                                  tuple(updates)))
    return out


def build_view(runtime: Runtime, current: Sequence[SloStatus],
               incidents: Sequence[Incident]) -> StatusView:
    """Everything the page shows, computed once per cache period (it is public)."""
    settings = runtime.settings
    config = settings.dashboard.status_page
    engine = runtime.service.engine
    now = runtime.service.clock.now()
    by_name = {s.name: s for s in current}
    down = runtime.service.down.last  # from the evaluation tick
    found_all = [(c, members(settings, c)) for c in config.components]
    views = []
    for component, found in found_all:
        latest = [outcomes[0][1] for t in found.targets
                  if (outcomes := recent_outcomes(engine, t, 1))]
        state = component_state([by_name[n] for n in found.slos if n in by_name],
                                [down[t].down for t in found.targets if t in down], latest)
        days = daily_uptime(engine, settings, component, found, now)
        bars, uptime, bad_days = _bars(days)
        measured = sum(1 for _, _, total in days if total)
        views.append(ComponentView(component.name, state, bars, uptime, bad_days, measured))
    text, state = overall([v.state for v in views])
    return StatusView(config.title, text, state, tuple(views),
                      tuple(public_incidents(incidents, settings, found_all)))


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
async def status_page(request: Request) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.dashboard.status_page.enabled:
        raise HTTPException(404, "not found")
    current = await statuses(runtime)
    cache = cache_of(runtime)
    html = await asyncio.to_thread(cache.get, "status-html",
                                   lambda: _render(runtime, current, cache))
    return HTMLResponse(html)


def _render(runtime: Runtime, current: Sequence[SloStatus], cache: TtlCache) -> str:
    """The whole public page, built and rendered in a worker thread and kept for the
    cache period: anyone can request it, so a crowd of visitors (or a script) costs one
    rendering per period and never holds the event loop the probes run on."""
    incidents = cache.get("open-incidents", lambda: open_incidents(runtime))
    view = build_view(runtime, current, incidents)
    return ENV.get_template("status.html.j2").render(
        view=view, looks=LOOKS, days=DAYS, refresh=int(runtime.settings.dashboard.refresh),
        now=runtime.service.clock.now())
