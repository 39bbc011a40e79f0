"""`/badges/{slo}.svg?kind=sli|budget|state`: a shields.io-style flat badge to embed in
READMEs and wikis.

Why a hand-built SVG: a badge is ~1 KB of markup drawn from the last evaluation, with
no font files or third-party service. The state is given by colour AND by a symbol and
word in the text, so it reads in greyscale too. Colours are presentation attributes,
not `style=` (the CSP forbids inline styles, and an <img> badge cannot use app.css).

Who may see a badge: with `dashboard.status_page.enabled`, the SLOs published on the
status page (`public: true`, or listed in a status component) are public; any other SLO
needs a reader, exactly like the pages, so a badge URL cannot be used to probe which
internal SLOs exist.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from dashboards.data import statuses
from dashboards.security import require_reader
from monitor.config import Settings
from monitor.config_slo import SloConfig
from monitor.runtime import Runtime
from slo.status import SloStatus

router = APIRouter()
KINDS = {"sli": "SLI", "budget": "error budget", "state": "state"}
COLOURS = {"ok": "#1a7f37", "warn": "#9a6700", "bad": "#cf222e", "nodata": "#6e7781"}
LABEL_COLOUR = "#555"
CACHE = "max-age=60"
HEIGHT = 20
NARROW, WIDE = set("fijlrtI.,:;!|'()[] "), set("mwMW%@")


def text_width(text: str) -> int:
    """Approximate width of 11 px Verdana: enough to size the two halves of a badge."""
    return round(sum(4.0 if c in NARROW else 10.0 if c in WIDE else 7.0 for c in text))


def render(label: str, value: str, colour: str, *, title: str | None = None) -> str:
    """The badge: grey label on the left, coloured value on the right."""
    left, right = text_width(label) + 10, text_width(value) + 10
    width = left + right
    label_text, value_text = escape(label), escape(value)
    said = escape(title or f"{label}: {value}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'role="img" aria-label="{said}"><title>{said}</title>'
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3" fill="#fff"/>'
        f'</clipPath><g clip-path="url(#r)">'
        f'<rect width="{left}" height="{HEIGHT}" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{colour}"/>'
        f'<rect width="{width}" height="{HEIGHT}" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
        f'sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="15" fill="#010101" fill-opacity=".3">{label_text}</text>'
        f'<text x="{left / 2}" y="14" data-part="label">{label_text}</text>'
        f'<text x="{left + right / 2}" y="15" fill="#010101" fill-opacity=".3">'
        f'{value_text}</text>'
        f'<text x="{left + right / 2}" y="14" data-part="value">{value_text}</text></g></svg>'
    )


def state_of(status: SloStatus) -> tuple[str, str]:
    """(colour key, words) as the pages' state badge says it."""
    if status.state == "no_data":
        return "nodata", "◌ no data"
    if status.alert.severity == "page" and not status.alert.suppressed:
        return "bad", "▲ paging"
    if status.state == "breaching":
        return "bad", "✕ breaching"
    if status.alert.severity == "ticket" and not status.alert.suppressed:
        return "warn", "! ticket"
    return "ok", "✓ met"


def value_of(status: SloStatus, kind: str) -> tuple[str, str]:
    """(colour key, value text) of one badge kind; no data is "no data", never 100%."""
    state, words = state_of(status)
    if kind == "state" or status.state == "no_data":
        return state, words
    symbol = words.split(" ", 1)[0]
    if kind == "budget":
        left = status.budget_remaining or 0.0
        colour = "ok" if left > 0.25 else "warn" if left > 0 else "bad"
        symbol = {"ok": "✓", "warn": "!", "bad": "✕"}[colour]
        return colour, f"{symbol} {left * 100:.1f}% left"
    return state, f"{symbol} {(status.sli or 0.0) * 100:.3f}%"


def is_public(settings: Settings, slo: SloConfig) -> bool:
    """Published: the status page is on and shows this SLO."""
    page = settings.dashboard.status_page
    return page.enabled and (slo.public or any(slo.name in c.slos for c in page.components))


def _svg(body: str, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="image/svg+xml",
                    headers={"Cache-Control": CACHE})


@router.get("/badges/{name}.svg", include_in_schema=False, response_class=Response)
async def badge(request: Request, name: str,
                kind: Annotated[str, Query(description="sli, budget or state")] = "sli"
                ) -> Response:
    runtime: Runtime = request.app.state.runtime
    slo = runtime.settings.slo(name)
    if slo is None or not is_public(runtime.settings, slo):
        require_reader(request)  # 401 for strangers, whether or not the SLO exists
    kind = kind if kind in KINDS else "sli"
    status = next((s for s in await statuses(runtime) if s.name == name), None)
    if slo is None or status is None:
        return _svg(render(name[:60], "unknown", COLOURS["nodata"],
                           title=f"{name[:60]}: unknown SLO"), 404)
    colour, value = value_of(status, kind)
    return _svg(render(f"{name} {KINDS[kind]}", value, COLOURS[colour]))
