"""`/slos/{name}`: one SLO in depth: budget burn-down over its window, SLI, burn rate
and latency over a picked range, the alert windows, and the incidents that spent budget.

The header numbers are the last evaluation's `SloStatus`, the very object the API's
`slo_json` renders, so page and API never disagree; the charts come from rollups
(`dashboards/slo_data.py`). No data is drawn as "No data", never as a flat 100%.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from dashboards.data import cache_of, statuses
from dashboards.ranges import RANGES, TimeRange, parse_range
from dashboards.render import collecting, page
from dashboards.slo_data import SloSeries, read_series
from dashboards.svg import Chart, Point, Reference, Series, budget_bar, line_chart
from monitor.config_slo import SloConfig
from monitor.runtime import Runtime
from monitor.slo_engine import alert_tiers, window_spec
from monitor.units import format_duration
from slo.budget import BURN_WINDOWS, BurnThreshold, burn_rate, sli
from slo.status import SloStatus, percentiles
from slo.windows import period_bounds

router = APIRouter()
WINDOW_NAMES = {"quarter": "calendar quarter", "month": "calendar month",
                "week": "calendar week"}
_LONGEST_RANGE = max(RANGES, key=RANGES.__getitem__)
BURN_CLIP = 1.5
"""Burn rates above this many times the highest threshold are drawn at the chart's top:
a 500× spike would otherwise squash every threshold line into the x axis."""


def default_range(slo: SloConfig) -> str:
    """The range matching the SLO's window: the month for a calendar month, else the
    shortest range covering the window. A quarter (like a rolling 90d) is longer than
    every range, so it gets the longest one, 30d: the last month of it in detail."""
    if slo.window == "month":
        return "month"
    if slo.window == "quarter":
        return _LONGEST_RANGE
    seconds = 7 * 86400 if slo.window == "week" else float(slo.window)
    return next((key for key, length in RANGES.items() if length >= seconds), _LONGEST_RANGE)


def window_text(slo: SloConfig) -> str:
    if isinstance(slo.window, str):
        return WINDOW_NAMES[slo.window]
    return f"rolling {format_duration(slo.window)}"


def sli_text(slo: SloConfig) -> str:
    """What counts as good, in the words of the config."""
    if slo.sli == "latency" and slo.threshold is not None:
        return f"latency: requests answered in ≤ {slo.threshold * 1000:g} ms"
    if slo.sli == "threshold":
        return f"threshold: {slo.value} {slo.comparison} {slo.threshold:g}"
    if slo.sli == "ratio":
        return f"ratio: good / total events of stream {slo.stream}"
    return "availability: successful probes / all probes"


def _step_text(seconds: int) -> str:
    return format_duration(seconds).replace("1h", "hour").replace("1d", "day")


def _x_labels(start: float, end: float, count: int = 5) -> list[tuple[float, str]]:
    """A few UTC time labels, inset from the edges so the last one is not cut off by
    the chart's right border; as precise as the span needs to tell them apart."""
    span = end - start
    fmt = "%H:%M" if span <= 86400 else "%d %b %H:%M" if span <= 5 * 86400 else "%d %b"
    moments = [start + (i + 0.5) / count * (end - start) for i in range(count)]
    return [(at, datetime.fromtimestamp(at, UTC).strftime(fmt) + (" UTC" if i == 0 else ""))
            for i, at in enumerate(moments)]


def draw(chart: Chart) -> str:
    """The chart, or svg.py's "No data" picture when no series has a single value: a
    threshold line over nothing would read as a quiet, healthy service."""
    if not any(y is not None for s in chart.series for _, y in s.points
               if s.css != "line-ideal"):
        return line_chart(Chart(title=chart.title, series=(), width=chart.width,
                                height=chart.height))
    return line_chart(chart)


@dataclass(frozen=True, slots=True)
class Figure:
    """A chart and what the page says about it (caption, counts for tests and readers)."""

    key: str
    title: str
    svg: str
    buckets: int
    points: int
    caption: str = ""


def burndown_figure(slo: SloConfig, status: SloStatus, series: SloSeries,
                    period_end: float) -> Figure:
    start = float(status.window_start)
    ideal = [(start, 100.0), (period_end, 0.0)]
    actual: list[Point] = [(x, None if y is None else y * 100) for x, y in series.burndown]
    values = [y for _, y in actual if y is not None]
    # 0% is "exhausted"; an overspent budget goes below it, down to -100% on the axis
    # (twice the budget spent). Deeper values are drawn at the bottom, so one bad week
    # does not squash the rest of the chart into a line.
    floor = max(-100.0, min(0.0, min(values) * 1.1)) if values else 0.0
    caption = ("Dashed grey: the ideal line, the whole budget spent evenly by the end of "
               "the window. Below it, budget goes faster than planned.")
    if values and min(values) < floor:
        caption += (f" Values below {floor:,.0f}% (lowest {min(values):,.0f}%: the "
                    "budget was overspent that much) are drawn at the bottom.")
    if collecting(status):
        caption += f" {collecting(status).capitalize()}."
    title = (f"Error budget left over the {window_text(slo)} window, "
             f"per {_step_text(series.window_step)}")
    chart = Chart(title, [Series("ideal: spent evenly over the window", ideal, "line-ideal"),
                          Series("budget left", actual)],
                  [Reference("budget exhausted", 0.0)], y_min=floor, y_max=100.0,
                  y_format="{:.0f}%", x_labels=_x_labels(start, period_end))
    return Figure("burndown", title, draw(chart), len(actual), len(values), caption)


def _range_title(what: str, picked: TimeRange, step: int) -> str:
    span = "calendar month" if picked.key == "month" else f"last {picked.key}"
    return f"{what} over the {span}, per {_step_text(step)}"


def sli_figure(slo: SloConfig, picked: TimeRange, series: SloSeries) -> Figure:
    points: list[Point] = []
    for key in series.range_keys:
        good, total = series.range_counts.get(key, (0.0, 0.0))
        value = sli(good, total)
        points.append((float(key), None if value is None else value * 100))
    title = _range_title("SLI", picked, series.range_step)
    chart = Chart(title, [Series("SLI", points)],
                  [Reference(f"objective {slo.objective * 100:g}%", slo.objective * 100,
                             "objective")],
                  y_max=100.0, y_format="{:.2f}%",
                  x_labels=_x_labels(picked.start, picked.end))
    known = sum(1 for _, y in points if y is not None)
    return Figure("sli", title, draw(chart), len(points), known,
                  "Gaps are buckets without events: no data, not 100%.")


def burn_figure(slo: SloConfig, picked: TimeRange, series: SloSeries,
                tiers: tuple[BurnThreshold, ...]) -> Figure:
    points: list[Point] = []
    for key in series.range_keys:
        good, total = series.range_counts.get(key, (0.0, 0.0))
        points.append((float(key), burn_rate(good, total, slo.objective)))
    thresholds: dict[float, list[str]] = {}
    for tier in tiers:
        thresholds.setdefault(tier.threshold, []).append(
            f"{tier.severity} {format_duration(tier.long_window_s)}")
    references = [Reference(f"{value:.3g}× {', '.join(names)}", value)
                  for value, names in sorted(thresholds.items(), reverse=True)]
    top = max(thresholds, default=1.0) * BURN_CLIP
    peak = max((y for _, y in points if y is not None), default=0.0)
    title = _range_title("Burn rate", picked, series.range_step)
    caption = "1× spends the budget exactly over the window."
    if peak > top:
        caption += f" Peaks above {top:g}× (highest: {peak:,.0f}×) are drawn at the top."
    chart = Chart(title, [Series("burn rate", points)], references, y_min=0.0,
                  y_max=top if peak > top else None, y_format="{:.3g}×",
                  x_labels=_x_labels(picked.start, picked.end))
    known = sum(1 for _, y in points if y is not None)
    return Figure("burn", title, draw(chart), len(points), known, caption)


def latency_figure(slo: SloConfig, picked: TimeRange, series: SloSeries) -> Figure:
    lines: dict[str, list[Point]] = {"p50": [], "p95": [], "p99": []}
    for key in series.range_keys:
        found = percentiles(series.range_bins.get(key, {}))
        for label, points in lines.items():
            value = found.get(label)
            points.append((float(key), None if value is None else value * 1000))
    title = _range_title("Latency p50 / p95 / p99", picked, series.range_step)
    threshold = (slo.threshold or 0.0) * 1000
    chart = Chart(title, [Series(label, points, f"line-{label}")
                          for label, points in lines.items()],
                  [Reference(f"threshold {threshold:g} ms", threshold)], y_min=0.0,
                  y_format="{:.0f} ms", x_labels=_x_labels(picked.start, picked.end))
    known = sum(1 for _, y in lines["p50"] if y is not None)
    return Figure("latency", title, draw(chart), len(lines["p50"]), known,
                  "p50 green, p95 amber, p99 red (hover a line for its name).")


def burn_rows(status: SloStatus, tiers: tuple[BurnThreshold, ...]) -> list[dict[str, Any]]:
    """One row per alert window: its burn rate now, every tier that reads it (threshold,
    severity, the window pair) and whether that tier is firing."""
    firing = status.alert.tier if status.alert.severity and not status.alert.suppressed \
        else None
    rows = []
    for label, seconds in BURN_WINDOWS:
        burn = status.burn_rates.get(label)
        uses = []
        for index, tier in enumerate(tiers):
            if seconds not in (tier.long_window_s, tier.short_window_s):
                continue
            if index == firing:
                verdict, css = f"▲ firing ({tier.severity})", "bad"
            elif burn is None:
                verdict, css = "◌ no data", "nodata"
            elif burn >= tier.threshold:
                verdict, css = "! above (tier not firing)", "warn"
            else:
                verdict, css = "✓ below", "ok"
            uses.append({"threshold": tier.threshold, "severity": tier.severity,
                         "pair": f"{format_duration(tier.long_window_s)} + "
                                 f"{format_duration(tier.short_window_s)}",
                         "verdict": verdict, "css": css})
        rows.append({"window": label, "burn": burn, "tiers": uses})
    return rows


def _status_of(runtime: Runtime, current: list[SloStatus], name: str) -> SloStatus:
    found = next((s for s in current if s.name == name), None)
    return found if found is not None else runtime.service.slo_status(name)


@router.get("/slos/{name}", response_class=HTMLResponse, include_in_schema=False)
async def slo_page(request: Request, name: str,
                   range_: Annotated[str | None, Query(alias="range")] = None
                   ) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    slo = runtime.settings.slo(name)
    if slo is None:
        return await page(request, "slo.html.j2", title="Unknown SLO", status_code=404,
                          missing=name, known=[s.name for s in runtime.settings.slos])
    current = await statuses(runtime)
    status = await asyncio.to_thread(_status_of, runtime, current, name)
    now = runtime.service.clock.now()
    picked = parse_range(range_, now, default=default_range(slo))
    window = (status.window_start, status.window_start + status.window_seconds)
    period_end = (period_bounds(window_spec(slo), now)[1] if slo.calendar
                  else float(window[1]))
    key = ("slo-page", name, picked.key, picked.end, status.evaluated_at)
    series = await asyncio.to_thread(
        cache_of(runtime).get, key,
        lambda: read_series(runtime.service.engine, slo, window=window,
                            expected_events=status.expected_events or status.total,
                            span=(int(picked.start), int(picked.end)), now=now))
    tiers = alert_tiers(slo, status.period_seconds)
    figures = [sli_figure(slo, picked, series), burn_figure(slo, picked, series, tiers)]
    if slo.sli == "latency":
        figures.append(latency_figure(slo, picked, series))
    return await page(request, "slo.html.j2", title=f"SLO {name}", missing=None, slo=slo,
                      s=status, window_text=window_text(slo), sli_text=sli_text(slo),
                      range_key=picked.key, budget_bar=budget_bar(status.budget_remaining),
                      burndown=burndown_figure(slo, status, series, period_end),
                      figures=figures, burn_rows=burn_rows(status, tiers),
                      incidents=series.incidents)
