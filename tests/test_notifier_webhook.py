"""The webhook notifier against a real receiver: body, headers, signature, outcomes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from alerts.notification import Delivery, Notification
from alerts.webhook import WebhookNotifier, retry_after_seconds, signature, verify
from monitor.config import WebhookChannel
from tests.fake_webhook import FakeWebhook, Received, silent_server
from tests.servers import RouteServer, free_port, route_server

SECRET = "whsec-9f1c2b7e4d"
NOW = 1_700_000_100.0
OCCURRED_AT = 1_700_000_000.25


def notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "key": "incident-42/step-1/repeat-0/hook",
        "incident_id": 42,
        "event": "escalate",
        "title": "checkout-availability burning error budget",
        "severity": "page",
        "status": "triggered",
        "summary": "burn rate 14.9x over 1h and 5m",
        "occurred_at": OCCURRED_AT,
        "slo": "checkout-availability",
        "target": "checkout",
        "burn_rate": 14.9,
        "budget_remaining": 0.82,
        "labels": {"team": "payments", "env": "prod"},
        "dashboard_url": "http://127.0.0.1:8000/slos/checkout-availability",
        "incident_url": "http://127.0.0.1:8000/incidents/42",
    }
    fields.update(overrides)
    return Notification(**fields)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_notifier(url: str | None, secret: str | None = SECRET,
                  **options: Any) -> WebhookNotifier:
    channel = WebhookChannel.model_validate(
        {"name": "hook", "type": "webhook", "url": url, "secret": secret})
    options.setdefault("clock", Clock())
    return WebhookNotifier(channel, **options)


def send_one(notifier: WebhookNotifier, message: Notification) -> Delivery:
    delivery = notifier.send(message)
    assert SECRET not in delivery.detail
    return delivery


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    """One loopback server per module: stopping one costs ~0.5 s (serve_forever's poll)."""
    with route_server() as running:
        yield running


@pytest.fixture
def hook(server: RouteServer) -> FakeWebhook:
    """A fresh receiver (empty log, nothing scripted) on the shared server."""
    return FakeWebhook(server)


@pytest.fixture
def notifier(hook: FakeWebhook) -> Iterator[WebhookNotifier]:
    notifier = make_notifier(hook.url)
    yield notifier
    notifier.close()


def only(hook: FakeWebhook) -> Received:
    [received] = hook.deliveries
    return received


def test_body_is_the_documented_version_1(hook: FakeWebhook,
                                          notifier: WebhookNotifier) -> None:
    assert send_one(notifier, notification()) == Delivery.delivered("HTTP 204")
    assert only(hook).json() == {
        "version": "1",
        "event": "escalate",
        "key": "incident-42/step-1/repeat-0/hook",
        "occurred_at": "2023-11-14T22:13:20.250+00:00",
        "incident": {
            "id": 42,
            "title": "checkout-availability burning error budget",
            "severity": "page",
            "status": "triggered",
            "summary": "burn rate 14.9x over 1h and 5m",
            "slo": "checkout-availability",
            "target": "checkout",
            "burn_rate": 14.9,
            "budget_remaining": 0.82,
            "labels": {"team": "payments", "env": "prod"},
            "urls": {"dashboard": "http://127.0.0.1:8000/slos/checkout-availability",
                     "incident": "http://127.0.0.1:8000/incidents/42",
                     "postmortem": None},
        },
    }


def test_headers_identify_event_delivery_and_time(hook: FakeWebhook,
                                                  notifier: WebhookNotifier) -> None:
    send_one(notifier, notification())
    headers = only(hook).headers
    assert only(hook).method == "POST"
    assert headers["content-type"] == "application/json"
    assert headers["x-primewatch-event"] == "escalate"
    assert headers["x-primewatch-delivery"] == "incident-42/step-1/repeat-0/hook"
    assert headers["x-primewatch-timestamp"] == "1700000100"
    assert headers["x-primewatch-signature"].startswith("sha256=")


def test_signature_verifies_with_the_secret_only(hook: FakeWebhook,
                                                 notifier: WebhookNotifier) -> None:
    send_one(notifier, notification())
    received = only(hook)
    stamp = received.headers["x-primewatch-timestamp"]
    header = received.headers["x-primewatch-signature"]

    # exactly the recipe in the module docstring, written out by a receiver
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + received.body, hashlib.sha256)
    assert hmac.compare_digest("sha256=" + mac.hexdigest(), header)

    assert verify(SECRET, stamp, received.body, header)
    assert verify(SECRET, stamp, received.body, header, now=NOW + 60)
    assert not verify("wrong-secret", stamp, received.body, header)
    assert not verify(SECRET, stamp, received.body.replace(b"14.9", b"1.49"), header)
    assert not verify(SECRET, str(int(stamp) + 1), received.body, header)


def test_verify_rejects_stale_missing_and_garbage() -> None:
    body = b'{"version":"1"}'
    good = signature(SECRET, 1000, body)
    assert verify(SECRET, "1000", body, good, now=1000 + 299)
    assert not verify(SECRET, "1000", body, good, now=1000 + 301)  # a replay
    assert not verify(SECRET, "1000", body, good, now=1000 - 301)
    assert not verify(SECRET, "soon", body, good, now=1000)
    assert not verify(SECRET, None, body, good)
    assert not verify(SECRET, "1000", body, None)
    assert not verify(SECRET, "1000", body, "")
    assert not verify(SECRET, "1000", body, "sha256=ñ")  # non-ASCII must not raise
    assert not verify(SECRET, "1000", body, good.upper())


def test_without_a_secret_nothing_is_signed(hook: FakeWebhook) -> None:
    notifier = make_notifier(hook.url, secret=None)
    assert send_one(notifier, notification()).outcome == "delivered"
    notifier.close()
    assert "x-primewatch-signature" not in only(hook).headers
    assert only(hook).headers["x-primewatch-delivery"] == "incident-42/step-1/repeat-0/hook"


def test_a_retry_keeps_the_delivery_key_and_signs_afresh(hook: FakeWebhook) -> None:
    clock = Clock()
    notifier = make_notifier(hook.url, clock=clock)
    hook.respond_next(1, 503)
    assert send_one(notifier, notification()).outcome == "retry"
    clock.now += 90
    assert send_one(notifier, notification()).outcome == "delivered"
    notifier.close()

    first, second = hook.deliveries
    assert first.body == second.body
    assert (first.headers["x-primewatch-delivery"]
            == second.headers["x-primewatch-delivery"])
    assert second.headers["x-primewatch-timestamp"] == str(int(NOW + 90))
    assert verify(SECRET, second.headers["x-primewatch-timestamp"], second.body,
                  second.headers["x-primewatch-signature"], now=clock.now)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(hook: FakeWebhook, notifier: WebhookNotifier,
                              status: int) -> None:
    hook.respond_next(1, status, body="ok" if status != 204 else "")
    assert send_one(notifier, notification()).outcome == "delivered"


def test_429_honours_retry_after_seconds(hook: FakeWebhook,
                                         notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 429, body="slow down", headers={"Retry-After": "7"})
    delivery = send_one(notifier, notification())
    assert (delivery.outcome, delivery.retry_after) == ("retry", 7.0)
    assert delivery.detail == "HTTP 429: slow down"


def test_429_honours_retry_after_as_a_date(hook: FakeWebhook,
                                           notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 429, headers={"Retry-After": formatdate(NOW + 120, usegmt=True)})
    delivery = send_one(notifier, notification())
    assert (delivery.outcome, delivery.retry_after) == ("retry", 120.0)


def test_429_without_retry_after_uses_backoff(hook: FakeWebhook,
                                              notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 429)
    delivery = send_one(notifier, notification())
    assert (delivery.outcome, delivery.retry_after) == ("retry", None)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_timeouts_and_server_errors_are_retried(hook: FakeWebhook,
                                                notifier: WebhookNotifier,
                                                status: int) -> None:
    hook.respond_next(1, status, body="upstream trouble")
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "retry"
    assert delivery.detail == f"HTTP {status}: upstream trouble"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_fail(hook: FakeWebhook, notifier: WebhookNotifier,
                                  status: int) -> None:
    hook.respond_next(1, status, body="endpoint removed")
    delivery = send_one(notifier, notification())
    assert delivery == Delivery.failed(f"HTTP {status}: endpoint removed")


def test_410_gone_is_failed_not_retried(hook: FakeWebhook,
                                        notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 410)
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert delivery.detail == "HTTP 410: Gone"
    assert len(hook.deliveries) == 1


def test_a_redirect_is_not_followed(hook: FakeWebhook, notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 301, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert "redirect" in delivery.detail
    assert len(hook.deliveries) == 1


def test_a_receiver_echoing_the_secret_does_not_leak_it(hook: FakeWebhook,
                                                        notifier: WebhookNotifier) -> None:
    hook.respond_next(1, 401, body=f"signature mismatch for secret {SECRET}")
    delivery = send_one(notifier, notification())
    assert delivery == Delivery.failed("HTTP 401: signature mismatch for secret ***")


def test_connection_refused_is_retried() -> None:
    notifier = make_notifier(f"http://127.0.0.1:{free_port()}/hook")
    delivery = send_one(notifier, notification())
    notifier.close()
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("ConnectError")


def test_a_silent_receiver_times_out_into_a_retry() -> None:
    with silent_server() as (host, port):
        notifier = make_notifier(f"http://{host}:{port}/hook", timeout=0.3)
        delivery = send_one(notifier, notification())
        notifier.close()
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("ReadTimeout")


def test_a_missing_url_fails() -> None:
    notifier = make_notifier(None)
    assert notifier.send(notification()) == Delivery.failed("url is not configured")
    notifier.close()


def test_non_finite_numbers_become_null(hook: FakeWebhook,
                                        notifier: WebhookNotifier) -> None:
    send_one(notifier, notification(burn_rate=float("inf"), budget_remaining=float("nan"),
                                    slo=None, target=None, labels={}))
    incident = json.loads(only(hook).body)["incident"]
    assert incident["burn_rate"] is None
    assert incident["budget_remaining"] is None
    assert (incident["slo"], incident["target"], incident["labels"]) == (None, None, {})


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("0", NOW) == 0.0
    assert retry_after_seconds("-5", NOW) == 0.0
    assert retry_after_seconds("1.5", NOW) == 1.5
    assert retry_after_seconds(formatdate(NOW - 10, usegmt=True), NOW) == 0.0
    assert retry_after_seconds("tomorrow-ish", NOW) is None
    assert retry_after_seconds("nan", NOW) is None
    assert retry_after_seconds(None, NOW) is None
