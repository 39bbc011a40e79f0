"""PagerDuty through the Events API v2: one primewatch incident is one PagerDuty alert.

Why the Events API and not the REST API: it needs only the service's routing key, and
its `dedup_key` gives exactly the "one alert per incident" behaviour we want. Trigger,
escalate and update all send `event_action: trigger` with the same dedup key, which
PagerDuty folds into the open alert (its log shows each one) instead of paging anew;
acknowledge and resolve change that alert's state.

Answers, as documented by PagerDuty and mapped for the outbox:

    202 {"status": "success", "message": "Event processed", "dedup_key": ...}  delivered
    429 (throttled; Retry-After honoured if sent), 408, 5xx, network errors     retry
    400 {"status": "invalid event", "message": ..., "errors": [...]}, other 4xx failed

The routing key is a credential: it is sent in the body and never written to a detail.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from alerts.notification import Delivery, Event, Notification, Severity
from alerts.retry_after import retry_after_seconds
from monitor.config import PagerDutyChannel
from monitor.timestamps import iso_utc

TIMEOUT = 10.0
SUMMARY_LIMIT = 1024
"""PagerDuty's limit for payload.summary; longer summaries are cut, not rejected."""

ACTIONS: dict[Event, str] = {
    "trigger": "trigger",
    "escalate": "trigger",
    "update": "trigger",
    "acknowledge": "acknowledge",
    "resolve": "resolve",
}
SEVERITIES: dict[Severity, str] = {"page": "critical", "ticket": "warning"}


def dedup_key(incident_id: int) -> str:
    """The PagerDuty alert key of a primewatch incident (stable across restarts)."""
    return f"primewatch-incident-{incident_id}"


def event_body(notification: Notification, routing_key: str) -> dict[str, Any]:
    """The Events API v2 JSON body for one notification."""
    action = ACTIONS[notification.event]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notification.thread.get("dedup_key") or dedup_key(notification.incident_id),
    }
    if action == "trigger":
        body["payload"] = _payload(notification)
        body["client"] = "primewatch"
        if notification.incident_url or notification.dashboard_url:
            body["client_url"] = notification.incident_url or notification.dashboard_url
        body["links"] = _links(notification)
    return body


def _payload(notification: Notification) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "summary": _truncate(notification.summary or notification.title, SUMMARY_LIMIT),
        "source": notification.target or "primewatch",
        "severity": SEVERITIES[notification.severity],
        "timestamp": iso_utc(notification.occurred_at),
        "custom_details": {
            "title": notification.title,
            "event": notification.event,
            "status": notification.status,
            "burn_rate": _finite(notification.burn_rate),
            "budget_remaining": _finite(notification.budget_remaining),
            "labels": dict(notification.labels),
        },
    }
    if notification.slo:
        payload["component"] = notification.slo
    return payload


def _links(notification: Notification) -> list[dict[str, str]]:
    candidates = (("Dashboard", notification.dashboard_url),
                  ("Incident", notification.incident_url),
                  ("Post-mortem", notification.postmortem_url))
    return [{"href": url, "text": text} for text, url in candidates if url]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(value: float | None) -> float | None:
    """NaN/inf are not JSON; PagerDuty would reject the whole event for one of them."""
    return value if value is not None and math.isfinite(value) else None


class PagerDutyNotifier:
    """Sends each notification as one Events API v2 request."""

    def __init__(self, channel: PagerDutyChannel, *, client: httpx.Client | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.name = channel.name
        self._url = channel.events_url
        self._routing_key = (channel.routing_key.get_secret_value().strip()
                             if channel.routing_key else "")
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"User-Agent": "primewatch"})

    def send(self, notification: Notification) -> Delivery:
        if not self._routing_key:
            return Delivery.failed("routing_key is not configured")
        body = event_body(notification, self._routing_key)
        try:
            response = self._client.post(self._url, json=body)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return Delivery.failed(self._scrub(f"bad events_url: {exc}"))
        except httpx.RequestError as exc:  # connect, read, timeouts, protocol, decoding
            return Delivery.retry(self._scrub(f"{type(exc).__name__}: {exc}"))
        return self._delivery(response, body["dedup_key"])

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _delivery(self, response: httpx.Response, sent_key: str) -> Delivery:
        status = response.status_code
        answer = _json_object(response)
        if 200 <= status < 300:
            key = answer.get("dedup_key")
            return Delivery.delivered(f"HTTP {status}",
                                      {"dedup_key": key if isinstance(key, str) else sent_key})
        reason = self._scrub(f"HTTP {status}: {_reason(answer, response)}")
        if status == 429:
            return Delivery.retry(reason, retry_after_seconds(
                response.headers.get("Retry-After"), time.time()))
        if status == 408 or status >= 500:
            return Delivery.retry(reason)
        return Delivery.failed(reason)

    def _scrub(self, text: str) -> str:
        """Whatever PagerDuty or the network says, the routing key must not reach a log."""
        return text.replace(self._routing_key, "***") if self._routing_key else text


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _reason(answer: Mapping[str, Any], response: httpx.Response) -> str:
    """PagerDuty's message and error list, or the start of a non-JSON body."""
    if not answer:
        return response.text[:200].strip() or response.reason_phrase
    text = str(answer.get("message") or answer.get("status") or response.reason_phrase)
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        text += " (" + "; ".join(str(error) for error in errors) + ")"
    return text
