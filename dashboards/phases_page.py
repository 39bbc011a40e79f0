"""`/phases`: the strategy's scaling phases side by side, each phase's targets against
what is measured now, and the decision triggers with their recent history.

This is the page a stakeholder reads to decide when to upgrade, so it opens with one
sentence that says it (which phase's targets are met, which trigger fired when) and the
tables below show the evidence. It reads the same service functions as
`GET /api/v1/phases`, so both always agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dashboards.data import cache_of, statuses
from dashboards.render import duration, number, page, percent
from monitor.config import Settings
from monitor.config_slo import Phase, SloConfig, TriggerRule
from monitor.phases import PhaseStatus, TriggerStatus
from monitor.runtime import Runtime
from monitor.storage import alert_events
from monitor.storage.alert_events import AlertEvent
from slo.status import SloStatus

router = APIRouter()
HISTORY_SECONDS = 30 * 86400
HISTORY_ROWS = 200
CellState = Literal["met", "not_met", "no_data"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One phase's target for one metric: an SLO and what it measures now."""

    slo: str
    state: CellState
    sli: float | None
    objective: float
    meaning: str  # what the SLI counts, e.g. "of probes answer under 500 ms"


@dataclass(frozen=True, slots=True)
class MetricRow:
    """A success metric; per phase (in phase order) the SLOs that are its target there."""

    label: str
    cells: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class TriggerRow:
    status: TriggerStatus
    condition: str
    value: str
    threshold: str
    since: float | None  # firing since: the tracker's, else the last "fired" event
    last_fired: float | None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: float
    trigger: str
    description: str
    transition: str
    reason: str


def _cell_state(state: str) -> CellState:
    # phase_statuses: a phase is met when every SLO is `ok`; anything else measured misses
    return "met" if state == "ok" else "no_data" if state == "no_data" else "not_met"


def _seconds(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"


def _bytes(value: float) -> str:
    for size, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(value) >= size:
            return f"{value / size:,.2f} {unit}"
    return f"{value:,.0f} B"


def amount(measure: str, stat: str, value: float | None) -> str:
    """A trigger's value or threshold in the unit its measurement has."""
    if value is None:
        return "—"
    if stat == "count":
        return f"{value:,.0f}"
    if stat == "rate":
        return f"{value:.3g}/s"
    if measure == "latency" or measure.endswith("_seconds"):
        return _seconds(value)
    if measure.endswith("_bytes"):
        return _bytes(value)
    if measure == "error" and stat == "mean":
        return percent(value, 2)  # the share of failed probes
    return number(value, 2).removesuffix(".00")


def _metric(slo: SloConfig | None, name: str) -> tuple[tuple[str, ...], str, str]:
    """(grouping key, row label, what the SLI counts): SLOs measuring the same thing with
    different targets (500 ms in phase 1, 200 ms in phase 2) share a row."""
    if slo is None:  # its target is disabled: shown, never guessed
        return ("?", name), name, "not evaluated (its target is disabled)"
    region = f" in {slo.region}" if slo.region else ""
    threshold = slo.threshold if slo.threshold is not None else 0.0
    if slo.sli == "availability":
        label, meaning = f"Uptime of {slo.target}{region}", "of probes succeed"
    elif slo.sli == "latency":
        label = f"Response time of {slo.target}{region}"
        meaning = f"of probes answer under {_seconds(threshold)}"
    elif slo.sli == "ratio":
        label = f"{slo.stream} ratio of {slo.target}{region}"
        meaning = f"of {slo.stream} events are good"
    else:
        shown = _seconds(threshold) if (slo.value or "").endswith("_seconds") \
            else number(threshold, 2)
        label = f"{slo.value} of {slo.target}{region}"
        meaning = f"with {slo.value} {slo.comparison} {shown}"
    key = (slo.target, slo.sli, slo.stream or "", slo.value or "", slo.region or "")
    return key, label, meaning


def metric_rows(phases: Sequence[PhaseStatus], slos: Mapping[str, SloConfig],
                measured: Mapping[str, SloStatus]) -> list[MetricRow]:
    """Rows in order of first appearance; a cell lists the SLOs one phase names there."""
    order: list[tuple[str, ...]] = []
    labels: dict[tuple[str, ...], str] = {}
    cells: dict[tuple[str, ...], list[list[Cell]]] = {}
    for index, phase in enumerate(phases):
        for name, state in phase.slos:
            key, label, meaning = _metric(slos.get(name), name)
            if key not in cells:
                order.append(key)
                labels[key] = label
                cells[key] = [[] for _ in phases]
            status = measured.get(name)
            objective = slos[name].objective if name in slos else 0.0
            cells[key][index].append(Cell(name, _cell_state(state),
                                          status.sli if status else None, objective, meaning))
    return [MetricRow(labels[key], tuple(tuple(c) for c in cells[key])) for key in order]


def short_name(phase: PhaseStatus) -> str:
    """"Phase 2: Growth (1,000–10,000 users)" → "Phase 2", for the one-line verdict."""
    return phase.title.split(":", 1)[0].strip() or phase.name


def headline(phases: Sequence[PhaseStatus], triggers: Sequence[TriggerRow], now: float
             ) -> str:
    """The decision in one line, e.g. "Phase 2 targets met; trigger uptime-critical fired
    3d ago → consider Phase 3". The latest met phase counts; the firing trigger that
    points at the latest phase decides the suggestion."""
    met = [p for p in phases if p.state == "met"]
    missed = [p for p in phases if p.state == "not_met"]
    if met:
        verdict = f"{short_name(met[-1])} targets met"
    elif missed:
        verdict = f"{short_name(missed[0])} targets not met"
    elif phases:
        verdict = "no phase's targets can be judged yet (no data)"
    else:
        return "No scaling phases are configured (see `phases:` in config.yaml)."
    firing = [row for row in triggers if row.status.firing]
    if not firing:
        return f"{verdict[0].upper()}{verdict[1:]}; no decision trigger is firing → " \
               "no upgrade indicated now."
    position = {p.name: i for i, p in enumerate(phases)}
    top = max(firing, key=lambda r: (position.get(r.status.phase or "", -1), r.since or 0.0))
    when = f"fired {duration(now - top.since)} ago" if top.since is not None else "is firing"
    more = f" (and {len(firing) - 1} more)" if len(firing) > 1 else ""
    target = next((p for p in phases if p.name == top.status.phase), None)
    if target is None:
        action = "review the triggers below"
    elif met and position[target.name] <= position[met[-1].name]:
        action = f"{short_name(target)} is reached: review its capacity"
    else:
        action = f"consider {short_name(target)}"
    return f"{verdict[0].upper()}{verdict[1:]}; trigger {top.status.name} {when}{more} " \
           f"→ {action}."


def trigger_rows(rules: Sequence[TriggerRule], current: Sequence[TriggerStatus],
                 events: Sequence[AlertEvent]) -> list[TriggerRow]:
    """Triggers with their condition in words; "since" falls back to the stored history
    because the tracker's memory starts afresh when the process restarts."""
    by_name = {rule.name: rule for rule in rules}
    last_event: dict[str, AlertEvent] = {}
    last_fired: dict[str, float] = {}
    for event in events:  # oldest first
        if event.key.startswith("trigger:"):
            name = event.key.removeprefix("trigger:")
            last_event[name] = event
            if event.transition == "fired":
                last_fired[name] = event.at
    rows = []
    for status in current:
        rule = by_name.get(status.name)
        measure, stat = (rule.measure, rule.stat) if rule else ("", "")
        sign = ">" if status.direction == "above" else "<"
        condition = (f"{stat} of {measure} on {rule.target} over {duration(rule.window)} "
                     f"{sign} {amount(measure, stat, status.threshold)}") if rule else ""
        since = status.since
        previous = last_event.get(status.name)
        if since is None and status.firing and previous and previous.transition == "fired":
            since = previous.at
        rows.append(TriggerRow(status, condition, amount(measure, stat, status.value),
                               amount(measure, stat, status.threshold), since,
                               status.since or last_fired.get(status.name)))
    return rows


def _reason(rule: TriggerRule | None, reason: str) -> str:
    """The evaluator stores "<description>: <raw value>"; show the value in its unit."""
    text, _, raw = reason.rpartition(": ")
    try:
        value = float(raw)
    except ValueError:
        return reason
    if rule is None:
        return reason
    return f"{text}: {amount(rule.measure, rule.stat, value)}"


def history_rows(rules: Sequence[TriggerRule], events: Sequence[AlertEvent]
                 ) -> list[HistoryRow]:
    """Fired/resolved transitions of the triggers, newest first."""
    by_name = {rule.name: rule for rule in rules}
    rows = []
    for event in reversed(events):
        if not event.key.startswith("trigger:"):
            continue
        name = event.key.removeprefix("trigger:")
        rule = by_name.get(name)
        rows.append(HistoryRow(event.at, name, rule.description if rule else "",
                               event.transition, _reason(rule, event.reason)))
        if len(rows) == HISTORY_ROWS:
            break
    return rows


def _read(runtime: Runtime, now: float) -> tuple[list[TriggerStatus], list[AlertEvent]]:
    """The slow part (raw results over trigger windows, 30 days of events)."""
    triggers = runtime.service.trigger_statuses()
    events = alert_events.between(runtime.service.engine, now - HISTORY_SECONDS, now + 1)
    return triggers, events


def _phase_configs(settings: Settings) -> dict[str, Phase]:
    return {phase.name: phase for phase in settings.phases}


@router.get("/phases", response_class=HTMLResponse, include_in_schema=False)
async def phases_page(request: Request) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    now = runtime.service.clock.now()
    current = await statuses(runtime)
    phase_list = runtime.service.phases(current)
    triggers, events = await asyncio.to_thread(cache_of(runtime).get, "phases-page",
                                               lambda: _read(runtime, now))
    slos = {slo.name: slo for slo in settings.slos}
    rows = metric_rows(phase_list, slos, {s.name: s for s in current})
    triggered = trigger_rows(settings.triggers, triggers, events)
    titles = {p.name: short_name(p) for p in phase_list}
    return await page(request, "phases.html.j2", title="Scaling phases",
                      headline=headline(phase_list, triggered, now), phases=phase_list,
                      descriptions={n: p.description for n, p in _phase_configs(settings).items()},
                      rows=rows, triggers=triggered, phase_titles=titles,
                      history=history_rows(settings.triggers, events),
                      history_days=HISTORY_SECONDS // 86400)
