"""Alertmanager's webhook as an incident source, over the real app and server on SQLite:
routing, deduplication, resolution with a post-mortem, auth, validation, and the
evaluation tick leaving external incidents alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from monitor.api_alertmanager import AlertmanagerAlert, to_active
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import IncidentRow, NotificationRow
from tests.servers import serve_asgi

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WRITE, READ = "am-write-token", "am-read-token"
AUTH = {"Authorization": f"Bearer {WRITE}"}
URL = "/api/v1/alertmanager"
FINGERPRINT = "5f1b2c3d4e5f6a7b"


def settings(**server: Any) -> Settings:
    """Pages for team=platform go to `platform`; tickets to `tickets`; the rest `default`.
    Channels point at a closed port: the outbox does not run, only queues. `server`
    adds to the server section (limits)."""
    hook = "http://127.0.0.1:1/"
    return Settings.model_validate({
        "server": {"tokens": [{"name": "alertmanager", "token": WRITE, "scope": "write"},
                              {"name": "viewer", "token": READ, "scope": "read"}],
                   **server},
        "targets": [{"name": "api", "type": "http", "url": hook}],
        "slos": [{"name": "api-up", "target": "api", "sli": "availability",
                  "objective": 99, "window": "1d"}],
        "alerting": {
            "policies": [
                {"name": "platform", "match": {"team": "platform"}, "severities": ["page"],
                 "steps": [{"after": "0m", "notify": ["platform-hook"]},
                           {"after": "15m", "notify": ["manager-hook"]}]},
                {"name": "tickets", "severities": ["ticket"],
                 "steps": [{"notify": ["ticket-hook"]}]},
                {"name": "default", "steps": [{"notify": ["manager-hook"]}]}],
            "channels": [{"name": name, "type": "webhook", "url": hook}
                         for name in ("platform-hook", "manager-hook", "ticket-hook")]},
    })


def am_alert(status: str = "firing", *, fingerprint: str = FINGERPRINT,
             severity: str = "critical", **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager 0.27 sends it (firing ones carry the zero endsAt)."""
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", "severity": severity, "team": "platform",
                   "slo": "api-up", "target": "api", "instance": "10.0.0.7:8080", **labels},
        "annotations": {"summary": "API 5xx ratio above 5%",
                        "description": "5.3% of requests to api failed over 5m",
                        "runbook_url": "https://runbooks.example/api-5xx"},
        "startsAt": "2026-01-01T00:01:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T00:20:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aerrors%3Aratio5m",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A version 4 notification; `commonAnnotations` is sent by Alertmanager too."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {"version": "4", "receiver": "primewatch", "status": status,
            "alerts": list(alerts), "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {"alertname": "HighErrorRate"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0}


@dataclass
class Api:
    client: httpx.Client
    runtime: Runtime
    clock: FakeClock

    @property
    def engine(self) -> Engine:
        return self.runtime.service.engine

    def send(self, body: dict[str, Any], headers: dict[str, str] | None = None
             ) -> httpx.Response:
        return self.client.post(URL, json=body, headers=AUTH if headers is None else headers)

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/incidents/{incident_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def notifications(self, incident_id: int) -> list[tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(NotificationRow.event, NotificationRow.channel)
                .where(NotificationRow.incident_id == incident_id).order_by(NotificationRow.id))
            return [(event, channel) for event, channel in rows]

    def incident_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(IncidentRow))
                       .scalar_one())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    clock = FakeClock(T0 + 120)
    app = create_app(settings(), engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    try:
        with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
            yield Api(client, app.state.runtime, clock)
    finally:
        engine.dispose()


def receipt(*incidents: int, accepted: int = 1) -> dict[str, Any]:
    """The answer to a post whose alerts were all stored."""
    return {"incidents": list(incidents), "accepted": accepted, "rejected": 0,
            "rejections": []}


def opened(api: Api, body: dict[str, Any]) -> int:
    response = api.send(body)
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["incidents"]
    assert len(ids) == 1
    return ids[0]


# -- firing ---------------------------------------------------------------------------


def test_a_firing_alert_opens_a_routed_incident_and_queues_its_first_step(api: Api) -> None:
    incident = api.incident(opened(api, webhook(am_alert())))
    assert incident["key"] == f"external:{FINGERPRINT}"
    assert (incident["status"], incident["severity"], incident["kind"]) == (
        "triggered", "page", "alertmanager")
    assert incident["title"] == "API 5xx ratio above 5%"
    assert incident["summary"] == "5.3% of requests to api failed over 5m"
    assert (incident["slo"], incident["target"]) == ("api-up", "api")
    assert incident["labels"] == {
        "alertname": "HighErrorRate", "severity": "page", "alertmanager_severity": "critical",
        "team": "platform", "slo": "api-up", "target": "api", "instance": "10.0.0.7:8080"}
    assert incident["policy"] == "platform"  # routed by the team label and the severity
    assert incident["impact_started_at"] == T0 + 60  # startsAt, not when it reached us
    assert incident["opened_at"] == T0 + 120
    assert api.notifications(incident["id"]) == [("trigger", "platform-hook")]
    assert [e["kind"] for e in incident["timeline"]] == ["opened", "escalated"]


def test_the_next_step_escalates_on_primewatchs_schedule(api: Api) -> None:
    incident_id = opened(api, webhook(am_alert()))
    api.runtime.incidents.escalate_due(T0 + 120 + 15 * 60)
    assert api.notifications(incident_id) == [("trigger", "platform-hook"),
                                              ("escalate", "manager-hook")]


def test_a_warning_is_a_ticket_routed_by_severity(api: Api) -> None:
    incident = api.incident(opened(api, webhook(am_alert(severity="warning"))))
    assert (incident["severity"], incident["policy"]) == ("ticket", "tickets")
    assert incident["labels"]["alertmanager_severity"] == "warning"
    assert api.notifications(incident["id"]) == [("trigger", "ticket-hook")]


def test_the_same_alert_again_updates_the_open_incident(api: Api) -> None:
    """Alertmanager repeats the group every `repeat_interval`, and an HA pair sends each
    notification twice: one incident, one page, no "severity raised" noise."""
    first = opened(api, webhook(am_alert()))
    api.clock.advance(300)
    for _ in range(3):
        assert api.send(webhook(am_alert())).json() == receipt(first)
    assert api.incident_count() == 1
    assert api.notifications(first) == [("trigger", "platform-hook")]
    assert [e["kind"] for e in api.incident(first)["timeline"]] == ["opened", "escalated"]


def test_without_a_fingerprint_the_labels_identify_the_alert(api: Api) -> None:
    body = webhook(am_alert(fingerprint=""))
    first = opened(api, body)
    assert opened(api, body) == first
    other = opened(api, webhook(am_alert(fingerprint="", instance="10.0.0.8:8080")))
    assert other != first
    key = api.incident(first)["key"]
    assert key.startswith("external:") and len(key) == len("external:") + 16


def test_one_body_with_a_fingerprint_twice_opens_one_incident(api: Api) -> None:
    response = api.send(webhook(am_alert(), am_alert()))
    assert response.status_code == 200 and len(response.json()["incidents"]) == 1
    assert api.incident_count() == 1


def test_fields_from_newer_alertmanagers_and_long_prose_are_accepted(api: Api) -> None:
    """A 422 here loses a page: unknown fields are ignored, long annotations kept short."""
    alert = {**am_alert(), "silencedBy": [], "annotations": {"description": "x" * 10_000}}
    body = {**webhook(alert), "commonAnnotations": {"runbook": "r"}, "newField": {"a": 1}}
    incident = api.incident(opened(api, body))
    assert len(incident["summary"]) == 2000
    assert incident["title"] == "HighErrorRate"

@pytest.mark.parametrize(("raw", "severity"), [
    ("critical", "page"), ("page", "page"), ("CRITICAL", "page"), ("warning", "ticket"),
    ("ticket", "ticket"), ("info", "ticket"), ("none", "ticket"), ("", "ticket")])
def test_severity_label_maps_to_page_or_ticket(raw: str, severity: str) -> None:
    alert = AlertmanagerAlert.model_validate(am_alert(severity=raw))
    assert to_active(alert).severity == severity


def test_title_and_summary_fall_back_to_the_alert_name() -> None:
    data = am_alert()
    data["annotations"] = {}
    active = to_active(AlertmanagerAlert.model_validate(data))
    assert (active.title, active.summary) == ("HighErrorRate", "HighErrorRate")


# -- resolving ------------------------------------------------------------------------


def test_a_resolved_alert_resolves_its_incident_with_a_postmortem(api: Api) -> None:
    incident_id = opened(api, webhook(am_alert()))
    api.clock.advance(18 * 60)
    response = api.send(webhook(am_alert("resolved")))
    assert response.json() == receipt(incident_id)
    incident = api.incident(incident_id)
    assert (incident["status"], incident["resolved_by"]) == ("resolved", "alertmanager")
    assert incident["timeline"][-2]["text"] == "Alertmanager reported the alert resolved"
    assert api.notifications(incident_id)[-1] == ("resolve", "platform-hook")
    draft = api.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert draft.status_code == 200
    assert draft.headers["content-type"].startswith("text/markdown")
    assert "API 5xx ratio above 5%" in draft.text
    assert api.send(webhook(am_alert("resolved"))).json() == receipt()


def test_a_resolved_alert_nobody_saw_firing_changes_nothing(api: Api) -> None:
    assert api.send(webhook(am_alert("resolved"))).json() == receipt()
    assert api.incident_count() == 0


def test_the_evaluation_tick_does_not_resolve_an_external_incident(api: Api) -> None:
    incident_id = opened(api, webhook(am_alert()))
    api.clock.advance(600)
    api.runtime.incidents.tick([], api.clock.now())
    api.runtime._evaluate_and_publish()  # the whole tick: SLOs, down, triggers, incidents
    incident = api.incident(incident_id)
    assert incident["status"] == "triggered" and incident["resolved_at"] is None


# -- refusals ---------------------------------------------------------------------------


def test_without_a_write_token_nothing_is_opened(api: Api) -> None:
    body = webhook(am_alert())
    missing = api.send(body, headers={})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert api.send(body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.send(body, headers={"Authorization": f"Bearer {READ}"}).status_code == 403
    assert api.incident_count() == 0


def test_garbage_is_a_422(api: Api) -> None:
    response = api.client.post(URL, content=b"{not json", headers={
        **AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "invalid request"


@pytest.mark.parametrize(("change", "location"), [
    ({"version": "3"}, "body.version"),
    ({"alerts": "everything"}, "body.alerts"),
    ({"status": "pending"}, "body.status"),
    ({"groupLabels": {"alertname": 5}}, "body.groupLabels.alertname"),
])
def test_an_invalid_envelope_gets_422_naming_the_field(api: Api, change: dict[str, Any],
                                                       location: str) -> None:
    response = api.send({**webhook(am_alert()), **change})
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert location in [d["location"] for d in details], details
    assert api.incident_count() == 0


@pytest.mark.parametrize(("alert", "reason"), [
    ({"status": "firing", "labels": {}}, "startsAt: Field required"),
    ({**am_alert(), "status": "flapping"}, "status: Input should be 'firing' or 'resolved'"),
    ({**am_alert(), "fingerprint": "../../x y"}, "fingerprint: String should match pattern"),
    ({**am_alert(), "labels": {"severity": 5}}, "labels.severity: Input should be a valid"),
    ("not an alert", "alert: Input should be a valid dictionary"),
])
def test_an_invalid_alert_is_refused_alone_naming_the_field(
        api: Api, alert: Any, reason: str) -> None:
    """Alertmanager never retries a 4xx: a 422 for the whole post would lose its other
    alerts for good. The bad one is listed by position; the answer is still a 200."""
    response = api.send(webhook(am_alert(fingerprint="before"), alert,
                                am_alert(fingerprint="after")))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    [refused] = answer["rejections"]
    assert refused["index"] == 1 and refused["reason"].startswith(reason), refused
    assert api.incident_count() == 2
