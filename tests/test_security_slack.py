"""Security review items on Slack, each an attack over real loopback sockets: markup in
an alert's text reaching Slack unescaped (item 7), and a replayed, validly signed
"Silence 1h" press stacking silences (item 8)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from alerts.notification import Notification
from alerts.silences import Matcher, create_silence, list_silences
from alerts.slack import SlackNotifier
from alerts.slack_actions import sign
from monitor.config import SlackChannel
from tests.fake_slack import TOKEN, FakeSlack, fake_slack
from tests.test_api_incidents import (
    AUTH,
    FORM,
    SECRET,
    Api,
    post_signed,
    press,
    serve,
    settings,
)

# -- item 7: untrusted text is escaped in everything Slack parses ----------------------

HOSTILE = "<!channel> <@U123> <http://evil|click> & co"
ESCAPED = "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil|click&gt; &amp; co"
INJECTED = ("<!", "<@", "<http://evil")


def hostile(**overrides: Any) -> Notification:
    """An incident whose every free-text field came from a hostile Alertmanager."""
    base = Notification(
        key="7:0:0:slack", incident_id=7, event="trigger", title=HOSTILE, severity="page",
        status="triggered", summary=f"summary {HOSTILE}", occurred_at=1_767_225_600.0,
        slo=f"slo {HOSTILE}", target=f"target {HOSTILE}", labels={"team": HOSTILE},
        dashboard_url="http://127.0.0.1:8000/slos/checkout",
        incident_url="http://127.0.0.1:8000/incidents/7")
    return replace(base, **overrides)


def parsed_texts(body: dict[str, Any]) -> list[str]:
    """What Slack parses for markup: the top-level `text` and every mrkdwn text object,
    wherever it sits (section text and fields, context elements, attachments)."""
    found = [body["text"]] if isinstance(body.get("text"), str) else []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in body.items() if k != "text"})
    return found


def assert_nothing_injected(fake: FakeSlack) -> None:
    assert fake.requests
    for request in fake.requests:
        texts = parsed_texts(request.body)
        assert texts, request
        for text in texts:
            assert not any(bad in text for bad in INJECTED), (request.method, text)


def test_markup_in_a_title_never_reaches_slack_unescaped() -> None:
    with fake_slack() as fake:
        notifier = SlackNotifier(SlackChannel.model_validate({
            "name": "slack", "type": "slack", "token": TOKEN, "channel": "#oncall",
            "api_url": fake.api_url}))
        thread = notifier.send(hostile()).thread
        # chat.update of the first message plus a thread reply, then an in-place edit
        notifier.send(hostile(event="acknowledge", status="acknowledged", thread=thread))
        notifier.send(hostile(event="update", thread=thread, in_place=True))
        hook = SlackNotifier(SlackChannel.model_validate(
            {"name": "hook", "type": "slack", "webhook_url": fake.webhook_url}))
        hook.send(hostile(event="resolve", status="resolved"))

        assert [r.method for r in fake.requests] == [
            "chat.postMessage", "chat.update", "chat.postMessage", "chat.update", "webhook"]
        assert_nothing_injected(fake)
        first = fake.requests[0].body
        assert first["text"] == f"[PAGE] {ESCAPED}: triggered"
        fields = parsed_texts(first)
        assert f"*SLO*\nslo {ESCAPED}" in fields and f"*Target*\ntarget {ESCAPED}" in fields
        assert f"summary {ESCAPED}" in fields
        # primewatch's own links stay links
        assert any("<http://127.0.0.1:8000/incidents/7|Incident>" in t for t in fields)
        # plain_text is shown as written, never parsed: the title stays readable there
        assert first["blocks"][0]["text"] == {"type": "plain_text", "text": HOSTILE,
                                              "emoji": True}
        assert fake.requests[2].body["text"].endswith(f"summary {ESCAPED}")
        assert fake.requests[4].body["text"] == f"[PAGE] {ESCAPED}: resolved"


# -- item 8: a replayed "Silence 1h" press makes one silence ---------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(tmp_path, settings()) as running:
        yield running


def stored_silences(api: Api) -> list[dict[str, Any]]:
    response = api.client.get("/api/v1/silences", params={"include_expired": "true"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_replayed_silence_press_makes_one_silence(api: Api) -> None:
    body = press("silence", api.ids["c"])
    signed = {**FORM, **sign(SECRET, body, api.clock.now())}
    answers = []
    for _ in range(3):
        answers.append(api.client.post("/slack/actions", content=body, headers=signed))
        api.clock.advance(60)  # still inside Slack's 5-minute signature window
    assert [a.status_code for a in answers] == [200, 200, 200]
    [silence] = stored_silences(api)
    assert {a.json()["text"] for a in answers} == {
        f"Silenced incident #{api.ids['c']} for 1h (silence {silence['id']})"}
    assert silence["ends_at"] - silence["starts_at"] == 3600
    timeline = api.client.get(f"/api/v1/incidents/{api.ids['c']}", headers=AUTH).json()
    assert [e["kind"] for e in timeline["timeline"]].count("silenced") == 1


def test_replays_racing_each_other_make_one_silence(api: Api) -> None:
    body = press("silence", api.ids["c"])
    signed = {**FORM, **sign(SECRET, body, api.clock.now())}
    start = threading.Barrier(6)
    statuses: list[int] = []

    def replay() -> None:
        with httpx.Client(base_url=api.client.base_url) as client:
            start.wait()
            statuses.append(client.post("/slack/actions", content=body,
                                        headers=signed).status_code)

    threads = [threading.Thread(target=replay) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 6
    assert len(stored_silences(api)) == 1


def test_pressing_again_later_or_after_an_expiry_is_a_new_silence(api: Api) -> None:
    """A press after the replay window is a human asking for another hour from now; a
    press after the silence was ended is someone who means it again."""
    first = post_signed(api, press("silence", api.ids["c"]))
    api.clock.advance(1800)
    second = post_signed(api, press("silence", api.ids["c"]))
    assert first.status_code == second.status_code == 200
    one, two = stored_silences(api)
    assert two["starts_at"] - one["starts_at"] == 1800
    assert api.client.delete(f"/api/v1/silences/{two['id']}",
                             headers=AUTH).status_code == 200
    api.clock.advance(10)
    post_signed(api, press("silence", api.ids["c"]))
    assert len(stored_silences(api)) == 3


def test_identical_silences_created_together_are_stored_once(engine: Engine) -> None:
    """Storage alone, on each backend: the find-then-insert is one writer at a time."""
    now = 1_767_225_600.0
    start = threading.Barrier(8)
    made: list[int] = []

    def create() -> None:
        start.wait()
        made.append(create_silence(engine, [Matcher("slo", "c")], starts_at=now,
                                   ends_at=now + 3600, created_by="alice (Slack)",
                                   comment="silenced from incident 3", now=now,
                                   repeatable=False).id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 8 and len(set(made)) == 1
    assert len(list_silences(engine, now, include_expired=True)) == 1
    # Not the same request: another author, another duration, another matcher.
    for by, hours, slo in [("bob", 1, "c"), ("alice (Slack)", 2, "c"),
                           ("alice (Slack)", 1, "d")]:
        create_silence(engine, [Matcher("slo", slo)], starts_at=now,
                       ends_at=now + hours * 3600, created_by=by,
                       comment="silenced from incident 3", now=now, repeatable=False)
    assert len(list_silences(engine, now)) == 4
    # The REST API stores what it is sent, as Alertmanager's does: a second identical
    # POST is a second silence (only a button press can be a replay).
    create_silence(engine, [Matcher("slo", "c")], starts_at=now, ends_at=now + 3600,
                   created_by="alice (Slack)", comment="silenced from incident 3", now=now)
    assert len(list_silences(engine, now)) == 5
