"""The write audit: who did what, when and from where, for every write to the API.

`AuditMiddleware` records each POST/PUT/PATCH/DELETE under the audited prefixes,
refused ones too (401, 403, 413, 429), so a guessing attacker leaves a trail as well as
an operator who resolved an incident. The row is written off the event loop just
before the response's last byte is sent, so a client that got its answer can already
read its own entry. A failing audit write is logged, never turned into a failed request:
the write it describes has already happened.

Only the path is kept, never the query string or the body: either may hold a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Engine, insert, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.auth import ACTOR_STATE
from monitor.clock import Clock
from monitor.ratelimit import client_address
from monitor.storage.models import AuditRow
from monitor.timestamps import epoch, iso_utc

log = logging.getLogger(__name__)
router = APIRouter(tags=["audit"])

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/api/", "/slack/")
"""The API and Slack's buttons: every route there that changes something."""
ANONYMOUS = "anonymous"
_MAX_ERROR_BODY = 4096  # bytes of an error response read for its message


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    method: str
    path: str
    status: int
    client: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "method": self.method,
                "path": self.path, "status": self.status, "client": self.client,
                "summary": self.summary}


def record(engine: Engine, entry: AuditEntry) -> None:
    """Append one entry (its own transaction: it must not ride on the write's)."""
    values = entry.as_dict()
    values.update(actor=entry.actor[:100], path=entry.path[:500], client=entry.client[:100],
                  summary=entry.summary[:500])
    with engine.begin() as connection:
        connection.execute(insert(AuditRow).values(**values))


def recent(engine: Engine, *, limit: int, since: float | None = None
           ) -> list[tuple[int, AuditEntry]]:
    """(id, entry) pairs, newest first."""
    query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [(row.id, AuditEntry(row.at, row.actor, row.method, row.path, row.status,
                                row.client, row.summary)) for row in rows]


def summarise(scope: Scope, status: int, error_body: bytes) -> str:
    """What was asked, in a few words: the route and its path parameters when it ran,
    and the error message when it was refused. Never the query string or the body."""
    endpoint = scope.get("endpoint")
    params = scope.get("path_params") or {}
    what = getattr(endpoint, "__name__", "") or "unrouted"
    if params:
        what += "(" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"
    if status < 400:
        return what
    return f"{what}: {_error_message(error_body) or f'HTTP {status}'}"


def _error_message(body: bytes) -> str:
    try:
        decoded = json.loads(body)
    except ValueError:
        return ""
    error = decoded.get("error") if isinstance(decoded, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


class AuditMiddleware:
    """ASGI middleware writing an `AuditEntry` for every audited write request."""

    def __init__(self, app: ASGIApp, engine: Engine, clock: Clock) -> None:
        self.app, self.engine, self.clock = app, engine, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS \
                or not str(scope.get("path", "")).startswith(AUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})  # request.state, shared
        status = 500
        error_body = bytearray()
        written = False

        async def write() -> None:
            nonlocal written
            written = True
            entry = AuditEntry(
                at=self.clock.now(), actor=str(state.get(ACTOR_STATE) or ANONYMOUS),
                method=str(scope["method"]), path=str(scope.get("path", "")),
                status=status, client=client_address(scope),
                summary=summarise(scope, status, bytes(error_body)))
            try:
                await asyncio.to_thread(record, self.engine, entry)
            except Exception as exc:  # the write happened; losing its record is logged
                log.error("could not record the audit entry for %s %s (%d, by %s): %s",
                          entry.method, entry.path, entry.status, entry.actor,
                          type(exc).__name__)

        async def auditing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                if status >= 400 and len(error_body) < _MAX_ERROR_BODY:
                    error_body.extend(message.get("body", b"")[:_MAX_ERROR_BODY])
                if not message.get("more_body", False) and not written:
                    await write()
            await send(message)

        try:
            await self.app(scope, receive, auditing_send)
        finally:
            if not written:  # the app raised (a 500 follows) or the client went away
                await write()


@router.get("/api/v1/audit")
async def audit_log(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: Annotated[datetime | None, Query(
        description="only entries at or after this time (ISO 8601)")] = None,
) -> dict[str, Any]:
    """Recent write requests, allowed and refused, newest first."""
    engine: Engine = request.app.state.runtime.service.engine
    since_ts = epoch(since) if since is not None else None
    rows = await asyncio.to_thread(recent, engine, limit=limit, since=since_ts)
    return {"items": [{"id": id_, **entry.as_dict(), "at_iso": iso_utc(entry.at)}
                      for id_, entry in rows]}
