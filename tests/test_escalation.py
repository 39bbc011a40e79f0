"""Incidents and escalation on a simulated clock: steps, repeats, acknowledgement and its
timeout, tickets, silences, manual resolution, restarts, and the outbox under 429s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from alerts.escalation import IncidentError, IncidentManager, IncidentNotFound
from alerts.members import PAGE_CLEARED
from alerts.outbox import Outbox
from alerts.rules import ActiveAlert
from alerts.silences import Matcher, create_silence
from alerts.store import get_incident, list_incidents, timeline
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.runtime import build_notifiers
from monitor.storage.models import NotificationRow
from tests.conftest import make_settings
from tests.fake_slack import FakeSlack
from tests.fake_webhook import FakeWebhook
from tests.servers import RouteServer, route_server

MINUTE = 60.0


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    with route_server() as running:
        yield running


@pytest.fixture
def slack(server: RouteServer) -> FakeSlack:
    return FakeSlack(server)


@pytest.fixture
def hook(server: RouteServer) -> FakeWebhook:
    return FakeWebhook(server)


def settings_for(slack: FakeSlack, hook: FakeWebhook, **policy: Any) -> Settings:
    policies = [{"name": "default", "repeat": 1, "repeat_after": "10m",
                 "ack_timeout": "30m",
                 "steps": [{"after": "0m", "notify": ["slack-oncall"]},
                           {"after": "15m", "notify": ["slack-oncall", "escalation-hook"]}],
                 **policy}]
    return make_settings(
        server={"public_url": "http://127.0.0.1:8000"},
        alerting={"policies": policies, "channels": [
            {"name": "slack-oncall", "type": "slack", "token": slack.token,
             "channel": "#oncall", "api_url": slack.api_url},
            {"name": "escalation-hook", "type": "webhook", "url": hook.url},
        ]})


class Harness:
    """The manager and the outbox of one process, on a shared clock and database."""

    def __init__(self, engine: Engine, settings: Settings, clock: FakeClock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        notifiers = build_notifiers(settings)
        self.manager = IncidentManager(engine, settings, channels=notifiers.keys())
        self.outbox = Outbox(engine, notifiers, clock)

    def run(self, alerts: list[ActiveAlert], minutes: float, step: float = 30.0) -> None:
        """Tick every `step` seconds for `minutes`, delivering after each tick."""
        end = self.clock.now() + minutes * MINUTE
        while self.clock.now() < end:
            self.clock.advance(step)
            self.manager.tick(alerts, self.clock.now())
            self.outbox.deliver_due()


@pytest.fixture
def harness(engine: Engine) -> Iterator[Any]:
    """Harness factory; every notifier is closed at the end (sockets, SMTP)."""
    made: list[Harness] = []

    def make(settings: Settings, clock: FakeClock) -> Harness:
        made.append(Harness(engine, settings, clock))
        return made[-1]

    yield make
    for one in made:
        one.outbox.close()


def outage(severity: str = "page", key: str = "slo:api-availability",
           burn: float = 20.0) -> ActiveAlert:
    return ActiveAlert(key=key, kind="burn_rate", severity=severity,  # type: ignore[arg-type]
                       title="SLO api-availability is burning its error budget",
                       summary=f"burn rate {burn}x over 1h and 5m", slo="api-availability",
                       target="api", labels={"alertname": "burn_rate", "severity": severity,
                                             "slo": "api-availability", "target": "api"},
                       burn_rate=burn, budget_remaining=0.8)


def only_incident(engine: Engine) -> Any:
    items, total = list_incidents(engine)
    assert total == 1
    return items[0]


def test_escalation_steps_repeat_and_stop_on_acknowledgement(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    opened = clock.now() + 30
    h.run([outage()], minutes=1)
    assert len(slack.calls("chat.postMessage")) == 1  # step 1: the page, within a tick
    assert hook.deliveries == []
    h.run([outage()], minutes=14)
    assert hook.deliveries == []  # step 2 not before its 15 minutes
    h.run([outage()], minutes=1)
    assert len(hook.deliveries) == 1  # step 2 at 15 min: webhook + a Slack reply
    incident = only_incident(engine)
    assert incident.next_step == 0 and incident.repeat == 1  # waiting for the repeat
    assert incident.next_escalation_at == opened + 15 * MINUTE + 10 * MINUTE
    h.run([outage()], minutes=10)
    assert len(hook.deliveries) == 1
    assert len(slack.calls("chat.postMessage")) == 3  # page, step 2 reply, repeat step 1
    h.manager.acknowledge(incident.id, "alice", clock.now())
    h.run([outage()], minutes=29)
    # Acknowledged: step 2 of the repeat never runs; the webhook only hears of the ack.
    assert [d.json()["event"] for d in hook.deliveries] == ["escalate", "acknowledge"]
    kinds = [e.kind for e in timeline(engine, incident.id)]
    assert kinds.count("escalated") == 3 and "acknowledged" in kinds
    # The acknowledgement reached Slack (message updated) and the webhook.
    assert any("Acknowledged by alice" in str(r.body) for r in slack.calls("chat.update"))
    h.run([outage()], minutes=2)  # ack timeout (30 min) passed: escalation starts again
    assert get_incident(engine, incident.id).status == "triggered"  # type: ignore[union-attr]
    assert "ack_timeout" in [e.kind for e in timeline(engine, incident.id)]


def test_one_incident_per_episode_and_recovery_resolves_it(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage(burn=20)], minutes=2)
    h.run([outage(burn=40.0)], minutes=2)  # a faster tier: the same incident, updated
    incident = only_incident(engine)
    assert incident.peak_burn_rate == 40.0 and incident.summary.startswith("burn rate 40")
    h.run([], minutes=1)
    resolved = only_incident(engine)
    assert resolved.status == "resolved" and resolved.resolved_by == "auto"
    assert any(r.body.get("thread_ts") and "Resolved" in str(r.body)
               for r in slack.calls("chat.postMessage"))
    h.run([outage()], minutes=1)  # a new episode is a new incident
    items, total = list_incidents(engine)
    assert total == 2 and items[0].status == "triggered"


def test_tickets_notify_once_and_never_escalate(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage("ticket")], minutes=120)
    assert len(slack.calls("chat.postMessage")) == 1
    assert hook.deliveries == []
    # ... until it becomes a page: escalation starts from the top.
    h.run([outage("page")], minutes=16)
    assert only_incident(engine).severity == "page"
    assert len(hook.deliveries) == 1


def test_silences_stop_new_incidents_and_pause_escalation(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    now = clock.now()
    create_silence(engine, [Matcher("slo", "api-availability")], starts_at=now,
                   ends_at=now + 3600, created_by="bob", comment="deploy", now=now)
    h.run([outage()], minutes=30)
    assert list_incidents(engine)[1] == 0 and slack.requests == []
    h.run([outage()], minutes=31)  # silence over: the incident opens and pages
    incident = only_incident(engine)
    assert len(slack.calls("chat.postMessage")) == 1
    h.manager.silence(incident.id, "carol", 3600, clock.now())
    h.run([outage()], minutes=50)
    assert hook.deliveries == []  # step 2 (due at 15 min) waits for the silence
    h.run([outage()], minutes=11)
    assert len(hook.deliveries) == 1


def test_manual_resolution_policy_waits_for_a_person(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook, resolve="manual"), clock)
    h.run([outage()], minutes=2)
    h.run([], minutes=5)
    incident = only_incident(engine)
    assert incident.status == "triggered" and incident.cleared_at is not None
    h.manager.resolve(incident.id, "dave", clock.now())
    assert only_incident(engine).resolved_by == "dave"
    with pytest.raises(IncidentError):
        h.manager.acknowledge(incident.id, "dave", clock.now())
    with pytest.raises(IncidentNotFound):
        h.manager.resolve(999, "dave", clock.now())


def test_a_restart_mid_escalation_continues_at_the_right_step_without_repeats(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    settings = settings_for(slack, hook)
    first = harness(settings, clock)
    first.run([outage()], minutes=5)
    first.manager.tick([outage()], clock.now())  # queued a tick's work, then "crashes"
    del first
    clock.advance(20 * MINUTE)  # down for 20 minutes: step 2 became due meanwhile
    second = harness(settings, clock)
    second.run([outage()], minutes=1)
    assert len(hook.deliveries) == 1  # step 2 ran once, on the first tick back
    assert len(slack.calls("chat.postMessage")) == 2  # the page + step 2's reply, no repeat
    second.run([outage()], minutes=5)
    with engine.connect() as connection:
        keys = connection.execute(select(NotificationRow.key)).scalars().all()
    assert len(keys) == len(set(keys)) == 3


def test_a_slack_429_storm_and_500s_delay_messages_but_lose_and_double_none(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    slack.fail_next(6, status=429, retry_after=20)
    h.run([outage()], minutes=1, step=5)
    assert slack.messages == {}  # still rate limited: nothing posted yet
    assert len(slack.calls("chat.postMessage")) < 6  # Retry-After was honoured
    slack.fail_next(3, status=500)
    h.run([outage()], minutes=20, step=5)
    h.run([], minutes=2, step=5)  # recovery: the resolve queued behind the page
    pages = [m for m in slack.messages.values() if "thread_ts" not in m]
    assert len(pages) == 1  # the page exactly once ...
    replies = slack.replies(pages[0]["ts"])
    assert len(replies) == 2  # ... with step 2's reply and the resolve, each once
    assert "Resolved" in replies[-1]["text"]
    assert len(hook.deliveries) == 2  # step 2 and the resolve
    with engine.connect() as connection:
        rows = connection.execute(select(NotificationRow.status, func.count())
                                  .group_by(NotificationRow.status)).all()
    assert dict(rows) == {"delivered": 5}  # page, step 2 Slack + webhook, 2 resolves


def test_a_down_target_and_its_burning_slo_page_once(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    down = ActiveAlert(key="target:api", kind="down", severity="page",
                       title="Target api is down", summary="3 consecutive failures",
                       target="api", labels={"alertname": "down", "severity": "page",
                                             "target": "api"})
    trigger = ActiveAlert(key="trigger:db-size", kind="trigger", severity="ticket",
                          title="Scaling trigger fired: database approaching 10 GB",
                          summary="db-size: measured 9.6e9", labels={"trigger": "db-size"})
    h.run([down, outage(), trigger], minutes=1)
    items, total = list_incidents(engine)
    assert total == 2  # the outage (down + SLO burn) and the unrelated trigger
    outage_incident = next(i for i in items if i.key == "target:api")
    # Named after both causes as they are, each labelled in the summary.
    assert outage_incident.title == "api is down · api-availability burning 20× (page)"
    assert "api-availability: burn rate" in outage_incident.summary
    assert [(m.key, m.kind, m.severity) for m in outage_incident.members] == [
        ("target:api", "down", "page"), ("slo:api-availability", "burn_rate", "page")]
    assert outage_incident.slo == "api-availability"
    assert outage_incident.slos == ("api-availability",)
    assert len([m for m in slack.messages.values() if "thread_ts" not in m]) == 2


def test_a_page_that_drops_to_ticket_stops_escalating_but_stays_open(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage("page")], minutes=5)
    h.run([outage("ticket")], minutes=60)  # the page tiers cleared, a slow tier fires
    incident = only_incident(engine)
    assert incident.status == "triggered" and incident.severity == "page"  # its peak
    assert incident.next_escalation_at is None
    assert hook.deliveries == []  # step 2 (15 min) never ran
    h.run([], minutes=1)
    assert only_incident(engine).status == "resolved"


def test_incidents_are_routed_by_slo_labels_and_severity(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    settings = settings_for(slack, hook)
    settings.alerting.policies.insert(0, settings.alerting.policies[0].model_copy(update={
        "name": "payments", "match": {"team": "payments"}, "severities": ["page"],
        "steps": [settings.alerting.policies[0].steps[1].model_copy(
            update={"after": 0.0, "notify": ["escalation-hook"]})]}))
    h = harness(settings, clock)
    labelled = ActiveAlert(key="slo:checkout", kind="burn_rate", severity="page",
                           title="SLO checkout is burning", summary="burn", slo="checkout",
                           target="checkout-api", labels={"team": "payments",
                                                          "severity": "page"})
    ticket = ActiveAlert(key="slo:refunds", kind="burn_rate", severity="ticket",
                         title="SLO refunds is burning", summary="slow burn", slo="refunds",
                         target="refunds-api", labels={"team": "payments",
                                                       "severity": "ticket"})
    h.run([outage(), labelled, ticket], minutes=1)
    policies = {i.key: i.policy for i in list_incidents(engine)[0]}
    assert policies == {"target:api": "default", "target:checkout-api": "payments",
                        "target:refunds-api": "default"}  # tickets: payments pages only
    assert len(hook.deliveries) == 1  # the payments page went to its webhook at once


def test_a_channel_failing_past_its_retry_budget_pages_through_the_others(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    from monitor.watchdog import failing_channels

    clock = FakeClock()
    settings = settings_for(slack, hook, steps=[
        {"after": "0m", "notify": ["slack-oncall", "escalation-hook"]}])
    one = harness(settings, clock)
    slack.fail_next(1000, status=500)  # Slack is down for the whole test
    one.run([outage()], minutes=10)
    assert failing_channels(engine, budget=900, now=clock.now()) == []  # still in budget
    one.run([outage()], minutes=10)
    alerts = failing_channels(engine, budget=900, now=clock.now())
    assert [(a.key, a.labels["failing_channel"]) for a in alerts] == [
        ("notify:slack-oncall", "slack-oncall")]
    hooks_before = len(hook.deliveries)
    slack_calls_before = len(slack.requests)
    one.manager.tick([outage(), *alerts], clock.now())
    watchdog = next(i for i in list_incidents(engine)[0] if i.key == "notify:slack-oncall")
    with engine.connect() as connection:
        queued = connection.execute(select(NotificationRow.channel).where(
            NotificationRow.incident_id == watchdog.id)).scalars().all()
    assert queued == ["escalation-hook"]  # not the channel that is failing
    assert any(e.kind == "channel_failing" for e in timeline(engine, watchdog.id))
    one.outbox.deliver_due()
    assert len(hook.deliveries) == hooks_before + 1
    assert b"Notifications to slack-oncall are failing" in hook.deliveries[-1].body
    assert len(slack.requests) >= slack_calls_before


def test_a_human_resolve_holds_until_the_rule_was_seen_clear(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage()], minutes=2)
    incident = only_incident(engine)
    h.manager.resolve(incident.id, "dave", clock.now())  # the rule still fires
    assert only_incident(engine).latched
    h.run([outage()], minutes=30)
    assert only_incident(engine).status == "resolved"  # no new incident, no new page
    assert len([m for m in slack.messages.values() if "thread_ts" not in m]) == 1
    h.run([], minutes=0.5)  # seen clear once ...
    assert not only_incident(engine).latched
    assert "latch_released" in [e.kind for e in timeline(engine, incident.id)]
    h.run([outage()], minutes=1)  # ... so the next episode is a new incident
    items, total = list_incidents(engine)
    assert total == 2 and items[0].status == "triggered"


def test_a_resolve_after_the_rule_cleared_does_not_latch(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook, resolve="manual"), clock)
    h.run([outage()], minutes=2)
    h.run([], minutes=1)
    h.manager.resolve(only_incident(engine).id, "dave", clock.now())
    assert not only_incident(engine).latched
    h.run([outage()], minutes=1)
    assert list_incidents(engine)[1] == 2


def test_a_silence_about_to_end_reminds_its_author_once(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage()], minutes=1)
    incident = only_incident(engine)
    (page,) = [m for m in slack.messages.values() if "thread_ts" not in m]
    h.manager.silence(incident.id, "carol", 3600, clock.now())
    h.run([outage()], minutes=44)
    assert slack.replies(page["ts"]) == []
    h.run([outage()], minutes=2)  # 15 minutes before the silence ends
    (reminder,) = slack.replies(page["ts"])
    assert "Reminder for carol" in reminder["text"] and "ends in 1" in reminder["text"]
    h.run([outage()], minutes=10)
    assert len(slack.replies(page["ts"])) == 1  # once, not every tick
    events = [e for e in timeline(engine, incident.id) if e.kind == "silence_expiring"]
    assert len(events) == 1 and events[0].data["by"] == "carol"


def test_whoever_heard_of_an_incident_hears_it_resolved_even_while_silenced(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage()], minutes=16)  # the page, and step 2 to Slack and the webhook
    incident = only_incident(engine)
    assert [d.json()["event"] for d in hook.deliveries] == ["escalate"]
    h.manager.silence(incident.id, "carol", 3600, clock.now())
    h.run([outage()], minutes=5)
    h.run([], minutes=1)  # recovers while silenced
    assert only_incident(engine).status == "resolved"
    assert [d.json()["event"] for d in hook.deliveries] == ["escalate", "resolve"]
    (page,) = [m for m in slack.messages.values() if "thread_ts" not in m]
    assert "Resolved" in slack.replies(page["ts"])[-1]["text"]
    assert "Resolved" in str(slack.messages[page["ts"]]["blocks"])


def test_a_change_of_causes_edits_the_slack_message_without_a_reply(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    down = ActiveAlert(key="target:api", kind="down", severity="page",
                       title="Target api is down", summary="3 consecutive failures",
                       target="api", labels={"alertname": "down", "severity": "page",
                                             "target": "api"}, since=clock.now())
    h.run([down], minutes=1)
    (page,) = [m for m in slack.messages.values() if "thread_ts" not in m]
    assert "Target api is down" in str(page["blocks"])
    h.run([down, outage(burn=307.0)], minutes=1)  # the SLO's burn joins the outage
    shown = slack.messages[page["ts"]]
    assert "api is down · api-availability burning 307× (page)" in str(shown["blocks"])
    assert slack.replies(page["ts"]) == []  # edited in place: no thread noise
    kinds = [e.kind for e in timeline(engine, only_incident(engine).id)]
    assert "members" in kinds


def test_a_page_resolves_once_no_page_tier_fires_and_its_fast_window_is_clean(
        engine: Engine, slack: FakeSlack, hook: FakeWebhook, harness: Any) -> None:
    clock = FakeClock()
    h = harness(settings_for(slack, hook), clock)
    h.run([outage("page")], minutes=5)
    # The page tiers cleared; a ticket tier fires and failures go on: still open.
    h.run([replace(outage("ticket"), fast_clean=False)], minutes=10)
    incident = only_incident(engine)
    assert incident.status == "triggered" and incident.next_escalation_at is None
    # The last 5 minutes are clean: the ticket tier only holds the outage.
    h.run([replace(outage("ticket"), fast_clean=True)], minutes=0.5)
    resolved = only_incident(engine)
    assert resolved.status == "resolved" and resolved.resolved_by == "auto"
    assert any(e.kind == "resolved" and e.text == PAGE_CLEARED
               for e in timeline(engine, resolved.id))
