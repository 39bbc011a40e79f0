"""Incidents that say what is wrong, close when it is over, and page once, on a simulated
clock through the real runtime (SLO evaluation over stored rollups, down detection, the
incident manager, the outbox) and local Slack and PagerDuty fakes.

The stories: an outage on a target that already has an unrelated ticket open becomes
a page named after the outage; healing resolves a down page at the next success; slow
tiers that still count a handled outage neither keep nor open incidents, while a fresh
slow burn tickets as usual; dependent targets page once under their failing parent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.facts import detection_delay
from alerts.members import DOWN_CLEARED
from alerts.store import Incident, incidents_of_slo, list_incidents, timeline
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.down import DownDetector
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.fake_pagerduty import FakePagerDuty
from tests.fake_slack import FakeSlack
from tests.servers import route_server, serve_asgi

T0 = 1_767_225_600.0
STEP = 10.0  # seconds between probes of a target
HOUR, DAY = 3600.0, 86400.0
Outcome = Callable[[str, int], tuple[bool, float]]
"""(target, that target's probe number) → (ok, latency in seconds)."""


def healthy(_target: str, _n: int) -> tuple[bool, float]:
    return True, 0.05


def failing(_target: str, _n: int) -> tuple[bool, float]:
    return False, 2.0


def failing_every(n: int) -> Outcome:
    """One failed probe in every `n`, at a fixed rhythm: an error rate of 1/n."""
    return lambda _target, count: (count % n != 0, 0.05)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakePagerDuty]]:
    with route_server() as server:
        yield FakeSlack(server), FakePagerDuty(server)


def lifecycle_settings(slack: FakeSlack, pagerduty: FakePagerDuty, *,
                       targets: list[dict[str, Any]] | None = None,
                       slos: list[dict[str, Any]] | None = None) -> Settings:
    return make_settings(
        server={"public_url": "http://primewatch.example"},
        targets=targets or [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/",
                             "interval": "10s", "down_after": 3}],
        slos=[{"name": "api-availability", "target": "api", "sli": "availability",
               "objective": 99.9, "window": "30d"}] if slos is None else slos,
        alerting={
            "evaluate_every": "30s",
            "policies": [{"name": "default", "repeat": 0, "ack_timeout": "2h", "steps": [
                {"after": "0m", "notify": ["slack-oncall"]},
                {"after": "15m", "notify": ["slack-oncall", "pagerduty"]}]}],
            "channels": [
                {"name": "slack-oncall", "type": "slack", "token": slack.token,
                 "channel": "#oncall", "api_url": slack.api_url},
                {"name": "pagerduty", "type": "pagerduty",
                 "routing_key": "R0123456789ABCDEFGHIJKLMNOPQRSTU",
                 "events_url": pagerduty.events_url}]})


class Sim:
    """Probe results and evaluation ticks on a simulated clock."""

    def __init__(self, engine: Engine, settings: Settings,
                 request: pytest.FixtureRequest) -> None:
        self.clock = FakeClock(T0)
        self.app = create_app(settings, engine, clock=self.clock,
                              metrics=Metrics(CollectorRegistry()), run_background=False)
        self.runtime: Runtime = self.app.state.runtime
        request.addfinalizer(self.runtime.outbox.close)
        self.engine = engine
        self.targets = [t.name for t in settings.targets]
        self.writer = ResultWriter(engine, settings.slos,
                                   on_written=self.runtime.service.slo_engine.forget)
        self.counts: dict[str, int] = {}

    def probe(self, start: float, end: float, outcome: Outcome,
              targets: list[str] | None = None, region: str = "local") -> None:
        results = []
        for target in targets or self.targets:
            t = start
            while t < end:
                number = self.counts[target] = self.counts.get(target, 0) + 1
                ok, latency = outcome(target, number)
                results.append(ProbeResult(
                    target=target, started_at=t, ok=ok, latency=latency, region=region,
                    status_code=200 if ok else 503,
                    error_class=None if ok else "http_status"))
                t += STEP
        for first in range(0, len(results), 5000):
            self.writer(results[first:first + 5000])

    def tick(self, outcome: Outcome, seconds: float = 30.0,
             targets: list[str] | None = None) -> None:
        before = self.clock.now()
        self.clock.advance(seconds)
        self.probe(before, self.clock.now(), outcome, targets)
        self.evaluate()

    def evaluate(self) -> None:
        self.runtime._evaluate_and_publish()
        self.runtime.outbox.deliver_due()

    def incidents(self) -> list[Incident]:
        return sorted(list_incidents(self.engine, limit=100)[0], key=lambda i: i.id)


def top_messages(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages.values() if "thread_ts" not in m]


def header(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def test_an_outage_joining_an_unrelated_ticket_pages_under_its_own_name_and_resolves_at_the_next_success(  # noqa: E501
        engine: Engine, fakes: tuple[FakeSlack, FakePagerDuty],
        request: pytest.FixtureRequest) -> None:
    slack, pagerduty = fakes
    settings = lifecycle_settings(slack, pagerduty, slos=[
        {"name": "api-availability", "target": "api", "sli": "availability",
         "objective": 99.9, "window": "30d"},
        {"name": "api-latency", "target": "api", "sli": "latency", "threshold": "200ms",
         "objective": 99, "window": "30d"},
        {"name": "web-availability", "target": "web", "sli": "availability",
         "objective": 99.9, "window": "30d"}], targets=[
        {"name": "api", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"},
        {"name": "web", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"}])
    sim = Sim(engine, settings, request)

    def slow_two_percent(_target: str, n: int) -> tuple[bool, float]:
        return True, 0.4 if n % 50 == 0 else 0.05  # api-latency burns at 2×: a ticket

    sim.probe(T0 - 3 * DAY, T0, slow_two_percent)
    sim.tick(slow_two_percent)
    (ticket,) = sim.incidents()
    assert ticket.severity == "ticket" and ticket.title == \
        "SLO api-latency is burning its error budget"
    (first,) = top_messages(slack)
    # Grouped on target api, yet about api-latency only: not api-availability's.
    assert incidents_of_slo(engine, "api-availability", "api", T0 - DAY) == []
    assert incidents_of_slo(engine, "api-latency", "api", T0 - DAY)[0].id == ticket.id

    def api_down(target: str, n: int) -> tuple[bool, float]:
        return failing(target, n) if target == "api" else healthy(target, n)

    outage_start = sim.clock.now()
    while "api-availability" not in sim.incidents()[0].title:
        sim.tick(api_down)  # the down page comes first, the burn rates join it
        assert sim.clock.now() - outage_start < 600
    for _ in range(20):  # ten more minutes of outage
        sim.tick(api_down)
    (incident,) = sim.incidents()  # the same incident, grouped on the target ...
    assert incident.id == ticket.id
    # ... but named after what is wrong now, the outage first.
    assert incident.title.startswith("api is down · api-availability burning ")
    assert "(page)" in incident.title and "api-latency burning" in incident.title
    assert {(m.key, m.kind) for m in incident.active_members} == {
        ("slo:api-latency", "burn_rate"), ("target:api", "down"),
        ("slo:api-availability", "burn_rate")}
    assert incident.slo is None and set(incident.slos) == {"api-latency",
                                                            "api-availability"}
    # Detected from the outage's first failure, not from the older ticket.
    delay = detection_delay(incident)
    assert delay is not None and 0 < delay <= 120
    # The first Slack message now carries the page's name; the page was broadcast.
    assert "api is down" in header(slack.messages[first["ts"]])
    assert any(r.body.get("reply_broadcast") for r in slack.calls("chat.postMessage"))
    assert incidents_of_slo(engine, "api-availability", "api", T0 - DAY)[0].id == incident.id
    assert incidents_of_slo(engine, "web-availability", "web", T0 - DAY) == []

    with serve_asgi(sim.app) as url, httpx.Client(base_url=url) as client:
        detail = client.get(f"/api/v1/incidents/{incident.id}").json()
    assert {m["key"]: (m["kind"], m["slo"], m["target"]) for m in detail["members"]} == {
        "slo:api-latency": ("burn_rate", "api-latency", "api"),
        "target:api": ("down", None, "api"),
        "slo:api-availability": ("burn_rate", "api-availability", "api")}
    assert [m["severity"] for m in detail["members"]
            if m["key"] in ("target:api", "slo:api-availability")] == ["page", "page"]
    burning = next(m for m in detail["members"] if m["key"] == "slo:api-availability")
    assert burning["burn_rate"] > 14.4 and burning["burn_window"] == "1h"
    assert set(detail["slos"]) == {"api-latency", "api-availability"}
    assert detail["slo"] is None
    assert set(detail["budget_spent"]) == {"api-availability", "api-latency"}
    assert detail["budget_spent"]["api-availability"] > 0

    sim.tick(healthy)  # the first success
    (resolved,) = sim.incidents()
    assert resolved.status == "resolved" and resolved.resolved_by == "auto"
    assert any(e.kind == "resolved" and e.text == DOWN_CLEARED
               for e in timeline(engine, resolved.id))
    assert "Resolved" in json.dumps(slack.replies(first["ts"])[-1])
    sim.tick(slow_two_percent, seconds=300)
    # The 6h/30m page tier still counts the outage's failures: it opens nothing.
    assert sim.runtime.service.slo_status("api-availability").alert.severity == "page"
    for _ in range(12):  # an hour later the 1d/2h ticket tier still does; no incident
        sim.tick(slow_two_percent, seconds=300)
    assert sim.runtime.service.slo_status("api-availability").alert.severity == "ticket"
    assert len(sim.incidents()) == 1
    assert pagerduty.events == []  # step 2 (15 min) never came due


def test_a_handled_outage_keeps_no_slow_ticket_open_and_a_fresh_slow_burn_tickets(
        engine: Engine, fakes: tuple[FakeSlack, FakePagerDuty],
        request: pytest.FixtureRequest) -> None:
    slack, pagerduty = fakes
    sim = Sim(engine, lifecycle_settings(slack, pagerduty), request)
    sim.probe(T0 - 3 * DAY, T0, healthy)
    sim.tick(healthy)
    for _ in range(60):  # a 30-minute outage: paged, then healed
        sim.tick(failing)
    sim.tick(healthy)
    (outage,) = sim.incidents()
    assert outage.severity == "page" and outage.status == "resolved"

    background = failing_every(667)  # 0.15% errors: a burn of 1.5
    for _ in range(42):  # seven hours later ...
        sim.tick(background, seconds=600)
    status = sim.runtime.service.slo_status("api-availability")
    # ... the 3d/6h ticket tier still fires: its 3 days hold the outage, its last 6
    # hours burn at 1.5. Only the outage makes the 3 days count: it was handled.
    assert status.alert.severity == "ticket" and status.alert.tier == 3
    assert len(sim.incidents()) == 1
    assert len(top_messages(slack)) == 1

    fresh = failing_every(250)  # 0.4% errors: a burn of 4, worth a ticket on its own
    while len(sim.incidents()) == 1:
        sim.tick(fresh, seconds=600)
        assert sim.clock.now() - T0 < 3 * DAY, "the fresh slow burn never ticketed"
    ticket = sim.incidents()[1]
    assert ticket.severity == "ticket" and ticket.slos == ("api-availability",)
    # PagerDuty heard of the outage (step 2 after 15 min) and its resolution; the
    # ticket, like every ticket, does not escalate to it.
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]


def test_dependents_of_a_failing_target_page_once_under_it(
        engine: Engine, fakes: tuple[FakeSlack, FakePagerDuty],
        request: pytest.FixtureRequest) -> None:
    slack, pagerduty = fakes
    http = {"type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"}
    targets = [{"name": "db", **http}] + [
        {"name": f"svc-{n}", **http, "depends_on": ["db"]} for n in "abc"]
    sim = Sim(engine, lifecycle_settings(slack, pagerduty, targets=targets, slos=[]),
              request)
    sim.probe(T0 - HOUR, T0, healthy)
    sim.tick(healthy)
    children = ["svc-a", "svc-b", "svc-c"]
    # The services notice first (3 failures each); the database has failed twice.
    sim.probe(sim.clock.now(), sim.clock.now() + 20, failing, ["db"])
    sim.tick(failing, targets=children)
    (incident,) = sim.incidents()
    assert incident.key == "target:db" and incident.target == "db"
    sim.tick(failing)  # now the database is down too
    (incident,) = sim.incidents()
    assert {m.key for m in incident.active_members} == {
        "target:db", "target:svc-a", "target:svc-b", "target:svc-c"}
    assert incident.title.startswith("db is down · ")
    assert len(top_messages(slack)) == 1  # one page, not four
    sim.tick(healthy)
    assert [i.status for i in sim.incidents()] == ["resolved"]


def test_a_target_is_down_only_when_min_regions_failing_regions_fail(
        engine: Engine, fakes: tuple[FakeSlack, FakePagerDuty],
        request: pytest.FixtureRequest) -> None:
    slack, pagerduty = fakes
    targets = [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/",
                "interval": "10s", "min_regions_failing": 2}]
    sim = Sim(engine, lifecycle_settings(slack, pagerduty, targets=targets, slos=[]),
              request)
    for region in ("eu", "us", "ap"):
        sim.probe(T0 - 600, T0, healthy, region=region)
    now = sim.clock.now()
    sim.probe(now, now + 60, failing, region="eu")  # one of three regions fails
    for region in ("us", "ap"):
        sim.probe(now, now + 60, healthy, region=region)
    sim.clock.advance(60)
    sim.evaluate()
    assert not sim.runtime.service.down.last["api"].down
    assert sim.incidents() == [] and top_messages(slack) == []
    now = sim.clock.now()
    sim.probe(now, now + 60, failing, region="eu")
    sim.probe(now, now + 60, failing, region="us")  # two of three: down
    sim.probe(now, now + 60, healthy, region="ap")
    sim.clock.advance(60)
    sim.evaluate()
    state = sim.runtime.service.down.last["api"]
    assert state.down and "in 2 of 3 regions (eu, us)" in state.reason
    (incident,) = sim.incidents()
    assert incident.title == "Target api is down" and len(top_messages(slack)) == 1
    now = sim.clock.now()
    sim.probe(now, now + 10, healthy, region="us")  # one region's first success
    sim.clock.advance(10)
    sim.evaluate()
    assert not sim.runtime.service.down.last["api"].down
    assert sim.incidents()[0].status == "resolved"


def test_dependents_group_under_a_down_target_not_under_a_stray_failure(
        engine: Engine) -> None:
    settings = make_settings(targets=[
        {"name": "db", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s"},
        {"name": "gateway", "type": "http", "url": "http://127.0.0.1:1/",
         "interval": "10s", "depends_on": ["db"]},
        {"name": "api", "type": "http", "url": "http://127.0.0.1:1/", "interval": "10s",
         "depends_on": ["gateway"]}], slos=[])
    write = ResultWriter(engine, settings.slos)
    detector = DownDetector(settings.targets)

    def results(target: str, *oks: bool, at: float) -> None:
        write([ProbeResult(target=target, started_at=at + 10 * i, ok=ok, latency=0.05)
               for i, ok in enumerate(oks)])

    results("db", True, True, False, at=T0)  # one stray failure
    results("gateway", True, True, True, at=T0)
    results("api", True, True, True, at=T0)
    states = {s.target: s for s in detector.evaluate(engine, T0 + 30)}
    assert states["db"].failing and not states["db"].down
    assert states["api"].under is None and states["gateway"].under is None
    results("api", False, False, False, at=T0 + 30)  # api down, gateway fine ...
    states = {s.target: s for s in detector.evaluate(engine, T0 + 60)}
    assert states["api"].down and states["api"].under is None  # ... its own outage
    results("db", False, False, False, at=T0 + 30)
    results("gateway", True, False, False, at=T0 + 30)  # db down; gateway failing
    states = {s.target: s for s in detector.evaluate(engine, T0 + 60)}
    # Down api groups under failing gateway, up the chain to down db.
    assert states["gateway"].under == "db" and states["api"].under == "db"
