"""How `primewatch run` configures uvicorn: proxy trust, keep-alive and header limits.

Why a module of its own: tests start a real `uvicorn.Server` from `server_config`, so
what they check is what production runs, not a copy of its arguments.

- Proxy headers: honoured only from `server.trusted_proxies` (none by default). uvicorn's
  own default trusts loopback, where any local process connects from too.
- Slow headers: uvicorn's h11 protocol starts no timer until a response is sent, so a
  client that sends half a request line holds its socket (and a file descriptor) for
  ever; 200 of them stayed open for 45 s and more in a test. `HeaderTimeoutProtocol`
  closes a connection whose request headers are not complete `HEADER_TIMEOUT` seconds
  after it opened (or after the previous response, on a kept-alive connection).
- Sizes: h11 refuses request heads larger than `MAX_HEAD_BYTES` (431/400), so slow
  clients cannot grow a buffer either; bodies are capped by `server.max_body_bytes`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from monitor.config import Settings

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a complete request head (request line and headers)."""
KEEP_ALIVE_TIMEOUT = 5
"""Seconds an idle kept-alive connection stays open after a response (uvicorn's default,
stated so it is a decision and not an accident)."""
MAX_HEAD_BYTES = 16 * 1024
"""Largest request head accepted: room for a long cookie and a bearer token."""


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request's head."""

    header_timeout: float = HEADER_TIMEOUT
    _head_deadline: asyncio.TimerHandle | None = None
    _waiting_after: object = None  # the cycle answered before the head now awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is not None and self.cycle is not self._waiting_after:
            self._disarm()  # h11 parsed a whole head: a new request cycle started

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets a deadline too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._head_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if not answering and not self.transport.is_closing():  # still waiting for a head
            self.transport.close()


def server_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration `primewatch run` serves `app` with."""
    trusted = list(settings.server.trusted_proxies)
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        http=HeaderTimeoutProtocol,
        # uvicorn rewrites the client from X-Forwarded-For only for these peers; the
        # app's `client_address` applies the same rule (and is what tests exercise)
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT, h11_max_incomplete_event_size=MAX_HEAD_BYTES)
