"""Jinja2 rendering for the pages: one environment, autoescaped, with the filters the
templates share (percentages, durations, times the browser localises)."""

from __future__ import annotations

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
                       svg=Markup)
    return env


ENV = _environment()


def render_html(request: Request, template: str, *, title: str, **context: Any) -> str:
    """A page of the dashboard as HTML (layout, navigation, refresh interval)."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    return ENV.get_template(template).render(
        title=title, service=settings.service.name, path=request.url.path,
        refresh=int(settings.dashboard.refresh), now=runtime.service.clock.now(),
        query=dict(request.query_params), **context)


def respond(request: Request, html: str, status_code: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status_code)
    remember_token(request, response)
    return response


def page(request: Request, template: str, *, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """Render and answer a page of the dashboard."""
    return respond(request, render_html(request, template, title=title, **context),
                   status_code)
