"""Request bodies larger than `server.max_body_bytes` are refused with a JSON 413.

A declared Content-Length over the limit is refused before the app runs. A chunked
body (no Content-Length, or one that lies) is counted as it streams in, and reading
past the limit raises `BodyTooLarge` inside the app, which the API's HTTP error handler
turns into the same JSON 413; so no route ever holds more than the limit in memory.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.error_response import error_response


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body streamed so far exceeds the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes (server.max_body_bytes)"


class BodyLimitMiddleware:
    """ASGI middleware enforcing `max_bytes` on every HTTP request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
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
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, too_large_message(self.max_bytes),
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
