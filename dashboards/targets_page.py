"""`/targets`: every probed target — last result, uptime over 24h / 7d / 30d, a latency
chart for the chosen range, error classes, TLS certificate and cold starts.

The reads live in `dashboards/targets_data.py` (bounded, one cached call per range);
this module only turns them into rows and SVG charts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from dashboards.data import cache_of
from dashboards.ranges import TimeRange, parse_range
from dashboards.render import render_shared, respond
from dashboards.svg import Chart, Reference, Series, line_chart
from dashboards.targets_data import WINDOWS, Point, TargetSummary, summaries
from monitor.config import Settings
from monitor.runtime import Runtime

router = APIRouter()
CERT_WARN_DAYS = 14.0  # a certificate closer to expiry than this is flagged


LABEL_STEPS = (3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)


def _x_labels(span: TimeRange, most: int = 6) -> list[tuple[float, str]]:
    """Axis labels at whole UTC hours or days, at most `most` of them (an SVG cannot
    follow the viewer's zone; the caption says UTC)."""
    step = next((s for s in LABEL_STEPS if span.seconds / s <= most), LABEL_STEPS[-1])
    pattern = "%H:%M" if step < 86400 else "%d %b"
    first = -(-span.start // step) * step
    margin = span.seconds * 0.04  # a label at the very edge would be cut in half
    return [(at, datetime.fromtimestamp(at, UTC).strftime(pattern))
            for at in range(int(first), int(span.end), step)
            if span.start + margin <= at <= span.end - margin]


def _framed(points: list[Point], span: TimeRange) -> list[Point]:
    """Gap points at both ends of the range, so the x axis is the range (not just the
    span of the data) and the labels sit where their times are."""
    return [(span.start, None), *points, (span.end, None)]


def _chart(summary: TargetSummary, settings: Settings, span: TimeRange) -> str:
    latency = summary.latency
    name = summary.config.name
    if latency.kind == "raw":
        series = [Series(f"{name}: latency of each successful probe (ms)",
                         _framed(latency.series["latency"], span), "line")]
    else:
        series = [Series(f"{name}: p50 latency (ms), the lower line",
                         _framed(latency.series["p50"], span), "line-p50"),
                  Series(f"{name}: p95 latency (ms), the upper line",
                         latency.series["p95"], "line-p95")]
    references = [Reference(f"SLO {slo.name}: {slo.threshold * 1000:g} ms",
                            slo.threshold * 1000, "objective")
                  for slo in settings.slos
                  if slo.target == name and slo.sli == "latency" and slo.threshold is not None]
    return line_chart(Chart(title=f"{name}: latency over the last {span.key}",
                            series=series, references=references, y_min=0.0,
                            y_format="{:.0f} ms", x_labels=_x_labels(span)))


def _cert_state(days: float | None) -> str:
    if days is None:
        return "nodata"
    return "bad" if days < 0 else "warn" if days < CERT_WARN_DAYS else "ok"


def _row(summary: TargetSummary, settings: Settings, span: TimeRange) -> dict[str, Any]:
    return {"summary": summary, "chart": _chart(summary, settings, span),
            "cert_state": _cert_state(summary.cert_days_left),
            "type": getattr(summary.config, "type", ""),
            "url": summary.config.display_url(),
            "failures": sum(count for _, count in summary.errors)}


@router.get("/targets", response_class=HTMLResponse, include_in_schema=False)
async def targets(request: Request,
                  chosen: Annotated[str | None, Query(alias="range")] = None) -> HTMLResponse:
    """Every target; `?range=` picks the span of the chart, error and cold start counts
    (uptime always shows its three fixed windows)."""
    runtime: Runtime = request.app.state.runtime
    key = parse_range(chosen, runtime.service.clock.now()).key
    engine, settings = runtime.service.engine, runtime.settings

    def make() -> str:
        now = runtime.service.clock.now()
        span = parse_range(key, now)
        found = summaries(engine, settings, span, now)
        failing = sum(1 for s in found if s.last is not None and not s.last.ok)
        summary = (f"{len(found)} target{'s' if len(found) != 1 else ''}, "
                   f"{failing} failing at the last probe")
        return render_shared(runtime, "/targets", "targets.html.j2", title="Targets",
                             rows=[_row(s, settings, span) for s in found], span=span,
                             windows=list(WINDOWS), summary=summary,
                             raw_days=settings.storage.retention.raw / 86400)

    # Every target's chart: megabytes of HTML (3.4 s to render at 2,000 targets), the
    # same for every reader. Rendered in a worker thread, once per snapshot, and served
    # stale-while-revalidate (<= 30 s old): one HTML string per range, however many
    # readers, and never on the event loop the probes run on.
    html = await asyncio.to_thread(
        cache_of(runtime).get_stale, ("targets", key), make, fresh_for=30.0)
    return respond(request, html)
