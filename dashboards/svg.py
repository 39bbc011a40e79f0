"""Server-side SVG charts: sparklines, line charts with reference lines, bars.

Why SVG strings: the pages must load fast on a closed network and read without
JavaScript; a chart is a few hundred bytes of markup the browser draws at once. Every
text that reaches the markup is escaped; shapes carry `<title>` children, which the
browser shows as tooltips and screen readers read. No `style=` attributes (the CSP
forbids inline styles): colours come from classes in app.css.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

Point = tuple[float, float | None]  # (x, y); y None = a gap (no data)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[Point]
    css: str = "line"  # class: line, line-ideal, line-p95 ...


@dataclass(frozen=True, slots=True)
class Reference:
    """A horizontal line (a threshold, an objective)."""

    label: str
    y: float
    css: str = "threshold"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    series: Sequence[Series]
    references: Sequence[Reference] = field(default_factory=tuple)
    width: int = 640
    height: int = 200
    y_min: float | None = None
    y_max: float | None = None
    y_format: str = "{:.3g}"
    x_labels: Sequence[tuple[float, str]] = field(default_factory=tuple)


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 24,
              title: str = "", css: str = "spark") -> str:
    """A small line over equally spaced values; gaps where a value is None."""
    known = [v for v in values if v is not None]
    label = escape(title)
    if len(known) < 2:
        return (f'<svg class="{css} empty" viewBox="0 0 {width} {height}" width="{width}" '
                f'height="{height}" role="img" aria-label="{label}: no data"><title>{label}: '
                f'no data</title></svg>')
    low, high = min([*known, 0.0]), max([*known, 1.0])
    span = high - low or 1.0
    step = width / max(1, len(values) - 1)
    paths: list[list[str]] = []
    current: list[str] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                paths.append(current)
            current = []
            continue
        y = height - 1 - (value - low) / span * (height - 2)
        current.append(f"{_fmt(index * step)},{_fmt(y)}")
    if current:
        paths.append(current)
    lines = "".join(f'<polyline points="{" ".join(p)}"/>' for p in paths)
    return (f'<svg class="{css}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{label}"><title>{label}</title>'
            f'{lines}</svg>')


def line_chart(chart: Chart) -> str:
    """Lines with axes, reference lines and point tooltips."""
    pad_left, pad_right, pad_top, pad_bottom = 56, 12, 12, 28
    w, h = chart.width, chart.height
    plot_w, plot_h = w - pad_left - pad_right, h - pad_top - pad_bottom
    xs = [x for s in chart.series for x, _ in s.points]
    ys = [y for s in chart.series for _, y in s.points if y is not None]
    ys += [r.y for r in chart.references]
    title = escape(chart.title)
    if not xs or not ys:
        return (f'<svg class="chart empty" viewBox="0 0 {w} {h}" role="img" '
                f'aria-label="{title}: no data"><title>{title}: no data</title>'
                f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="nodata">'
                f'No data</text></svg>')
    x0, x1 = min(xs), max(xs)
    y0: float = chart.y_min if chart.y_min is not None else min(ys)
    y1: float = chart.y_max if chart.y_max is not None else max(ys)
    if y1 <= y0:
        y1 = y0 + 1.0
    x_span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return pad_left + (x - x0) / x_span * plot_w

    def py(y: float) -> float:
        clamped = min(max(y, y0), y1)
        return pad_top + plot_h - (clamped - y0) / (y1 - y0) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">'
             f'<title>{title}</title>']
    for fraction in (0.0, 0.5, 1.0):
        value = y0 + (y1 - y0) * fraction
        y = py(value)
        parts.append(f'<line class="grid" x1="{pad_left}" x2="{w - pad_right}" '
                     f'y1="{_fmt(y)}" y2="{_fmt(y)}"/><text class="axis" x="{pad_left - 4}" '
                     f'y="{_fmt(y + 4)}" text-anchor="end">'
                     f'{escape(chart.y_format.format(value))}</text>')
    for x, label in chart.x_labels:
        parts.append(f'<text class="axis" x="{_fmt(px(x))}" y="{h - 8}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    for ref in chart.references:
        y = py(ref.y)
        parts.append(f'<line class="{ref.css}" x1="{pad_left}" x2="{w - pad_right}" '
                     f'y1="{_fmt(y)}" y2="{_fmt(y)}"><title>{escape(ref.label)}</title></line>'
                     f'<text class="ref-label" x="{w - pad_right}" y="{_fmt(y - 3)}" '
                     f'text-anchor="end">{escape(ref.label)}</text>')
    for series in chart.series:
        segments: list[list[str]] = [[]]
        for x, point_y in series.points:
            if point_y is None:
                segments.append([])
            else:
                segments[-1].append(f"{_fmt(px(x))},{_fmt(py(point_y))}")
        for segment in segments:
            if len(segment) == 1:
                cx, cy = segment[0].split(",")
                parts.append(f'<circle class="{series.css}" cx="{cx}" cy="{cy}" r="2"/>')
            elif segment:
                parts.append(f'<polyline class="{series.css}" points="{" ".join(segment)}">'
                             f'<title>{escape(series.name)}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


def day_bars(days: Sequence[tuple[str, float | None]], *, width: int = 600,
             height: int = 32, good_at: float = 0.999, warn_at: float = 0.99) -> str:
    """Uptime bars, one per day (Gatus / Uptime Kuma style); the tooltip states the
    day and its uptime, and the class (not only the colour) names the state."""
    if not days:
        return ""
    gap = 2
    bar = max(1.0, (width - gap * (len(days) - 1)) / len(days))
    parts = [f'<svg class="daybars" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="daily uptime, {len(days)} days"><title>Daily uptime</title>']
    for index, (day, uptime) in enumerate(days):
        if uptime is None:
            state, text = "nodata", "no data"
        else:
            state = "ok" if uptime >= good_at else "warn" if uptime >= warn_at else "bad"
            text = f"{uptime * 100:.2f}% up"
        x = index * (bar + gap)
        parts.append(f'<rect class="day {state}" x="{_fmt(x)}" y="0" width="{_fmt(bar)}" '
                     f'height="{height}" rx="1"><title>{escape(day)}: {text}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def budget_bar(remaining: float | None, *, width: int = 120, height: int = 12) -> str:
    """Error budget left as a bar; the number is always printed beside it in the page."""
    if remaining is None:
        return (f'<svg class="budget nodata" viewBox="0 0 {width} {height}" width="{width}" '
                f'height="{height}" role="img" aria-label="no data"><title>no data</title>'
                f'<rect class="track" width="{width}" height="{height}" rx="2"/></svg>')
    share = min(max(remaining, 0.0), 1.0)
    state = "ok" if remaining > 0.25 else "warn" if remaining > 0 else "bad"
    label = f"{remaining * 100:.1f}% of the error budget left"
    return (f'<svg class="budget {state}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{label}"><title>{label}</title>'
            f'<rect class="track" width="{width}" height="{height}" rx="2"/>'
            f'<rect class="fill" width="{_fmt(share * width)}" height="{height}" rx="2"/></svg>')
