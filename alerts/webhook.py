"""Generic webhook: a signed JSON POST any receiver can verify and deduplicate.

Body, version "1" (fields may be added within a version, never renamed or removed):

    {
      "version": "1",
      "event": "trigger" | "escalate" | "acknowledge" | "resolve" | "update",
      "key": "<unique per incident, step, repeat and channel>",
      "occurred_at": "2024-05-01T12:00:00.000+00:00",
      "incident": {
        "id": 42,
        "title": "checkout availability burning fast",
        "severity": "page" | "ticket",
        "status": "triggered" | "acknowledged" | "resolved",
        "summary": "...",
        "slo": "checkout-availability" | null,
        "target": "checkout" | null,
        "burn_rate": 14.9 | null,
        "budget_remaining": 0.82 | null,      (ratio: 1.0 untouched, negative = overspent)
        "labels": {"team": "payments"},
        "urls": {"dashboard": ... | null, "incident": ... | null, "postmortem": ... | null}
      }
    }

Headers:

    Content-Type: application/json
    X-Primewatch-Event: <event>
    X-Primewatch-Delivery: <key>           the same on every retry: an idempotency key
    X-Primewatch-Timestamp: <unix seconds>  when this attempt was signed
    X-Primewatch-Signature: sha256=<hex>    only when the channel has a `secret`

Verifying a delivery (receiver side). The signature is the hex HMAC-SHA256, keyed with
the shared secret, of the timestamp header, a dot, then the raw request body:

    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256)
    ok = hmac.compare_digest("sha256=" + mac.hexdigest(), signature_header)

1. Use the body bytes exactly as received, before any JSON parsing or re-encoding.
2. Compare in constant time (`hmac.compare_digest`), never with `==`.
3. Reject timestamps more than 5 minutes from your clock: a captured request cannot be
   replayed later, because the timestamp is inside the signed bytes.
4. Remember X-Primewatch-Delivery values for a day and ignore repeats: a retry after a
   lost response re-sends the same key (with a fresh timestamp and signature).

`verify(secret, timestamp, body, header, now=time.time())` does 1-3 for Python receivers.

Answers: 2xx delivered; 429 (Retry-After honoured), 408, 5xx and network errors retry;
redirects and other 4xx (e.g. 410 Gone from a deleted endpoint) fail for good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from alerts.notification import Delivery, Notification
from alerts.retry_after import retry_after_seconds
from monitor.config import WebhookChannel
from monitor.timestamps import iso_utc

TIMEOUT = 10.0
VERSION = "1"
TOLERANCE = 300.0
"""Seconds a receiver should accept between X-Primewatch-Timestamp and its clock."""


def signature(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The X-Primewatch-Signature value for a body sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str | bytes, timestamp: int | str | None, body: bytes,
           header: str | None, *, now: float | None = None,
           tolerance: float = TOLERANCE) -> bool:
    """True when `header` signs `body` at `timestamp` (and, given `now`, is fresh)."""
    if not header or timestamp is None or str(timestamp).strip() == "":
        return False
    if now is not None:
        try:
            sent = int(timestamp)
        except ValueError:
            return False
        if abs(now - sent) > tolerance:
            return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.encode())


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The documented version-1 body (see the module docstring)."""
    return {
        "version": VERSION,
        "event": notification.event,
        "key": notification.key,
        "occurred_at": iso_utc(notification.occurred_at),
        "incident": {
            "id": notification.incident_id,
            "title": notification.title,
            "severity": notification.severity,
            "status": notification.status,
            "summary": notification.summary,
            "slo": notification.slo,
            "target": notification.target,
            "burn_rate": _finite(notification.burn_rate),
            "budget_remaining": _finite(notification.budget_remaining),
            "labels": dict(notification.labels),
            "urls": {
                "dashboard": notification.dashboard_url,
                "incident": notification.incident_url,
                "postmortem": notification.postmortem_url,
            },
        },
    }


def encode(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()


def _finite(value: float | None) -> float | None:
    """NaN/inf are not JSON; many receivers' parsers would reject the whole body."""
    return value if value is not None and math.isfinite(value) else None


class WebhookNotifier:
    """POSTs each notification, signed when the channel has a secret."""

    def __init__(self, channel: WebhookChannel, *, client: httpx.Client | None = None,
                 timeout: float = TIMEOUT, clock: Callable[[], float] | None = None) -> None:
        self.name = channel.name
        self._url = channel.url or ""
        self._secret = channel.secret.get_secret_value() if channel.secret else ""
        self._clock = clock or time.time
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"User-Agent": "primewatch"})

    def send(self, notification: Notification) -> Delivery:
        if not self._url:
            return Delivery.failed("url is not configured")
        body = encode(webhook_body(notification))
        try:
            response = self._client.post(self._url, content=body,
                                         headers=self.headers(notification, body))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            return Delivery.failed("the webhook url is not a valid http(s) URL")
        except httpx.RequestError as exc:  # connect, read, timeouts, protocol, decoding
            return Delivery.retry(self._scrub(f"{type(exc).__name__}: {exc}"))
        return self._delivery(response)

    def headers(self, notification: Notification, body: bytes) -> dict[str, str]:
        """The delivery headers, signed at the clock's current second."""
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Primewatch-Event": notification.event,
            "X-Primewatch-Delivery": notification.key,
            "X-Primewatch-Timestamp": timestamp,
        }
        if self._secret:
            headers["X-Primewatch-Signature"] = signature(self._secret, timestamp, body)
        return headers

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _delivery(self, response: httpx.Response) -> Delivery:
        status = response.status_code
        if 200 <= status < 300:
            return Delivery.delivered(f"HTTP {status}")
        if 300 <= status < 400:
            return Delivery.failed(f"HTTP {status}: redirects are not followed; "
                                   "configure the final URL")
        reason = self._scrub(f"HTTP {status}: {_excerpt(response)}")
        if status == 429:
            return Delivery.retry(reason, retry_after_seconds(
                response.headers.get("Retry-After"), self._clock()))
        if status == 408 or status >= 500:
            return Delivery.retry(reason)
        return Delivery.failed(reason)

    def _scrub(self, text: str) -> str:
        """A receiver or proxy echoing the secret must not put it in our logs."""
        return text.replace(self._secret, "***") if self._secret else text


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text[:200].split())
    return text or response.reason_phrase
