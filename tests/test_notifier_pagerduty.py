"""The PagerDuty notifier against a local Events API v2: bodies, answers, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from alerts.notification import Delivery, Notification
from alerts.pagerduty import PagerDutyNotifier, dedup_key
from monitor.config import PagerDutyChannel
from tests.fake_pagerduty import ROUTING_KEY, FakePagerDuty
from tests.fake_webhook import read_body, silent_server
from tests.servers import RouteServer, free_port, route_server, send

OCCURRED_AT = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "key": "incident-42/step-0/repeat-0/pagerduty",
        "incident_id": 42,
        "event": "trigger",
        "title": "checkout-availability burning error budget",
        "severity": "page",
        "status": "triggered",
        "summary": "checkout-availability: burn rate 14.9x over 1h and 5m",
        "occurred_at": OCCURRED_AT,
        "slo": "checkout-availability",
        "target": "checkout",
        "burn_rate": 14.9,
        "budget_remaining": 0.82,
        "labels": {"team": "payments"},
        "dashboard_url": "http://127.0.0.1:8000/slos/checkout-availability",
        "incident_url": "http://127.0.0.1:8000/incidents/42",
    }
    fields.update(overrides)
    return Notification(**fields)


def make_notifier(events_url: str, routing_key: str | None = ROUTING_KEY,
                  **options: Any) -> PagerDutyNotifier:
    channel = PagerDutyChannel.model_validate(
        {"name": "pagerduty", "type": "pagerduty", "routing_key": routing_key,
         "events_url": events_url})
    return PagerDutyNotifier(channel, **options)


def send_one(notifier: PagerDutyNotifier, message: Notification) -> Delivery:
    """Send, and check the one rule that holds for every outcome: no key in the detail."""
    delivery = notifier.send(message)
    assert ROUTING_KEY not in delivery.detail
    return delivery


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    """One loopback server per module: stopping one costs ~0.5 s (serve_forever's poll)."""
    with route_server() as running:
        yield running


@pytest.fixture
def pd(server: RouteServer) -> FakePagerDuty:
    """A fresh fake (empty log, no scripted failures) on the shared server."""
    return FakePagerDuty(server)


@pytest.fixture
def notifier(pd: FakePagerDuty) -> Iterator[PagerDutyNotifier]:
    notifier = make_notifier(pd.events_url)
    yield notifier
    notifier.close()


def test_trigger_sends_the_full_event(pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    delivery = send_one(notifier, notification())

    assert delivery == Delivery.delivered("HTTP 202",
                                          {"dedup_key": "primewatch-incident-42"})
    assert pd.events == [{
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "primewatch-incident-42",
        "payload": {
            "summary": "checkout-availability: burn rate 14.9x over 1h and 5m",
            "source": "checkout",
            "severity": "critical",
            "timestamp": "2023-11-14T22:13:20.250+00:00",
            "component": "checkout-availability",
            "custom_details": {
                "title": "checkout-availability burning error budget",
                "event": "trigger",
                "status": "triggered",
                "burn_rate": 14.9,
                "budget_remaining": 0.82,
                "labels": {"team": "payments"},
            },
        },
        "client": "primewatch",
        "client_url": "http://127.0.0.1:8000/incidents/42",
        "links": [
            {"href": "http://127.0.0.1:8000/slos/checkout-availability", "text": "Dashboard"},
            {"href": "http://127.0.0.1:8000/incidents/42", "text": "Incident"},
        ],
    }]
    assert pd.requests[0].headers["content-type"] == "application/json"


def test_acknowledge_and_resolve_carry_only_the_key_and_share_the_dedup_key(
        pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    first = send_one(notifier, notification())
    for event, status in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        delivery = send_one(notifier, notification(event=event, status=status,
                                                   thread=first.thread))
        assert delivery.outcome == "delivered"
        assert delivery.thread == {"dedup_key": "primewatch-incident-42"}

    trigger, ack, resolve = pd.events
    assert ack == {"routing_key": ROUTING_KEY, "event_action": "acknowledge",
                   "dedup_key": "primewatch-incident-42"}
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": "primewatch-incident-42"}
    assert trigger["dedup_key"] == ack["dedup_key"] == resolve["dedup_key"]


def test_acknowledge_without_earlier_thread_still_targets_the_incident(
        pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    send_one(notifier, notification(event="acknowledge", status="acknowledged"))
    assert pd.events[0]["dedup_key"] == dedup_key(42)


@pytest.mark.parametrize("event", ["escalate", "update"])
def test_escalate_and_update_re_trigger_the_same_alert(
        pd: FakePagerDuty, notifier: PagerDutyNotifier, event: str) -> None:
    send_one(notifier, notification())
    send_one(notifier, notification(event=event))
    assert [e["event_action"] for e in pd.events] == ["trigger", "trigger"]
    assert {e["dedup_key"] for e in pd.events} == {"primewatch-incident-42"}
    assert pd.events[1]["payload"]["custom_details"]["event"] == event


@pytest.mark.parametrize(("severity", "expected"), [("page", "critical"),
                                                    ("ticket", "warning")])
def test_severity_mapping(pd: FakePagerDuty, notifier: PagerDutyNotifier,
                          severity: str, expected: str) -> None:
    send_one(notifier, notification(severity=severity))
    assert pd.events[0]["payload"]["severity"] == expected


def test_long_summary_is_cut_and_missing_facts_have_defaults(
        pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    delivery = send_one(notifier, notification(
        summary="x" * 5000, target=None, slo=None, burn_rate=float("nan"),
        budget_remaining=float("-inf"), dashboard_url=None, incident_url=None, labels={}))

    assert delivery.outcome == "delivered"  # the fake rejects summaries over 1,024
    payload = pd.events[0]["payload"]
    assert len(payload["summary"]) == 1024
    assert payload["summary"].endswith("…")
    assert payload["source"] == "primewatch"
    assert "component" not in payload
    assert payload["custom_details"]["burn_rate"] is None
    assert payload["custom_details"]["budget_remaining"] is None
    assert pd.events[0]["links"] == []
    assert "client_url" not in pd.events[0]


def test_429_is_retried_after_the_time_pagerduty_asks(
        pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    pd.fail_next(1, status=429, retry_after=30)
    throttled = send_one(notifier, notification())
    assert throttled.outcome == "retry"
    assert throttled.retry_after == 30.0
    assert "429" in throttled.detail and "too quickly" in throttled.detail

    assert send_one(notifier, notification()).outcome == "delivered"
    assert len(pd.events) == 1


def test_429_without_retry_after_leaves_the_wait_to_the_outbox(
        pd: FakePagerDuty, notifier: PagerDutyNotifier) -> None:
    pd.fail_next(1, status=429)
    delivery = send_one(notifier, notification())
    assert (delivery.outcome, delivery.retry_after) == ("retry", None)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(pd: FakePagerDuty, notifier: PagerDutyNotifier,
                                   status: int) -> None:
    pd.fail_next(1, status=status)
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "retry"
    assert delivery.retry_after is None
    assert f"HTTP {status}" in delivery.detail


def test_invalid_event_fails_with_pagerdutys_errors(pd: FakePagerDuty) -> None:
    bad_key = "not-thirty-two-characters"
    notifier = make_notifier(pd.events_url, routing_key=bad_key)
    try:
        delivery = notifier.send(notification())
    finally:
        notifier.close()

    assert delivery.outcome == "failed"
    assert delivery.detail == ("HTTP 400: Event object is invalid (Length of 'routing_key' "
                               "is incorrect (should be 32 characters))")
    assert pd.events == []


def test_the_routing_key_is_scrubbed_even_when_the_server_echoes_it() -> None:
    def echo(handler: BaseHTTPRequestHandler) -> None:
        event = json.loads(read_body(handler))
        send(handler, 400, json.dumps({
            "status": "invalid event", "message": "Event object is invalid",
            "errors": [f"unknown routing_key {event['routing_key']}"]}), "application/json")

    with route_server({"/v2/enqueue": echo}) as server:
        notifier = make_notifier(server.url + "/v2/enqueue")
        delivery = send_one(notifier, notification())
        notifier.close()
    assert delivery.outcome == "failed"
    assert "unknown routing_key ***" in delivery.detail


def test_other_client_errors_fail(pd: FakePagerDuty) -> None:
    notifier = make_notifier(pd.events_url.replace("/v2/enqueue", "/v1/wrong"))
    delivery = send_one(notifier, notification())
    notifier.close()
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("HTTP 404")


def test_connection_refused_is_retried() -> None:
    notifier = make_notifier(f"http://127.0.0.1:{free_port()}/v2/enqueue")
    delivery = send_one(notifier, notification())
    notifier.close()
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("ConnectError")


def test_a_silent_server_times_out_into_a_retry() -> None:
    with silent_server() as (host, port):
        notifier = make_notifier(f"http://{host}:{port}/v2/enqueue", timeout=0.3)
        started = time.monotonic()
        delivery = send_one(notifier, notification())
        notifier.close()
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("ReadTimeout")
    assert time.monotonic() - started < 5


def test_a_missing_routing_key_fails_without_a_request(pd: FakePagerDuty) -> None:
    notifier = make_notifier(pd.events_url, routing_key=None)
    delivery = notifier.send(notification())
    notifier.close()
    assert delivery == Delivery.failed("routing_key is not configured")
    assert pd.requests == []


def test_a_url_that_is_not_http_fails() -> None:
    notifier = make_notifier("ftp://127.0.0.1/v2/enqueue")
    delivery = send_one(notifier, notification())
    notifier.close()
    assert delivery.outcome == "failed"


def test_fake_rejects_what_pagerduty_rejects(pd: FakePagerDuty) -> None:
    """The fake itself: a trigger without payload facts is refused with the real shape."""
    import httpx

    with httpx.Client(trust_env=False) as client:
        response = client.post(pd.events_url, json={
            "routing_key": ROUTING_KEY, "event_action": "trigger",
            "payload": {"summary": "", "severity": "fatal"}})
    assert response.status_code == 400
    assert response.json() == {
        "status": "invalid event", "message": "Event object is invalid",
        "errors": ["'payload.summary' is missing or blank",
                   "'payload.source' is missing or blank",
                   "'payload.severity' is invalid (must be one of: critical, error, "
                   "warning, info)"]}
