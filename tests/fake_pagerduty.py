"""A local PagerDuty Events API v2 on 127.0.0.1: validates, answers and records like the real one.

PagerDuty cannot be reached from CI, so the notifier's tests and the end-to-end test point
`events_url` here. Response shapes follow PagerDuty's documentation:

    202 {"status": "success", "message": "Event processed", "dedup_key": "..."}
    400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}
    429 {"status": "throttle event", "message": "Requests for this service are arriving
         too quickly. Please retry later."}

Validation is PagerDuty's (routing_key of 32 characters, event_action, payload.summary /
source / severity for triggers, dedup_key for acknowledge / resolve) and deliberately a
little stricter in one place: a summary over 1,024 characters is rejected here, where
PagerDuty silently cuts it, so a notifier that forgets to cut it is caught.

Usage:

    with fake_pagerduty() as pd:
        channel = PagerDutyChannel(name="pd", type="pagerduty", routing_key=ROUTING_KEY,
                                   events_url=pd.events_url)
        pd.fail_next(2, status=429, retry_after=30)
        ...
        assert pd.events[0]["event_action"] == "trigger"
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_webhook import Answer, Received, Recorder, answer, read_body
from tests.servers import RouteServer, route_server

EVENTS_PATH = "/v2/enqueue"
ROUTING_KEY = "R0a1b2c3d4e5f60718293a4b5c6d7e8f"
"""A well-formed (32-character) integration key for tests."""

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
THROTTLED = {"status": "throttle event",
             "message": "Requests for this service are arriving too quickly. "
                        "Please retry later."}


def _blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


def validate(event: object) -> list[str]:
    """PagerDuty's complaints about an event body, empty when it would be accepted."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if _blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, "
                      "resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > DEDUP_KEY_LIMIT):
        errors.append(f"'dedup_key' must be a string of at most {DEDUP_KEY_LIMIT} characters")
    if action in ("acknowledge", "resolve") and _blank(dedup):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
    for name in ("links", "images"):
        if name in event and not isinstance(event[name], list):
            errors.append(f"'{name}' must be an array")
    return errors


def _payload_errors(payload: object) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or blank"]
    errors = [f"'payload.{name}' is missing or blank"
              for name in ("summary", "source", "severity") if _blank(payload.get(name))]
    summary = payload.get("summary")
    if isinstance(summary, str) and len(summary) > SUMMARY_LIMIT:
        errors.append(f"'payload.summary' is longer than {SUMMARY_LIMIT} characters")
    severity = payload.get("severity")
    if not _blank(severity) and severity not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of: critical, error, "
                      "warning, info)")
    timestamp = payload.get("timestamp")
    if timestamp is not None and not _iso8601(timestamp):
        errors.append("'payload.timestamp' is not a valid ISO 8601 date")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _iso8601(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _json_answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None
                 ) -> Answer:
    return Answer(status, json.dumps(body), dict(headers or {}), "application/json")


class FakePagerDuty(Recorder):
    """The Events API endpoint; `requests` is everything received, `events` what was accepted."""

    def __init__(self, server: RouteServer) -> None:
        super().__init__()
        self.events_url = server.url + EVENTS_PATH
        server.routes[EVENTS_PATH] = self._handle

    @property
    def requests(self) -> list[Received]:
        return self.received

    @property
    def events(self) -> list[dict[str, Any]]:
        """Bodies answered with 202, in arrival order."""
        return [item.json() for item in self.received if item.status == 202]

    def fail_next(self, n: int = 1, *, status: int = 429,
                  retry_after: float | None = None) -> None:
        """Answer the next `n` requests with 429 (PagerDuty's JSON) or a bare 5xx."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        reply = (_json_answer(status, THROTTLED, headers) if status == 429
                 else Answer(status, "Internal Server Error" if status >= 500 else "",
                             headers))
        self.script(*[reply] * n)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = read_body(handler)
        reply = self.next_scripted() or self._judge(handler.command, body)
        self.record(handler, body, reply.status)
        answer(handler, reply)

    def _judge(self, method: str, body: bytes) -> Answer:
        if method != "POST":
            return Answer(405, "Method Not Allowed", {"Allow": "POST"})
        try:
            event = json.loads(body)
        except ValueError:
            return _json_answer(400, {"status": "invalid event",
                                      "message": "Event object is invalid",
                                      "errors": ["Request body is not valid JSON"]})
        errors = validate(event)
        if errors:
            return _json_answer(400, {"status": "invalid event",
                                      "message": "Event object is invalid", "errors": errors})
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        return _json_answer(202, {"status": "success", "message": "Event processed",
                                  "dedup_key": dedup})


@contextmanager
def fake_pagerduty() -> Iterator[FakePagerDuty]:
    with route_server() as server:
        yield FakePagerDuty(server)
