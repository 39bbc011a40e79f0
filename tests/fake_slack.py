"""A local stand-in for Slack (Web API + one incoming webhook) on 127.0.0.1.

Slack cannot be reached from this network, so notifier tests point slack-sdk at this
server instead (`WebClient(base_url=fake.api_url)`, `WebhookClient(fake.webhook_url)`).
It answers with Slack's real response shapes and status codes, keeps the messages it was
sent (so a test can look at what the channel would show after updates), records every
request, and can be told to fail the next calls:

    with fake_slack() as fake:
        fake.fail_next(1, status=429, retry_after=7)   # HTTP 429 + Retry-After: 7
        fake.reject_next("invalid_auth")               # HTTP 200 {"ok": false, ...}
        ...
        fake.calls("chat.postMessage")[0].body["blocks"]
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.servers import Handler, RouteServer

TOKEN = "xoxb-fake-0000-token"
"""The one bot token the fake accepts; any other answers `invalid_auth`."""
CHANNELS: Mapping[str, str] = {"#oncall": "C0123", "oncall": "C0123", "C0123": "C0123"}
"""Channel names and ids the fake knows, mapped to the id Slack answers with."""
WEBHOOK_PATH = "/services/T000/B000/XXXX"
REVOKED_WEBHOOK_PATH = "/services/T000/B000/REVOKED"
_FIRST_TS_MICROS = 1_700_000_000_000_100
_TS_STEP_MICROS = 100


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    """The Web API method ("chat.postMessage"), or "webhook"."""
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    """The JSON body, or the form fields (first value of each)."""


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | None
    error: str

    def headers(self) -> dict[str, str]:
        """Retry-After as Slack writes it: whole seconds when whole."""
        if self.retry_after is None:
            return {}
        seconds = self.retry_after
        return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}


class FakeSlack:
    """Routes, recorded requests and programmed failures; build with `fake_slack()`."""

    def __init__(self, server: RouteServer, *, token: str = TOKEN,
                 channels: Mapping[str, str] = CHANNELS) -> None:
        self.token = token
        self.channels = dict(channels)
        self.api_url = f"{server.url}/api/"
        self.webhook_url = f"{server.url}{WEBHOOK_PATH}"
        self.revoked_webhook_url = f"{server.url}{REVOKED_WEBHOOK_PATH}"
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._messages: dict[str, dict[str, Any]] = {}
        self._next_ts = _FIRST_TS_MICROS
        server.routes.update({
            "/api/chat.postMessage": self._api("chat.postMessage", self._post_message),
            "/api/chat.update": self._api("chat.update", self._update),
            WEBHOOK_PATH: self._webhook(valid=True),
            REVOKED_WEBHOOK_PATH: self._webhook(valid=False),
        })

    # ---- what tests program and inspect -------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 429, retry_after: float | None = 1) -> None:
        """Answer the next `n` calls (any route) with HTTP `status`, like Slack's 429 or 5xx."""
        error = "ratelimited" if status == 429 else "fatal_error"
        self._queue(n, _Failure(status, retry_after if status == 429 else None, error))

    def reject_next(self, error: str, n: int = 1) -> None:
        """Answer the next `n` Web API calls with HTTP 200 `{"ok": false, "error": error}`."""
        self._queue(n, _Failure(200, None, error))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[RecordedRequest]:
        """The recorded requests of one method ("chat.update", "webhook", ...)."""
        return [r for r in self.requests if r.method == method]

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        """Messages as the channel would show them now, by ts (thread replies included)."""
        with self._lock:
            return {ts: dict(message) for ts, message in self._messages.items()}

    def replies(self, thread_ts: str) -> list[dict[str, Any]]:
        """The thread replies under one message, oldest first."""
        return [m for m in self.messages.values() if m.get("thread_ts") == thread_ts]

    # ---- Web API ----------------------------------------------------------------------

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(body.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        with self._lock:
            ts = self._take_ts()
            message = {"type": "message", "ts": ts, "text": body.get("text", ""),
                       "blocks": body.get("blocks", []), "bot_id": "B0FAKE"}
            if body.get("thread_ts"):
                message["thread_ts"] = body["thread_ts"]
            self._messages[ts] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(body.get("channel", "")), str(body.get("ts", ""))
        if channel not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        with self._lock:
            message = self._messages.get(ts)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.update(text=body.get("text", ""), blocks=body.get("blocks", []))
            answer = dict(message)
        return {"ok": True, "channel": channel, "ts": ts, "text": answer["text"],
                "message": answer}

    def _api(self, api_method: str, answer: Callable[[dict[str, Any]], dict[str, Any]]
             ) -> Handler:
        """A route that records, applies a programmed failure, checks auth, then answers."""

        def route(handler: BaseHTTPRequestHandler) -> None:
            body = self._record(api_method, handler)
            failure = self._take_failure()
            if failure is not None:
                _json(handler, failure.status, {"ok": False, "error": failure.error},
                      failure.headers())
            elif handler.headers.get("Authorization") is None:
                _json(handler, 200, {"ok": False, "error": "not_authed"})
            elif handler.headers["Authorization"] != f"Bearer {self.token}":
                _json(handler, 200, {"ok": False, "error": "invalid_auth"})
            else:
                _json(handler, 200, answer(body))

        return route

    # ---- incoming webhook ---------------------------------------------------------------

    def _webhook(self, *, valid: bool) -> Handler:
        def route(handler: BaseHTTPRequestHandler) -> None:
            body = self._record("webhook", handler)
            failure = self._take_failure()
            if failure is not None:
                _text(handler, failure.status, failure.error, failure.headers())
            elif not valid:
                _text(handler, 403, "invalid_token")
            elif not body.get("text") and not body.get("blocks"):
                _text(handler, 400, "no_text")
            else:
                with self._lock:
                    ts = self._take_ts()
                    self._messages[ts] = {"type": "message", "ts": ts, "text": body.get("text"),
                                          "blocks": body.get("blocks", [])}
                _text(handler, 200, "ok")

        return route

    # ---- plumbing -------------------------------------------------------------------------

    def _queue(self, n: int, failure: _Failure) -> None:
        with self._lock:
            self._failures.extend([failure] * n)

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _take_ts(self) -> str:
        """Distinct, increasing timestamps like Slack's "1700000000.000100" (lock held)."""
        micros, self._next_ts = self._next_ts, self._next_ts + _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _record(self, method: str, handler: BaseHTTPRequestHandler) -> dict[str, Any]:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        body = _parse_body(raw, handler.headers.get("Content-Type", ""))
        request = RecordedRequest(method, handler.path, dict(handler.headers.items()), body)
        with self._lock:
            self._requests.append(request)
        return body


@contextmanager
def fake_slack(**options: Any) -> Iterator[FakeSlack]:
    """A running fake on a free loopback port; keyword options go to `FakeSlack`."""
    server = RouteServer().start()
    try:
        yield FakeSlack(server, **options)
    finally:
        server.stop()


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON for `application/json`, else form fields; undecodable bodies record as {}."""
    text = raw.decode("utf-8", errors="replace")
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(text))


def _json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
          headers: Mapping[str, str] | None = None) -> None:
    _answer(handler, status, json.dumps(payload).encode(), "application/json; charset=utf-8",
            headers or {})


def _text(handler: BaseHTTPRequestHandler, status: int, text: str,
          headers: Mapping[str, str] | None = None) -> None:
    _answer(handler, status, text.encode(), "text/html", headers or {})


def _answer(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str,
            headers: Mapping[str, str]) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)
