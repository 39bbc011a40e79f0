"""`/`: every SLO at a glance, open incidents on top, sortable and filterable."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dashboards.data import budget_burndown, cache_of, open_incidents, statuses
from dashboards.render import render_html, respond
from dashboards.svg import budget_bar, sparkline
from monitor.runtime import Runtime
from slo.status import SloStatus

router = APIRouter()
SORTS = {"budget": "error budget left", "name": "name", "burn": "burn rate now"}


def _labels(runtime: Runtime) -> dict[str, dict[str, str]]:
    return {slo.name: dict(slo.labels) for slo in runtime.settings.slos}


def _wanted(label: str | None, labels: dict[str, str]) -> bool:
    if not label:
        return True
    name, _, value = label.partition("=")
    return labels.get(name) == value if value else name in labels


def _sort_key(sort: str) -> Any:
    if sort == "name":
        return lambda row: row["status"].name
    if sort == "burn":
        return lambda row: -(row["burn"] or 0.0)
    # budget: least left first; no data last (it is not "worst", it is unknown)
    return lambda row: (row["status"].budget_remaining is None,
                        row["status"].budget_remaining or 0.0, row["status"].name)


def _row(status: SloStatus, labels: dict[str, str],
         burndown: list[tuple[float, float | None]]) -> dict[str, Any]:
    burn = status.burn_rates.get("1h")
    return {"status": status, "labels": labels, "burn": burn,
            "budget_bar": budget_bar(status.budget_remaining),
            "sparkline": sparkline([v for _, v in burndown],
                                   title=f"{status.name}: error budget over the window")}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def overview(request: Request, sort: str = "budget", label: str | None = None
                   ) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    current = await statuses(runtime)
    sort = sort if sort in SORTS else "budget"
    # The page only changes with an evaluation tick (or an incident): the rendered HTML
    # is reused for a few seconds, so many viewers cost one render per tick.
    evaluated = max((s.evaluated_at for s in current), default=0.0)
    html = await asyncio.to_thread(
        cache_of(runtime).get, ("overview", sort, label, evaluated),
        lambda: _render(request, runtime, current, sort, label))
    return respond(request, html)


def _render(request: Request, runtime: Runtime, current: list[SloStatus], sort: str,
            label: str | None) -> str:
    cache = cache_of(runtime)
    burndown = cache.get_stale("burndown", lambda: budget_burndown(
        runtime, runtime.settings.slos, current))
    incidents = cache.get("open-incidents", lambda: open_incidents(runtime))
    labels = _labels(runtime)
    rows = [_row(s, labels.get(s.name, {}), burndown.get(s.name, [])) for s in current
            if _wanted(label, labels.get(s.name, {}))]
    rows.sort(key=_sort_key(sort))
    measured = [s for s in current if s.state != "no_data"]
    met = sum(1 for s in measured if s.state == "ok")
    pages_open = sum(1 for i in incidents if i.severity == "page")
    summary = (f"{met} of {len(measured)} objectives met"
               + (f", {len(current) - len(measured)} without data"
                  if len(current) > len(measured) else "")
               + f", {pages_open} page{'s' if pages_open != 1 else ''} open")
    label_choices = sorted({f"{k}={v}" for item in labels.values() for k, v in item.items()})
    return render_html(request, "overview.html.j2", title="SLOs", rows=rows,
                       incidents=incidents, summary=summary, sort=sort, sorts=SORTS,
                       label=label or "", label_choices=label_choices)
