"""The facts of one incident, read from storage, and the post-mortem draft written from them.

`gather_facts` turns an incident row, its timeline and the SLO rollups of its impact
span into an `IncidentFacts` (`alerts/postmortem.py` only formats them);
`write_postmortem` renders and stores the draft when an incident resolves (the
`on_resolved` hook of `IncidentManager`) or when `primewatch postmortem` asks for one.

How the numbers are chosen:

- Affected SLOs: the incident's own SLO; else every SLO of its target (a target that
  is down hurts them all); else none (a scaling trigger is about no SLO).
- Impact span: from the start of impact (or the opening) to the resolution (or `now`
  for an open incident), widened to whole minutes because rollups are per minute.
- Counts, error ratios and the budget come from ONE SLO, the first affected one with
  events during the span: every SLO of a target counts the same probes, so adding
  them up would count each probe once per SLO. p95 comes from the first affected SLO
  with latency bins, and "week before" is always the same SLO and span 7 days earlier.
- Budget consumed: the span's bad events over the bad events the SLO's window allows,
  (1 - objective) × its events, for the window ending when impact ended (the resolve,
  or `now` while open): the draft is written then, and a regenerated one agrees.
- Anything that cannot be known (no events, no bins, an SLO no longer configured) is
  None, which the draft shows as "—" rather than as a misleading 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, update

from alerts.escalation import IncidentNotFound
from alerts.members import affected_slo_names
from alerts.postmortem import (
    IncidentFacts,
    PostmortemTemplateError,
    TimelineEntry,
    render_postmortem,
)
from alerts.store import Incident, TimelineEvent, add_event, get_incident, timeline
from monitor.config import AlertingSection, Settings
from monitor.config_slo import SloConfig
from monitor.slo_engine import expected_window_events
from monitor.storage import rollups
from monitor.storage.models import IncidentRow
from slo.budget import error_ratio
from slo.status import percentiles
from slo.windows import MINUTE, split_by_resolution

__all__ = ["affected_slos", "budget_spent", "detection_delay", "gather_facts",
           "impact_span", "share_of_budget", "write_postmortem"]

log = logging.getLogger(__name__)
WEEK = 7 * 86400
POSTMORTEM_EVENT = "postmortem"
Span = tuple[int, int]


# --- pure parts ------------------------------------------------------------------------


def affected_slos(incident: Incident, slos: Sequence[SloConfig]) -> tuple[str, ...]:
    """The SLOs the incident is about, in config order (see the module docstring)."""
    if incident.members:
        return affected_slo_names(incident, slos)
    if incident.slo:
        return (incident.slo,)
    if incident.target:
        return tuple(slo.name for slo in slos if slo.target == incident.target)
    return ()


def detection_delay(incident: Incident) -> float | None:
    """Time to detect: from the start of the impact of what paged to the page (an
    older ticket grouped with it does not count); else from the impact to the opening."""
    if incident.paged_at is not None and incident.page_impact_started_at is not None:
        return max(0.0, incident.paged_at - incident.page_impact_started_at)
    if incident.impact_started_at is None:
        return None
    return incident.opened_at - incident.impact_started_at


def impact_span(incident: Incident, now: float) -> Span:
    """[start of impact, resolution or now), rounded outward to whole minutes."""
    start = incident.impact_started_at if incident.impact_started_at is not None \
        else incident.opened_at
    end = incident.resolved_at if incident.resolved_at is not None else now
    first = int(start // MINUTE) * MINUTE
    last = -int(-end // MINUTE) * MINUTE
    return first, max(first, last)


def share_of_budget(bad: int, window_total: float, objective: float) -> float | None:
    """Share of the SLO window's error budget the incident's bad events used up.

    The budget is the bad events the window allows: (1 - objective) × its events. None
    when the window holds no events (no budget to compare with).
    """
    allowed = (1.0 - objective) * window_total
    return None if allowed <= 0 else bad / allowed


def _error_ratio(counts: tuple[int, int] | None) -> float | None:
    return None if counts is None else error_ratio(*counts)


def _shift(span: Span, seconds: int) -> Span:
    return span[0] - seconds, span[1] - seconds


def _timeline(events: Sequence[TimelineEvent]) -> tuple[TimelineEntry, ...]:
    """The incident's events, minus earlier "draft written" notes: they are about the
    document, not the incident, and would pile up with every regeneration."""
    return tuple(TimelineEntry(e.at, e.kind, e.text) for e in events
                 if e.kind != POSTMORTEM_EVENT)


# --- reads -----------------------------------------------------------------------------


def _counts(engine: Engine, slo: str, span: Span) -> tuple[int, int] | None:
    """(good, total) of one SLO over a minute-aligned span, None when it had no events."""
    good, total = rollups.sum_counts(engine, [slo], split_by_resolution(*span))[slo]
    return (good, total) if total > 0 else None


def _primary_counts(engine: Engine, slos: Sequence[str], span: Span
                    ) -> tuple[str, tuple[int, int]] | None:
    """The first affected SLO with events during the span, and its (good, total)."""
    for name in slos:
        counts = _counts(engine, name, span)
        if counts is not None:
            return name, counts
    return None


def _last_bad_minute_end(engine: Engine, slos: Sequence[str], span: Span) -> int | None:
    """The end of the last minute with a failed event in the span (first affected SLO
    with events): where impact ended, even if a slow tier kept the incident open."""
    for name in slos:
        minutes = rollups.series(engine, [name], rollups.MINUTE, *span)[name]
        if minutes:
            bad = [start for start, good, total in minutes if good < total]
            return bad[-1] + MINUTE if bad else None
    return None


def _p95_ms(engine: Engine, slo: str, span: Span) -> float | None:
    bins = rollups.sum_bins(engine, [slo], split_by_resolution(*span))[slo]
    p95 = percentiles(bins).get("p95")
    return None if p95 is None else p95 * 1000


def _p95s(engine: Engine, slos: Sequence[str], span: Span
          ) -> tuple[float | None, float | None]:
    """p95 during and the week before, both from the first affected SLO with bins."""
    for name in slos:
        during = _p95_ms(engine, name, span)
        if during is not None:
            return during, _p95_ms(engine, name, _shift(span, WEEK))
    return None, None


def _budget(engine: Engine, settings: Settings, slo: SloConfig | None, bad: int,
            at: float) -> float | None:
    """Budget consumed against the SLO's window at `at`, of the one budget every surface
    states (`slo/allowance.py`: the events the whole window is expected to hold).

    None for timeslice budgeting: its budget is counted in slices, not events, so an
    event ratio would state a number that SLO never promised.
    """
    if slo is None or slo.budgeting != "occurrences":
        return None
    expected = expected_window_events(engine, settings, slo, at)
    return None if expected is None else share_of_budget(bad, expected, slo.objective)


# --- facts and the stored draft --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Measures:
    """The numbers read from rollups for one impact span."""

    good: int | None = None
    total: int | None = None
    error_ratio: float | None = None
    error_ratio_before: float | None = None
    budget_consumed: float | None = None
    p95_ms: float | None = None
    p95_before_ms: float | None = None


def _measure(engine: Engine, settings: Settings, slos: Sequence[str], span: Span,
             until: float) -> _Measures:
    """Counts, ratios, budget and p95s; `until` (the end of impact) dates the budget's
    window, so regenerating a draft later states the same share."""
    p95_during, p95_before = _p95s(engine, slos, span)
    primary = _primary_counts(engine, slos, span)
    if primary is None:
        return _Measures(p95_ms=p95_during, p95_before_ms=p95_before)
    name, (good, total) = primary
    return _Measures(
        good=good, total=total, error_ratio=error_ratio(good, total),
        error_ratio_before=_error_ratio(_counts(engine, name, _shift(span, WEEK))),
        budget_consumed=_budget(engine, settings, settings.slo(name), total - good, until),
        p95_ms=p95_during, p95_before_ms=p95_before)


def gather_facts(engine: Engine, settings: Settings, incident_id: int,
                 now: float) -> IncidentFacts:
    """Everything the draft states, as of `now` (an open incident's impact runs to now).

    Raises IncidentNotFound for an unknown id.
    """
    incident = get_incident(engine, incident_id)
    if incident is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    slos = affected_slos(incident, settings.slos)
    until = incident.resolved_at if incident.resolved_at is not None else now
    span = impact_span(incident, now)
    ended = _last_bad_minute_end(engine, slos, span)
    if ended is not None:
        span = (span[0], ended)
    measured = _measure(engine, settings, slos, span, until)
    public = settings.server.public_url.rstrip("/") if settings.server.public_url else None
    return IncidentFacts(
        id=incident.id, title=incident.title, severity=_severity(incident.severity),
        status=incident.status, opened_at=incident.opened_at,
        acknowledged_at=incident.acknowledged_at, resolved_at=incident.resolved_at,
        detected_after=detection_delay(incident),
        impact_started_at=incident.impact_started_at, slos=slos, target=incident.target,
        labels=incident.labels, acknowledged_by=incident.acknowledged_by,
        resolved_by=incident.resolved_by, budget_consumed=measured.budget_consumed,
        peak_burn_rate=incident.peak_burn_rate, p95_during_ms=measured.p95_ms,
        p95_week_before_ms=measured.p95_before_ms, error_ratio_during=measured.error_ratio,
        error_ratio_week_before=measured.error_ratio_before, good_during=measured.good,
        total_during=measured.total, timeline=_timeline(timeline(engine, incident_id)),
        dashboard_url=f"{public}/" if public else None,
        incident_url=f"{public}/api/v1/incidents/{incident_id}" if public else None,
        service_name=settings.service.name, impact_ended_at=ended,
    )


def budget_spent(engine: Engine, settings: Settings, incident: Incident, now: float
                 ) -> dict[str, float | None]:
    """Per affected SLO, the share of its error budget the incident's impact spent
    (the post-mortem's "budget consumed", for every SLO): what an SLO page shows as
    "budget spent by incident #N". None where it cannot be known."""
    until = incident.resolved_at if incident.resolved_at is not None else now
    span = impact_span(incident, now)
    spent: dict[str, float | None] = {}
    for name in affected_slos(incident, settings.slos):
        ended = _last_bad_minute_end(engine, [name], span)
        counts = _counts(engine, name, (span[0], ended) if ended is not None else span)
        bad = 0 if counts is None else counts[1] - counts[0]
        spent[name] = _budget(engine, settings, settings.slo(name), bad, until)
    return spent


def _severity(value: str) -> Literal["page", "ticket"]:
    return "page" if value == "page" else "ticket"


def write_postmortem(engine: Engine, settings: Settings, incident_id: int, now: float) -> str:
    """Render the draft, store it on the incident, note it in the timeline, return it.

    A broken custom template must not cost the draft of a real incident: the bundled
    template is used instead and the timeline event says why.
    """
    facts = gather_facts(engine, settings, incident_id, now)
    text, problem = _render(facts, settings.alerting, now)
    note = "Post-mortem draft written"
    if problem is not None:
        note += f" from the bundled template ({problem})"
    with engine.begin() as connection:
        connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                           .values(postmortem=text))
        add_event(connection, incident_id, now, POSTMORTEM_EVENT, note,
                  {"template_error": str(problem)} if problem is not None else None)
    return text


def _render(facts: IncidentFacts, alerting: AlertingSection, now: float
            ) -> tuple[str, PostmortemTemplateError | None]:
    """The draft from the configured template (relative to the working directory), or
    from the bundled one, with the custom template's error, when that fails."""
    template = Path(alerting.postmortem_template) if alerting.postmortem_template else None
    clock = _FixedClock(now)
    try:
        return render_postmortem(facts, template=template, timezone=alerting.timezone,
                                 clock=clock), None
    except PostmortemTemplateError as exc:
        if template is None:
            raise  # the bundled template itself failed: a bug to surface, not to hide
        log.warning("post-mortem template failed, using the bundled one: %s", exc)
        return render_postmortem(facts, timezone=alerting.timezone, clock=clock), exc


class _FixedClock:
    """Dates the draft's footer at the resolve (or request) time it was written for."""

    def __init__(self, at: float) -> None:
        self._at = at

    def now(self) -> float:
        return self._at
