"""The on-call story end to end, on a simulated clock: a hard outage of the API pages
Slack within the Workbook's detection time, escalates to PagerDuty after 15 minutes
without an acknowledgement, a correctly signed Slack "Acknowledge" stops escalation,
the first successful probe resolves the incident (and the slow tiers still counting the
outage open no other), and the post-mortem draft holds its timeline and numbers.

Everything is real except the clock: SLO evaluation over stored rollups, the incident
manager, the outbox, the notifiers speaking HTTP to local Slack and PagerDuty fakes, and
the /slack/actions route of the running app.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.slack_actions import sign
from alerts.store import get_incident, list_incidents
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.fake_pagerduty import FakePagerDuty
from tests.fake_slack import FakeSlack
from tests.servers import route_server, serve_asgi

T0 = 1_767_225_600.0
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TICK = 30.0


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakePagerDuty]]:
    with route_server() as server:
        yield FakeSlack(server), FakePagerDuty(server)


def story_settings(slack: FakeSlack, pagerduty: FakePagerDuty) -> Any:
    return make_settings(
        server={"public_url": "http://primewatch.example"},
        slos=[{"name": "api-availability", "target": "api", "sli": "availability",
               "objective": 99.9, "window": "30d"}],
        alerting={
            "evaluate_every": "30s",
            # Acknowledged incidents re-escalate after 2 hours unresolved; the page tier
            # of 6x over 6h & 30m keeps firing 30 min after recovery.
            "policies": [{"name": "default", "repeat": 0, "ack_timeout": "2h", "steps": [
                {"after": "0m", "notify": ["slack-oncall"]},
                {"after": "15m", "notify": ["slack-oncall", "pagerduty"]}]}],
            "channels": [
                {"name": "slack-oncall", "type": "slack", "token": slack.token,
                 "channel": "#oncall", "api_url": slack.api_url, "signing_secret": SECRET},
                {"name": "pagerduty", "type": "pagerduty",
                 "routing_key": "R0123456789ABCDEFGHIJKLMNOPQRSTU",
                 "events_url": pagerduty.events_url}]})


class Story:
    """Drives the runtime's evaluation tick and outbox on a simulated clock."""

    def __init__(self, runtime: Any, clock: FakeClock, writer: ResultWriter) -> None:
        self.runtime, self.clock, self.writer = runtime, clock, writer

    def probe(self, start: float, end: float, ok: bool) -> None:
        self.writer([ProbeResult(target="api", started_at=t, ok=ok, latency=0.04 if ok else 2.0,
                                 status_code=200 if ok else 503,
                                 error_class=None if ok else "http_status")
                     for t in _range(start, end, 10.0)])

    def tick(self, ok: bool, seconds: float = TICK) -> None:
        before = self.clock.now()
        self.clock.advance(seconds)
        self.probe(before, self.clock.now(), ok)
        self.runtime._evaluate_and_publish()
        self.runtime.outbox.deliver_due()


def _range(start: float, end: float, step: float) -> list[float]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return out


def slack_button(action_id: str, incident_id: int) -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U1", "username": "alice"},
               "channel": {"id": "C0123"}, "message": {"ts": "1700000000.000100"},
               "response_url": "http://127.0.0.1:1/response",
               "actions": [{"type": "button", "action_id": action_id,
                            "value": str(incident_id)}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_outage_page_escalation_ack_recovery_postmortem(
        engine: Engine, fakes: tuple[FakeSlack, FakePagerDuty],
        request: pytest.FixtureRequest) -> None:
    slack, pagerduty = fakes
    settings = story_settings(slack, pagerduty)
    clock = FakeClock(T0)
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    runtime = app.state.runtime
    request.addfinalizer(runtime.outbox.close)  # the notifiers' HTTP connections
    story = Story(runtime, clock, ResultWriter(engine, settings.slos,
                                               on_written=runtime.service.slo_engine.forget))
    story.probe(T0 - 2 * 86400, T0, ok=True)  # two healthy days
    for _ in range(4):
        story.tick(ok=True)
    assert list_incidents(engine)[1] == 0 and slack.messages == {}

    outage_start = clock.now()
    while not slack.messages and clock.now() - outage_start < 600:
        story.tick(ok=False)
    paged_after = clock.now() - outage_start
    assert paged_after <= 120  # the Workbook: a 100% outage on 99.9% pages in ~1 minute
    (page,) = slack.messages.values()
    assert page["blocks"] and "api" in json.dumps(page["blocks"])
    incident = list_incidents(engine)[0][0]
    assert incident.severity == "page" and incident.status == "triggered"

    while clock.now() - incident.opened_at < 14 * 60:
        story.tick(ok=False)
    assert pagerduty.events == []  # step 2 waits its 15 minutes
    for _ in range(3):
        story.tick(ok=False)
    (trigger,) = pagerduty.events
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "critical"
    assert len(slack.replies(page["ts"])) == 1  # step 2 also replied in the thread

    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        body = slack_button("incident_ack", incident.id)
        forged = client.post("/slack/actions", content=body, headers={
            **sign("not-the-secret", body, clock.now()),
            "Content-Type": "application/x-www-form-urlencoded"})
        assert forged.status_code == 401
        assert get_incident(engine, incident.id).status == "triggered"  # type: ignore[union-attr]
        acked = client.post("/slack/actions", content=body, headers={
            **sign(SECRET, body, clock.now()),
            "Content-Type": "application/x-www-form-urlencoded"})
        assert acked.status_code == 200
        assert get_incident(engine, incident.id).status == "acknowledged"  # type: ignore[union-attr]

        for _ in range(40):  # 20 more minutes of outage: no further escalation
            story.tick(ok=False)
        actions = [e["event_action"] for e in pagerduty.events]
        assert actions == ["trigger", "acknowledge"]
        recovered_at = clock.now()
        # A down page resolves at the next success: the burn-rate tiers that still
        # fire (6h & 30m for half an hour, the tickets' 1d & 2h and 3d & 6h for hours)
        # only count the outage's failures, which this incident handled.
        story.tick(ok=True)
        resolved = get_incident(engine, incident.id)
        assert resolved is not None and resolved.status == "resolved"
        assert resolved.resolved_by == "auto" and resolved.resolved_at == recovered_at + 30
        for _ in range(12):  # an hour of those tiers firing: no new incident
            story.tick(ok=True, seconds=300)
        assert list_incidents(engine)[1] == 1
        assert [e["event_action"] for e in pagerduty.events] == \
            ["trigger", "acknowledge", "resolve"]
        assert len({e["dedup_key"] for e in pagerduty.events}) == 1

        draft = client.get(f"/api/v1/incidents/{incident.id}/postmortem")
        assert draft.status_code == 200
        assert draft.headers["content-type"].startswith("text/markdown")
        text = draft.text
        detail = client.get(f"/api/v1/incidents/{incident.id}").json()

    assert "alice" in text and "api-availability" in text
    kinds = [event["kind"] for event in detail["timeline"]]
    for expected in ("opened", "escalated", "acknowledged", "resolved", "postmortem"):
        assert expected in kinds
    assert kinds.index("opened") < kinds.index("acknowledged") < kinds.index("resolved")
    # The draft's numbers: the outage lasted from its start to recovery; every probe
    # failed meanwhile, against none the week before.
    assert "100%" in text or "100.0%" in text
    replies = slack.replies(page["ts"])
    assert f"/api/v1/incidents/{incident.id}/postmortem" in json.dumps(replies[-1])
    assert slack.messages[page["ts"]]["blocks"] != page["blocks"]  # updated to resolved
