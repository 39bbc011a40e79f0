"""Headers every response carries (security headers, `Server-Timing`), as a pure ASGI
middleware.

Why not `@app.middleware("http")`: each such layer runs the rest of the app in a task
with memory streams between them, which cost about a millisecond per request per layer
under load (benchmarks/load.py); this one only edits the response-start message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ResponseHeadersMiddleware:
    """Adds `headers` unless the route set them, and `Server-Timing: app;dur=<ms>`
    (what the server spent until the response started, as browsers' dev tools and
    benchmarks/dashboard.py read it)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
                headers["Server-Timing"] = \
                    f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
            await send(message)

        await self.app(scope, receive, send_with_headers)
