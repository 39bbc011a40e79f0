"""The Slack notifier against a local fake of Slack, and the interactive-button helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlencode

import pytest

import alerts.slack
from alerts.notification import Notification
from alerts.slack import SlackNotifier
from alerts.slack_actions import SlackAction, parse_action, sign, verify_request
from monitor.config import SlackChannel
from tests.fake_slack import TOKEN, FakeSlack, fake_slack
from tests.servers import RouteServer, free_port, route_server, send

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_767_225_600.0


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    """One loopback server for the module: stopping one costs half a second of polling."""
    with route_server() as running:
        yield running


@pytest.fixture
def fake(server: RouteServer) -> FakeSlack:
    """A fresh fake (state, routes) per test on the shared server."""
    return FakeSlack(server)


def test_the_context_manager_serves_a_fresh_fake() -> None:
    with fake_slack() as fake:
        assert fake.api_url.endswith("/api/")
        assert bot(fake).send(incident()).outcome == "delivered"


def bot(fake: FakeSlack, **overrides: Any) -> SlackNotifier:
    """A bot-token notifier pointed at the fake."""
    config = {"name": "slack-oncall", "type": "slack", "token": TOKEN, "channel": "#oncall",
              "api_url": fake.api_url, **overrides}
    return SlackNotifier(SlackChannel.model_validate(config))


def hook(url: str) -> SlackNotifier:
    """An incoming-webhook notifier."""
    return SlackNotifier(SlackChannel.model_validate(
        {"name": "slack-hook", "type": "slack", "webhook_url": url}))


def incident(**overrides: Any) -> Notification:
    base = Notification(
        key="7:0:0:slack-oncall", incident_id=7, event="trigger",
        title="checkout-availability burning error budget", severity="page",
        status="triggered", summary="Burn rate 14.4× over 1h and 5m", occurred_at=NOW,
        slo="checkout-availability", target="checkout", burn_rate=14.4, budget_remaining=0.375,
        dashboard_url="http://127.0.0.1:8000/slos/checkout-availability",
        incident_url="http://127.0.0.1:8000/incidents/7")
    return replace(base, **overrides)


def texts(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    """Every mrkdwn/plain text inside blocks of one type."""
    found: list[str] = []
    for block in (b for b in blocks if b["type"] == kind):
        found += [block["text"]["text"]] if "text" in block else []
        found += [f["text"] for f in block.get("fields", []) + block.get("elements", [])
                  if "text" in f and isinstance(f["text"], str)]
    return found


def buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action_id → value of every button."""
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions"
            for e in b["elements"]}


# ---- bot token: first message -------------------------------------------------------------


def test_trigger_posts_block_kit_message_and_returns_the_thread(fake: FakeSlack) -> None:
    delivery = bot(fake).send(incident())

    assert delivery.outcome == "delivered"
    assert delivery.thread == {"channel": "C0123", "ts": "1700000000.000100"}
    [call] = fake.requests
    assert call.method == "chat.postMessage"
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.body["channel"] == "#oncall"
    assert call.body["text"] == "[PAGE] checkout-availability burning error budget: triggered"
    blocks = call.body["blocks"]
    assert blocks[0] == {"type": "header", "text": {
        "type": "plain_text", "text": "checkout-availability burning error budget", "emoji": True}}
    fields = texts(blocks[:2], "section")
    assert fields == ["*Severity*\nPage", "*Status*\n:red_circle: Triggered",
                      "*SLO*\ncheckout-availability", "*Target*\ncheckout",
                      "*Burn rate*\n14.4×", "*Error budget left*\n37.5%"]
    assert "Burn rate 14.4× over 1h and 5m" in texts(blocks, "section")
    [links] = texts(blocks, "context")
    assert "<http://127.0.0.1:8000/slos/checkout-availability|Dashboard>" in links
    assert "<http://127.0.0.1:8000/incidents/7|Incident>" in links
    assert buttons(blocks) == {"incident_ack": "7", "incident_resolve": "7",
                               "incident_silence_1h": "7"}


def test_each_message_gets_a_distinct_increasing_ts(fake: FakeSlack) -> None:
    notifier = bot(fake)
    first = notifier.send(incident())
    second = notifier.send(incident(incident_id=8))
    assert float(second.thread["ts"]) > float(first.thread["ts"])


def test_absent_values_are_left_out_and_markup_is_escaped(fake: FakeSlack) -> None:
    bot(fake).send(incident(slo=None, target=None, burn_rate=None, budget_remaining=None,
                            dashboard_url=None, incident_url=None,
                            summary="p99 > 2s for <checkout> & cart"))
    blocks = fake.requests[0].body["blocks"]
    assert texts(blocks[:2], "section") == ["*Severity*\nPage",
                                            "*Status*\n:red_circle: Triggered"]
    assert "p99 &gt; 2s for &lt;checkout&gt; &amp; cart" in texts(blocks, "section")
    assert not texts(blocks, "context")


def test_negative_budget_shows_as_a_negative_percentage(fake: FakeSlack) -> None:
    bot(fake).send(incident(budget_remaining=-0.125))
    assert "*Error budget left*\n-12.5%" in texts(fake.requests[0].body["blocks"], "section")


def test_a_later_event_without_a_thread_starts_one(fake: FakeSlack) -> None:
    delivery = bot(fake).send(incident(event="escalate"))
    assert delivery.thread["ts"] == "1700000000.000100"
    assert [r.method for r in fake.requests] == ["chat.postMessage"]
    assert "thread_ts" not in fake.requests[0].body


# ---- bot token: later events ---------------------------------------------------------------


def test_acknowledge_updates_the_first_message_and_replies_in_its_thread(
        fake: FakeSlack) -> None:
    notifier = bot(fake)
    thread = notifier.send(incident()).thread
    delivery = notifier.send(incident(event="acknowledge", status="acknowledged",
                                      summary="Acknowledged by alice", thread=thread))

    assert delivery.outcome == "delivered"
    assert delivery.thread == thread
    update, reply = fake.requests[1:]
    assert update.method == "chat.update"
    assert (update.body["channel"], update.body["ts"]) == ("C0123", thread["ts"])
    assert "*Status*\n:large_yellow_circle: Acknowledged" in texts(update.body["blocks"],
                                                                   "section")
    assert buttons(update.body["blocks"]) == {"incident_resolve": "7",
                                              "incident_silence_1h": "7"}
    assert reply.method == "chat.postMessage"
    assert reply.body["thread_ts"] == thread["ts"]
    assert reply.body["channel"] == "C0123"
    assert "Acknowledged" in reply.body["text"] and "alice" in reply.body["text"]
    assert reply.body["reply_broadcast"] is False
    assert fake.messages[thread["ts"]]["text"].endswith(": acknowledged")
    assert len(fake.replies(thread["ts"])) == 1


def test_resolve_removes_the_buttons_and_links_the_post_mortem(fake: FakeSlack) -> None:
    notifier = bot(fake)
    thread = notifier.send(incident()).thread
    postmortem = "http://127.0.0.1:8000/incidents/7/postmortem"
    notifier.send(incident(event="resolve", status="resolved", summary="Recovered after 42m",
                           postmortem_url=postmortem, thread=thread))

    blocks = fake.messages[thread["ts"]]["blocks"]
    assert buttons(blocks) == {}
    assert "*Status*\n:white_check_mark: Resolved" in texts(blocks, "section")
    [reply] = fake.replies(thread["ts"])
    assert "Resolved" in reply["text"] and "Recovered after 42m" in reply["text"]
    assert f"<{postmortem}|Post-mortem draft>" in reply["text"]


def test_escalation_is_broadcast_to_the_channel(fake: FakeSlack) -> None:
    notifier = bot(fake)
    thread = notifier.send(incident()).thread
    notifier.send(incident(event="escalate", summary="Step 2: paging PagerDuty", thread=thread))
    reply = fake.calls("chat.postMessage")[-1]
    assert reply.body["reply_broadcast"] is True
    assert "Escalated" in reply.body["text"] and "Step 2" in reply.body["text"]


def test_a_deleted_first_message_does_not_swallow_the_reply(fake: FakeSlack) -> None:
    thread = {"channel": "C0123", "ts": "1600000000.000001"}  # never posted here
    delivery = bot(fake).send(incident(event="acknowledge", status="acknowledged",
                                       thread=thread))
    assert delivery.outcome == "delivered"
    assert "message_not_found" in delivery.detail
    assert [r.method for r in fake.requests] == ["chat.update", "chat.postMessage"]


def test_a_rate_limited_update_retries_before_replying(fake: FakeSlack) -> None:
    notifier = bot(fake)
    thread = notifier.send(incident()).thread
    fake.fail_next(1, status=429, retry_after=3)
    delivery = notifier.send(incident(event="acknowledge", status="acknowledged", thread=thread))
    assert (delivery.outcome, delivery.retry_after) == ("retry", 3.0)
    assert fake.replies(thread["ts"]) == []


# ---- bot token: errors ----------------------------------------------------------------------


def test_429_retries_after_the_header_seconds_with_one_attempt(fake: FakeSlack) -> None:
    fake.fail_next(1, status=429, retry_after=7)
    delivery = bot(fake).send(incident())
    assert delivery.outcome == "retry"
    assert delivery.retry_after == 7.0
    assert "ratelimited" in delivery.detail
    assert len(fake.requests) == 1  # slack-sdk's own retry handlers are off


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_retry_with_backoff(fake: FakeSlack, status: int) -> None:
    fake.fail_next(1, status=status)
    delivery = bot(fake).send(incident())
    assert (delivery.outcome, delivery.retry_after) == ("retry", None)
    assert f"HTTP {status}" in delivery.detail
    assert len(fake.requests) == 1


def test_unknown_channel_fails_for_good(fake: FakeSlack) -> None:
    delivery = bot(fake, channel="#nowhere").send(incident())
    assert delivery.outcome == "failed"
    assert delivery.detail == "slack chat.postMessage: channel_not_found"


@pytest.mark.parametrize(("error", "outcome"), [
    ("not_in_channel", "failed"), ("is_archived", "failed"), ("internal_error", "retry"),
    ("ratelimited", "retry"),
])
def test_api_errors_are_classified(fake: FakeSlack, error: str, outcome: str) -> None:
    fake.reject_next(error)
    delivery = bot(fake).send(incident())
    assert (delivery.outcome, delivery.detail) == (outcome, f"slack chat.postMessage: {error}")


def test_a_wrong_token_fails_without_leaking_it(fake: FakeSlack) -> None:
    token = "xoxb-1111-2222-very-secret"
    notifier = bot(fake, token=token)
    delivery = notifier.send(incident())
    assert delivery.outcome == "failed"
    assert "invalid_auth" in delivery.detail
    assert token not in repr(delivery)


def test_connection_refused_retries_without_leaking_the_token() -> None:
    token = "xoxb-3333-very-secret"
    config = SlackChannel.model_validate({
        "name": "slack-oncall", "type": "slack", "token": token, "channel": "#oncall",
        "api_url": f"http://127.0.0.1:{free_port()}/api/"})
    delivery = SlackNotifier(config).send(incident())
    assert delivery.outcome == "retry"
    assert delivery.retry_after is None
    assert token not in repr(delivery)


def test_a_timeout_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(1.0)
        send(handler, 200, '{"ok": true}', "application/json")

    monkeypatch.setattr(alerts.slack, "TIMEOUT_SECONDS", 0.2)
    with route_server({"/api/chat.postMessage": slow}) as server:
        config = SlackChannel.model_validate({
            "name": "slack-oncall", "type": "slack", "token": TOKEN, "channel": "#oncall",
            "api_url": f"{server.url}/api/"})
        delivery = SlackNotifier(config).send(incident())
    assert delivery.outcome == "retry"
    assert "timed out" in delivery.detail


def test_a_bug_becomes_a_failed_delivery_not_an_exception(
        fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> list[dict[str, Any]]:
        raise KeyError("boom")

    monkeypatch.setattr(alerts.slack, "message_blocks", broken)
    delivery = bot(fake).send(incident())
    assert delivery.outcome == "failed"
    assert "KeyError" in delivery.detail


def test_construction_needs_credentials_and_a_channel_for_the_token() -> None:
    with pytest.raises(ValueError, match="token or a webhook_url"):
        SlackNotifier(SlackChannel.model_validate({"name": "s", "type": "slack"}))
    # A bot token without a channel is refused by the config model already.
    with pytest.raises(ValueError, match="`channel` is required"):
        SlackChannel.model_validate({"name": "s", "type": "slack", "token": "x"})


# ---- incoming webhook ----------------------------------------------------------------------


def test_webhook_posts_the_blocks_without_buttons(fake: FakeSlack) -> None:
    delivery = hook(fake.webhook_url).send(incident())
    assert delivery.outcome == "delivered"
    assert delivery.thread == {}
    [call] = fake.calls("webhook")
    assert "Authorization" not in call.headers
    assert call.body["text"].startswith("[PAGE]")
    assert call.body["blocks"][0]["type"] == "header"
    assert buttons(call.body["blocks"]) == {}


def test_webhook_later_events_are_new_messages_saying_what_happened(fake: FakeSlack) -> None:
    notifier = hook(fake.webhook_url)
    notifier.send(incident())
    notifier.send(incident(event="resolve", status="resolved", thread={}))
    first, second = fake.calls("webhook")
    assert first.body["blocks"][0]["type"] == "header"
    assert second.body["blocks"][0] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": ":white_check_mark: *Resolved*"}]}
    assert len(fake.messages) == 2


def test_webhook_revoked_fails_without_leaking_its_url(fake: FakeSlack) -> None:
    delivery = hook(fake.revoked_webhook_url).send(incident())
    assert delivery.outcome == "failed"
    assert "HTTP 403 invalid_token" in delivery.detail
    assert "REVOKED" not in delivery.detail


def test_webhook_429_and_500_retry(fake: FakeSlack) -> None:
    notifier = hook(fake.webhook_url)
    fake.fail_next(1, status=429, retry_after=30)
    fake.fail_next(1, status=500)
    limited, broken = notifier.send(incident()), notifier.send(incident())
    assert (limited.outcome, limited.retry_after) == ("retry", 30.0)
    assert (broken.outcome, broken.retry_after) == ("retry", None)
    assert len(fake.calls("webhook")) == 2


def test_webhook_unreachable_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/SECRETPART"
    delivery = hook(url).send(incident())
    assert delivery.outcome == "retry"
    assert "SECRETPART" not in delivery.detail


# ---- POST /slack/actions: signature ----------------------------------------------------------


def action_body(action_id: str = "incident_ack", value: str = "7",
                **payload: Any) -> bytes:
    base: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "alice", "name": "alice", "team_id": "T0"},
        "container": {"type": "message", "message_ts": "1700000000.000100",
                      "channel_id": "C0123", "is_ephemeral": False},
        "channel": {"id": "C0123", "name": "oncall"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "incident_7",
                     "value": value, "action_ts": "1700000100.000200",
                     "text": {"type": "plain_text", "text": "Acknowledge"}}],
    }
    base.update(payload)
    return urlencode({"payload": json.dumps(base)}).encode()


def test_a_correct_signature_verifies() -> None:
    body = action_body()
    assert verify_request(SECRET, body, sign(SECRET, body, NOW), now=NOW + 10)


def test_header_names_are_case_insensitive() -> None:
    body = action_body()
    headers = {k.lower(): v for k, v in sign(SECRET, body, NOW).items()}
    assert verify_request(SECRET, body, headers, now=NOW)


@pytest.mark.parametrize("tamper", ["other secret", "edited body"])
def test_a_forged_signature_is_rejected(tamper: str) -> None:
    body = action_body()
    if tamper == "other secret":
        headers = sign("not-our-secret", body, NOW)
    else:
        headers, body = sign(SECRET, body, NOW), action_body(value="8")
    assert not verify_request(SECRET, body, headers, now=NOW)


@pytest.mark.parametrize("skew", [-301, 301, 86400])
def test_a_stale_or_future_timestamp_is_rejected(skew: float) -> None:
    body = action_body()
    assert not verify_request(SECRET, body, sign(SECRET, body, NOW), now=NOW + skew)


def test_the_replay_window_is_five_minutes() -> None:
    body = action_body()
    assert verify_request(SECRET, body, sign(SECRET, body, NOW), now=NOW + 300)


@pytest.mark.parametrize("missing", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
def test_a_missing_header_is_rejected(missing: str) -> None:
    body = action_body()
    headers = sign(SECRET, body, NOW)
    del headers[missing]
    assert not verify_request(SECRET, body, headers, now=NOW)


def test_garbage_headers_and_an_empty_secret_are_rejected() -> None:
    body = action_body()
    headers = {**sign(SECRET, body, NOW), "X-Slack-Request-Timestamp": "yesterday"}
    assert not verify_request(SECRET, body, headers, now=NOW)
    assert not verify_request("", body, {}, now=NOW)
    assert not verify_request(" ", body, sign(SECRET, body, NOW), now=NOW)


# ---- POST /slack/actions: payload --------------------------------------------------------------


@pytest.mark.parametrize(("action_id", "kind"), [
    ("incident_ack", "ack"), ("incident_resolve", "resolve"), ("incident_silence_1h", "silence"),
])
def test_each_button_parses(action_id: str, kind: str) -> None:
    assert parse_action(action_body(action_id)) == SlackAction(
        kind=kind, incident_id=7, user="alice", channel="C0123",  # type: ignore[arg-type]
        message_ts="1700000000.000100",
        response_url="https://hooks.slack.com/actions/T0/1/abc")


def test_the_buttons_we_send_parse_back(fake: FakeSlack) -> None:
    bot(fake).send(incident(incident_id=42))
    sent = buttons(fake.requests[0].body["blocks"])
    kinds = {parse_action(action_body(a, v)).kind for a, v in sent.items()}  # type: ignore[union-attr]
    assert kinds == {"ack", "resolve", "silence"}


def test_user_falls_back_to_the_id_and_missing_context_is_none() -> None:
    body = action_body(user={"id": "U024BE7LH"}, channel=None, container={},
                       response_url=None)
    assert parse_action(body) == SlackAction("ack", 7, "U024BE7LH", None, None, None)


@pytest.mark.parametrize("body", [
    b"",
    b"payload=",
    b"payload=%7Bnot+json",
    b"payload=%5B1%2C2%5D",
    b"\xff\xfe",
    b"payload=a&payload=b",
    action_body(type="view_submission"),
    action_body("incident_delete"),
    action_body(value="seven"),
    action_body(value="-7"),
    action_body(value="+7"),
    action_body(value="0"),
    action_body(value="9" * 40),
    action_body(actions="incident_ack"),
    action_body(actions=[]),
    action_body(actions=[None, 3]),
    action_body(user="alice"),
    action_body(user={}),
    urlencode({"payload": "[" * 100_000}).encode(),
], ids=lambda b: repr(b[:40]))
def test_garbage_parses_to_none(body: bytes) -> None:
    assert parse_action(body) is None
