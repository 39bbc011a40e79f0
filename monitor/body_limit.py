"""Request bodies larger than `server.max_body_bytes` are refused with a JSON 413.

A declared Content-Length over the limit is refused before the app runs. A chunked
body (no Content-Length, or one that lies) is counted as it streams in, and reading
past the limit raises `BodyTooLarge` inside the app, which the API's HTTP error handler
turns into the same JSON 413; so no route ever holds more than the limit in memory.

A route that needs larger bodies (Alertmanager's webhook carries a whole alert group)
gets its own `BodyLimit`, named after its own setting so the 413 says what to raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.error_response import error_response

DEFAULT_SETTING = "server.max_body_bytes"


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """At most `max_bytes` of body, configured by `setting` (named in the 413)."""

    max_bytes: int
    setting: str = DEFAULT_SETTING


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body streamed so far exceeds the limit."""

    def __init__(self, limit: int, setting: str = DEFAULT_SETTING) -> None:
        super().__init__(413, too_large_message(limit, setting))


def too_large_message(limit: int, setting: str = DEFAULT_SETTING) -> str:
    return f"request body too large: the limit is {limit} bytes ({setting})"


class BodyLimitMiddleware:
    """ASGI middleware enforcing `max_bytes` on every HTTP request body, or the
    `routes` limit of a request whose path is listed there."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 routes: Mapping[str, BodyLimit] | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.default = BodyLimit(max_bytes)
        self.routes = dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await self._refuse(limit, scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise BodyTooLarge(limit.max_bytes, limit.setting)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Routes answer it through the error handler; this covers code that reads
            # the body outside one (another middleware). Too late once a response began.
            if started:
                raise
            await self._refuse(limit, scope, receive, send)

    async def _refuse(self, limit: BodyLimit, scope: Scope, receive: Receive,
                      send: Send) -> None:
        response = error_response(413, too_large_message(limit.max_bytes, limit.setting),
                                  headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
