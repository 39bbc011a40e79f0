"""`/incidents` and `/incidents/{id}`: the incident list, and one incident's facts,
timeline and post-mortem draft.

Read-only on purpose: acknowledging and resolving need a write token and record its
name as the author, so they stay with the API and Slack. The pages read the same store
functions as `monitor/api_incidents.py`, so states, severities and timelines agree with
the JSON; the budget consumed is `gather_facts`'s number, the one the draft states.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from alerts.escalation import IncidentNotFound
from alerts.facts import gather_facts
from alerts.postmortem import IncidentFacts
from alerts.store import STATUSES, Incident, get_incident, list_incidents, postmortem_text, timeline
from dashboards.data import cache_of
from dashboards.render import page
from monitor.runtime import Runtime

router = APIRouter()

PAGE_SIZE = 25
MAX_ID = 2**63 - 1  # a larger number is no incident: the database could not even bind it
STATES: dict[str, tuple[str, str, str]] = {
    # status: (icon, text, css class): the icon and text carry the state, not the colour
    "triggered": ("◉", "Triggered", "bad"),
    "acknowledged": ("◑", "Acknowledged", "warn"),
    "resolved": ("✓", "Resolved", "ok"),
}
FILTERS = (("", "All"), ("triggered", "Triggered"), ("acknowledged", "Acknowledged"),
           ("resolved", "Resolved"))


def _markdown() -> MarkdownIt:
    """CommonMark with tables; raw HTML off because drafts quote titles and messages of
    probed targets, and images off because they would load from elsewhere (which the
    CSP refuses anyway, with a console error)."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


MARKDOWN = _markdown()


def render_markdown(text: str, own_origin: str | None = None) -> Markup:
    """Markdown → safe HTML, headings moved one level down: the page's own `<h1>` is the
    incident, the draft's title sits below it in the outline.

    Links are live only to the dashboard itself (a path, or `own_origin`, the configured
    `server.public_url`); any other becomes its text and its URL as plain text. Drafts
    quote incident titles and probe errors, which come from Alertmanager payloads and
    probed targets: `[click](http://evil.example)` there must not become a trusted
    looking link on our page."""
    tokens = MARKDOWN.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + 1)}"
        elif token.type == "inline" and token.children:
            token.children = _defang_links(token.children, own_origin)
    return Markup(MARKDOWN.renderer.render(tokens, MARKDOWN.options, {}))


def _own_link(href: str, own_origin: str | None) -> bool:
    if href.startswith("/") and not href.startswith("//") and "\\" not in href:
        return True
    if not own_origin:
        return False
    mine, theirs = urlsplit(own_origin), urlsplit(href)
    return (theirs.scheme, theirs.netloc.lower()) == (mine.scheme, mine.netloc.lower()) \
        and theirs.scheme in ("http", "https")


def _defang_links(children: list[Token], own_origin: str | None) -> list[Token]:
    """Inline tokens with every foreign link_open dropped and its link_close replaced by
    ` (<url>)` as text (nothing when the text already is the URL, as in `<url>`)."""
    kept: list[Token] = []
    foreign: list[tuple[str, int]] = []  # (href, index in kept where its text starts)
    for child in children:
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            if not _own_link(href, own_origin):
                foreign.append((href, len(kept)))
                continue
            foreign.append(("", -1))  # ours: keep it, and its close
        elif child.type == "link_close" and foreign:
            href, start = foreign.pop()
            if start >= 0:
                shown = "".join(t.content for t in kept[start:] if t.type == "text")
                if shown != href:
                    kept.append(Token("text", "", 0, content=f" ({href})"))
                continue
        kept.append(child)
    return kept


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the incident list."""

    incident: Incident
    duration: float
    budget_consumed: float | None


def _facts(runtime: Runtime, incident: Incident, now: float) -> IncidentFacts | None:
    """The draft's facts, cached per incident version: `updated_at` moves on every
    change, so an ack or resolve is seen at once; an open incident's facts run to now
    and are recomputed when the cache entry expires."""
    def make() -> IncidentFacts | None:
        try:
            return gather_facts(runtime.service.engine, runtime.settings, incident.id, now)
        except IncidentNotFound:  # deleted between the list and this read
            return None
    return cache_of(runtime).get(("incident-facts", incident.id, incident.updated_at), make)


def _duration(incident: Incident, now: float) -> float:
    end = incident.resolved_at if incident.resolved_at is not None else now
    return max(0.0, end - incident.opened_at)


def _rows(runtime: Runtime, incidents: list[Incident], now: float) -> list[Row]:
    rows = []
    for incident in incidents:
        facts = _facts(runtime, incident, now)
        rows.append(Row(incident, _duration(incident, now),
                        None if facts is None else facts.budget_consumed))
    return rows


def _href(status: str, number: int) -> str:
    query = [f"status={status}"] if status else []
    if number > 1:
        query.append(f"page={number}")
    return "/incidents" + ("?" + "&".join(query) if query else "")


MAX_PAGE = 10**9
"""Beyond any real incident list, and its offset still fits the database's 64-bit int."""


def _page_number(value: str | None) -> int:
    """`?page=` as a positive int; anything else is page 1 (an old or mangled link).
    Capped at `MAX_PAGE`: `?page=<30 digits>` made an offset no database could bind
    (a 500); past the last page, the caller shows the last page."""
    text = (value or "1").strip()
    if not text.isascii() or not text.isdigit():
        return 1
    return max(1, min(MAX_PAGE, int(text[:12])))


@router.get("/incidents", response_class=HTMLResponse, include_in_schema=False)
async def incidents(request: Request, status: str | None = None,
                    number: Annotated[str | None, Query(alias="page")] = None) -> HTMLResponse:
    """Newest first, `PAGE_SIZE` a page, filtered by state."""
    runtime: Runtime = request.app.state.runtime
    engine = runtime.service.engine
    wanted = status if status in STATUSES else ""
    current = _page_number(number)
    found, total = await asyncio.to_thread(
        list_incidents, engine, status=wanted or None, limit=PAGE_SIZE,
        offset=(current - 1) * PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if current > pages:  # past the end (incidents were pruned, or a hand-made link)
        current = pages
        found, total = await asyncio.to_thread(
            list_incidents, engine, status=wanted or None, limit=PAGE_SIZE,
            offset=(current - 1) * PAGE_SIZE)
    now = runtime.service.clock.now()
    rows = await asyncio.to_thread(_rows, runtime, found, now)
    kind = f"{STATES[wanted][1].lower()} " if wanted else ""
    summary = f"{total} {kind}incident{'s' if total != 1 else ''}"
    if total > PAGE_SIZE:
        first = (current - 1) * PAGE_SIZE + 1
        summary += f", {first}–{first + len(rows) - 1} shown"
    return await page(request, "incidents.html.j2", title="Incidents", rows=rows, states=STATES,
                      filters=[(key, name, _href(key, 1)) for key, name in FILTERS],
                      status=wanted, summary=summary, number=current, pages=pages,
                      previous=_href(wanted, current - 1) if current > 1 else None,
                      following=_href(wanted, current + 1) if current < pages else None)


def _detail(runtime: Runtime, incident_id: int) -> dict[str, Any] | None:
    """Everything the detail page shows, read in one worker thread."""
    engine = runtime.service.engine
    incident = get_incident(engine, incident_id)
    if incident is None:
        return None
    now = runtime.service.clock.now()
    text = postmortem_text(engine, incident_id) if incident.status == "resolved" else None
    return {"incident": incident, "events": timeline(engine, incident_id),
            "facts": _facts(runtime, incident, now),
            "duration": _duration(incident, now),
            "postmortem": None if text is None else render_markdown(
                text, runtime.settings.server.public_url)}


@router.get("/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False)
async def incident(request: Request, incident_id: str) -> HTMLResponse:
    """One incident; an HTML 404 page for an id that names none (a page, not JSON:
    people follow these links from chat and mail)."""
    runtime: Runtime = request.app.state.runtime
    number = int(incident_id) if incident_id.isascii() and incident_id.isdigit() else 0
    found = await asyncio.to_thread(_detail, runtime, number) if 0 < number <= MAX_ID \
        else None
    if found is None:
        return await page(request, "incident.html.j2", title="Incident not found", status_code=404,
                          incident=None, wanted=incident_id[:40], states=STATES)
    current: Incident = found["incident"]
    return await page(request, "incident.html.j2", title=f"Incident #{current.id}",
                      states=STATES, wanted=incident_id,
                      markdown_url=f"/api/v1/incidents/{current.id}/postmortem", **found)
