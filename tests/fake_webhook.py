"""A recording HTTP receiver on 127.0.0.1: what a webhook endpoint saw, and scripted answers.

Also the base of `tests/fake_pagerduty.py`. Requests arrive on server threads, so every
list is guarded by one condition variable, and `wait_for` lets an end-to-end test wait for
deliveries made by the outbox's worker thread.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers import RouteServer, route_server

WEBHOOK_PATH = "/hooks/primewatch"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived, and the status the fake answered."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased; a repeated header keeps its last value."""
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Answer:
    """A scripted response."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def answer(handler: BaseHTTPRequestHandler, reply: Answer) -> None:
    """Send `reply` with its extra headers (tests.servers.send takes none)."""
    data = reply.body.encode()
    handler.send_response(reply.status)
    handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class Recorder:
    """Thread-safe request log plus a queue of scripted answers."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._received: list[Received] = []
        self._scripted: deque[Answer] = deque()

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order, before the normal behaviour."""
        with self._changed:
            self._scripted.extend(answers)

    def next_scripted(self) -> Answer | None:
        with self._changed:
            return self._scripted.popleft() if self._scripted else None

    def record(self, handler: BaseHTTPRequestHandler, body: bytes, status: int) -> None:
        item = Received(handler.command, handler.path,
                        {k.lower(): v for k, v in handler.headers.items()}, body, status)
        with self._changed:
            self._received.append(item)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0,
                 where: Callable[[Received], bool] = lambda _: True) -> list[Received]:
        """Block until `count` matching requests arrived; fail loudly after `timeout`."""
        def matching() -> list[Received]:
            return [item for item in self._received if where(item)]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(matching())}")
            return matching()


class FakeWebhook(Recorder):
    """A webhook endpoint answering 204 unless told otherwise."""

    def __init__(self, server: RouteServer, path: str = WEBHOOK_PATH) -> None:
        super().__init__()
        self.url = server.url + path
        server.routes[path] = self._handle

    @property
    def deliveries(self) -> list[Received]:
        return self.received

    def respond_next(self, n: int, status: int, *, body: str = "",
                     headers: dict[str, str] | None = None) -> None:
        self.script(*[Answer(status, body, dict(headers or {})) for _ in range(n)])

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = read_body(handler)
        reply = self.next_scripted() or Answer(204)
        self.record(handler, body, reply.status)
        if reply.status == 204:
            handler.send_response(204)
            handler.end_headers()
        else:
            answer(handler, reply)


@contextmanager
def fake_webhook() -> Iterator[FakeWebhook]:
    with route_server() as server:
        yield FakeWebhook(server)



@contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """(host, port) that completes TCP connects but never reads or answers: timeouts.

    The kernel finishes the handshake from the listen backlog, so clients connect fine
    and then wait for a response that never comes.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield "127.0.0.1", int(sock.getsockname()[1])
