"""Jinja2 rendering for the pages: one environment, autoescaped, with the filters the
templates share (percentages, durations, times the browser localises)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from dashboards.security import remember_token

TEMPLATES = Path(__file__).resolve().parent / "templates"


def percent(value: float | None, digits: int = 2) -> str:
    """0.99912 → "99.91%"; None → "—" (no data is not zero)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{digits}f}%"


def budget(remaining: float | None) -> str:
    """The error budget left: "62.5%"; once overspent "exhausted (−25.0%)", the share
    spent beyond it; "—" without data."""
    if remaining is None or (isinstance(remaining, float) and math.isnan(remaining)):
        return "—"
    if remaining < 0:
        return f"exhausted ({remaining * 100:.1f}%)".replace("-", "−")
    return f"{remaining * 100:.1f}%"


def collecting(status: Any) -> str:
    """"collecting since 2026-12-07 20:55 UTC, 0.3% of the window" while a young SLO's
    window is not yet full of data; "" once it is (or without data)."""
    since, coverage = status.collecting_since, status.window_coverage
    if since is None or coverage >= 1.0:
        return ""
    moment = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"collecting since {moment}, {coverage * 100:.1f}% of the window"


def duration(seconds: float | None) -> str:
    """Seconds → "2d 3h", "14m 5s", "—"."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def when(timestamp: float | None) -> Markup:
    """A <time> element: UTC ISO in the markup, shown in the viewer's zone by app.js."""
    if timestamp is None:
        return Markup("—")
    moment = datetime.fromtimestamp(timestamp, UTC)
    iso = moment.isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(
        iso, moment.strftime("%Y-%m-%d %H:%M UTC"))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        ["html", "j2", "svg"], default_for_string=True), undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(percent=percent, duration=duration, number=number, when=when,
                       svg=Markup, budget=budget, collecting=collecting)
    return env


ENV = _environment()


def render_html(request: Request, template: str, *, title: str, **context: Any) -> str:
    """A page of the dashboard as HTML (layout, navigation, refresh interval)."""
    return _render(request.app.state.runtime, request.url.path,
                   dict(request.query_params), template, title=title, **context)


def render_shared(runtime: Any, path: str, template: str, *, title: str,
                  **context: Any) -> str:
    """A page that is the same for every reader: nothing of the request (its query may
    carry a `token`) goes in, so one rendering can be served to all of them."""
    return _render(runtime, path, {}, template, title=title, **context)


def _render(runtime: Any, path: str, query: dict[str, str], template: str, *, title: str,
            **context: Any) -> str:
    settings = runtime.settings
    return ENV.get_template(template).render(
        title=title, service=settings.service.name, path=path,
        refresh=int(settings.dashboard.refresh), now=runtime.service.clock.now(),
        query=query, **context)


def respond(request: Request, html: str, status_code: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status_code)
    remember_token(request, response)
    return response


async def page(request: Request, template: str, *, title: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
    """Render and answer a page of the dashboard. Rendered in a worker thread: the
    targets page is megabytes of HTML (3.4 s at 2,000 targets), which on the event loop
    would stall every probe for as long."""
    html = await asyncio.to_thread(render_html, request, template, title=title, **context)
    return respond(request, html, status_code)
