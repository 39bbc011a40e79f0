"""Incidents, silences and Slack buttons over the real app and server, on SQLite."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select, update

from alerts.rules import ActiveAlert
from alerts.slack_actions import ACTION_IDS, ActionKind, sign
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import IncidentRow, NotificationRow
from tests.servers import serve_asgi

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WRITE, READ = "w-secret-token", "r-secret-token"
AUTH = {"Authorization": f"Bearer {WRITE}"}
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def settings(signing_secret: str | None = SECRET) -> Settings:
    slack: dict[str, Any] = {"name": "slack-oncall", "type": "slack", "token": "xoxb-test",
                             "channel": "#oncall", "api_url": "http://127.0.0.1:1/"}
    if signing_secret is not None:
        slack["signing_secret"] = signing_secret
    return Settings.model_validate({
        "server": {"tokens": [{"name": "oncall", "token": WRITE, "scope": "write"},
                              {"name": "viewer", "token": READ, "scope": "read"}]},
        "targets": [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/"}],
        "slos": [{"name": "api-up", "target": "api", "sli": "availability",
                  "objective": 99, "window": "1d"}],
        "alerting": {
            "policies": [{"name": "default", "steps": [
                {"after": "0m", "notify": ["hook", "slack-oncall"]}]}],
            "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/"},
                         slack]},
    })


def alert(slo: str) -> ActiveAlert:
    return ActiveAlert(key=f"slo:{slo}", kind="burn_rate", severity="page",
                       title=f"SLO {slo} is burning its error budget",
                       summary=f"{slo}: burn rate 20× over 1h", slo=slo, target=f"api-{slo}",
                       labels={"alertname": "burn_rate", "severity": "page", "slo": slo,
                               "target": f"api-{slo}"}, burn_rate=20.0)


@dataclass
class Api:
    client: httpx.Client
    runtime: Runtime
    clock: FakeClock
    ids: dict[str, int]  # incident id by SLO name

    @property
    def engine(self) -> Engine:
        return self.runtime.service.engine

    def incident(self, slo: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/incidents/{self.ids[slo]}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def serve(tmp_path: Path, config: Settings) -> Iterator[Api]:
    """The app on a migrated SQLite file with three open incidents (a, b, c; c newest)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    clock = FakeClock(T0 + 180)
    app = create_app(config, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    runtime: Runtime = app.state.runtime
    firing: list[ActiveAlert] = []
    for step, name in enumerate(["a", "b", "c"]):
        firing.append(alert(name))
        runtime.incidents.tick(firing, T0 + step * 60)
    with engine.connect() as connection:
        rows = connection.execute(select(IncidentRow.id, IncidentRow.slo))
        ids = {str(slo): id_ for id_, slo in rows}
    try:
        with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
            yield Api(client, runtime, clock, ids)
    finally:
        engine.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(tmp_path, settings()) as running:
        yield running


def notifications(engine: Engine, incident_id: int) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(NotificationRow.event, NotificationRow.channel)
                                  .where(NotificationRow.incident_id == incident_id)
                                  .order_by(NotificationRow.id))
        return [(event, channel) for event, channel in rows]


# -- listing and reading ----------------------------------------------------------------


def test_incidents_are_listed_newest_first_one_page_at_a_time(api: Api) -> None:
    body = api.client.get("/api/v1/incidents").json()
    assert [i["slo"] for i in body["items"]] == ["c", "b", "a"]
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    first = api.client.get("/api/v1/incidents", params={"limit": 2}).json()
    second = api.client.get("/api/v1/incidents", params={"limit": 2, "offset": 2}).json()
    assert [i["slo"] for i in first["items"] + second["items"]] == ["c", "b", "a"]
    assert first["total"] == second["total"] == 3
    assert first["items"][0]["opened_at_iso"] == "2026-01-01T00:02:00.000+00:00"


def test_incidents_are_filtered_by_status(api: Api) -> None:
    assert api.client.post(f"/api/v1/incidents/{api.ids['a']}/ack",
                           headers=AUTH).status_code == 200
    acked = api.client.get("/api/v1/incidents", params={"status": "acknowledged"}).json()
    assert [i["slo"] for i in acked["items"]] == ["a"] and acked["total"] == 1
    triggered = api.client.get("/api/v1/incidents", params={"status": "triggered"}).json()
    assert [i["slo"] for i in triggered["items"]] == ["c", "b"]
    resolved = api.client.get("/api/v1/incidents", params={"status": "resolved"}).json()
    assert resolved == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(("query", "location"), [
    ("status=open", "query.status"), ("limit=0", "query.limit"),
    ("limit=501", "query.limit"), ("limit=abc", "query.limit"),
    ("offset=-1", "query.offset")])
def test_bad_list_parameters_get_422_naming_the_parameter(api: Api, query: str,
                                                          location: str) -> None:
    response = api.client.get(f"/api/v1/incidents?{query}")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["status"] == 422
    assert [d["location"] for d in error["details"]] == [location]
    if query == "status=open":
        assert "'triggered', 'acknowledged' or 'resolved'" in error["details"][0]["message"]


def test_an_incident_comes_with_its_timeline(api: Api) -> None:
    body = api.incident("a")
    assert body["status"] == "triggered" and body["title"] == "SLO a is burning its error budget"
    assert body["postmortem_url"] is None  # not resolved: no draft yet
    assert body["incident_url"] == f"/api/v1/incidents/{api.ids['a']}"
    kinds = [e["kind"] for e in body["timeline"]]
    assert kinds[:2] == ["opened", "escalated"]
    opened = body["timeline"][0]
    assert opened["at"] == T0 and opened["at_iso"] == "2026-01-01T00:00:00.000+00:00"
    assert opened["data"]["severity"] == "page"
    assert "notified hook, slack-oncall" in body["timeline"][1]["text"]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/incidents/999", 404), ("/api/v1/incidents/999/postmortem", 404),
    ("/api/v1/incidents/abc", 422)])
def test_unknown_incidents_get_a_json_error(api: Api, path: str, status: int) -> None:
    response = api.client.get(path)
    assert response.status_code == status
    assert response.json()["error"]["status"] == status


# -- ack and resolve --------------------------------------------------------------------


def test_ack_stops_escalation_and_tells_the_channels(api: Api) -> None:
    incident_id = api.ids["b"]
    response = api.client.post(f"/api/v1/incidents/{incident_id}/ack", headers=AUTH,
                               json={"comment": "looking into it"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "oncall"
    assert body["next_escalation_at"] is None
    events = [(e["kind"], e["text"]) for e in body["timeline"]]
    assert ("acknowledged", "Acknowledged by oncall") in events
    assert events[-1] == ("comment", "oncall: looking into it")
    assert ("acknowledge", "hook") in notifications(api.engine, incident_id)
    again = api.client.post(f"/api/v1/incidents/{incident_id}/ack", headers=AUTH)
    assert again.status_code == 200 and again.json()["acknowledged_at"] == T0 + 180


def test_resolve_is_idempotent_and_a_resolved_incident_cannot_be_acked(api: Api) -> None:
    incident_id = api.ids["c"]
    first = api.client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=AUTH,
                            json={"comment": "rolled back"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "resolved" and body["resolved_by"] == "oncall"
    assert body["postmortem_url"] == f"/api/v1/incidents/{incident_id}/postmortem"
    assert ("resolved", "Resolved by oncall: rolled back") in [
        (e["kind"], e["text"]) for e in body["timeline"]]
    api.clock.advance(60)
    second = api.client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=AUTH)
    assert second.status_code == 200
    assert second.json()["resolved_at"] == body["resolved_at"]
    assert second.json()["timeline"] == body["timeline"]
    ack = api.client.post(f"/api/v1/incidents/{incident_id}/ack", headers=AUTH)
    assert ack.status_code == 409
    assert "already resolved" in ack.json()["error"]["message"]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer nope"}, 401),
    ({"Authorization": f"Bearer {READ}"}, 403)])
@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_writes_need_a_write_token_and_change_nothing_otherwise(
        api: Api, headers: dict[str, str], status: int, action: str) -> None:
    before = api.incident("a")
    response = api.client.post(f"/api/v1/incidents/{api.ids['a']}/{action}",
                               headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["status"] == status
    assert api.incident("a") == before


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_acting_on_an_unknown_incident_is_404(api: Api, action: str) -> None:
    response = api.client.post(f"/api/v1/incidents/999/{action}", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "incident '999' not found"


# -- post-mortem ------------------------------------------------------------------------


def resolve_without_draft(api: Api, slo: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Resolve while the draft writer is unavailable, so no draft is stored."""
    monkeypatch.setitem(sys.modules, "alerts.facts", None)
    incident_id = api.ids[slo]
    assert api.client.post(f"/api/v1/incidents/{incident_id}/resolve",
                           headers=AUTH).status_code == 200
    return incident_id


def test_the_postmortem_draft_is_markdown(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    incident_id = resolve_without_draft(api, "a", monkeypatch)
    with api.engine.begin() as connection:
        connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                           .values(postmortem="# Incident a\n\nNaïve café — 52m 5s\n"))
    response = api.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.text == "# Incident a\n\nNaïve café — 52m 5s\n"


def test_a_missing_draft_is_written_on_demand(api: Api,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    incident_id = resolve_without_draft(api, "a", monkeypatch)
    calls: list[tuple[int, float]] = []

    def write_postmortem(engine: Engine, _settings: Settings, incident: int,
                         now: float) -> str:
        calls.append((incident, now))
        text = f"# Draft for {incident}\n"
        with engine.begin() as connection:
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident)
                               .values(postmortem=text))
        return text

    facts = types.ModuleType("alerts.facts")
    facts.write_postmortem = write_postmortem  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alerts.facts", facts)
    response = api.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert response.status_code == 200 and response.text == f"# Draft for {incident_id}\n"
    assert calls == [(incident_id, T0 + 180)]
    assert api.client.get(f"/api/v1/incidents/{incident_id}/postmortem").status_code == 200
    assert len(calls) == 1  # stored: the second read does not write again


def test_no_draft_and_no_writer_is_404_and_open_incidents_have_none(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    incident_id = resolve_without_draft(api, "a", monkeypatch)
    missing = api.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert missing.status_code == 404
    assert "no post-mortem draft" in missing.json()["error"]["message"]
    still_open = api.client.get(f"/api/v1/incidents/{api.ids['b']}/postmortem")
    assert still_open.status_code == 409
    assert "written when it resolves" in still_open.json()["error"]["message"]


# -- silences ---------------------------------------------------------------------------

MATCH_D = [{"name": "slo", "value": "d"}]


def test_silences_are_created_listed_and_expired(api: Api) -> None:
    now = T0 + 180
    created = api.client.post("/api/v1/silences", headers=AUTH, json={
        "matchers": MATCH_D, "duration": "2h", "comment": "deploying d"})
    assert created.status_code == 201, created.text
    active = created.json()
    assert active["matchers"] == [{"name": "slo", "op": "=", "value": "d"}]
    assert (active["starts_at"], active["ends_at"]) == (now, now + 7200)
    assert active["created_by"] == "oncall" and active["state"] == "active"
    assert active["ends_at_iso"] == "2026-01-01T02:03:00.000+00:00"
    later = api.client.post("/api/v1/silences", headers=AUTH, json={
        "matchers": [{"name": "target", "op": "=~", "value": "api|web"}],
        "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-02T01:00:00+00:00"})
    assert later.status_code == 201 and later.json()["state"] == "pending"

    listed = api.client.get("/api/v1/silences").json()["items"]
    assert [s["id"] for s in listed] == [active["id"], later.json()["id"]]
    assert api.client.get(f"/api/v1/silences/{active['id']}").json() == active

    api.runtime.incidents.tick([alert("a"), alert("b"), alert("c"), alert("d")], now)
    assert "d" not in {i["slo"] for i in api.client.get("/api/v1/incidents").json()["items"]}

    expired = api.client.delete(f"/api/v1/silences/{active['id']}", headers=AUTH)
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired" and expired.json()["expired_by"] == "oncall"
    assert [s["id"] for s in api.client.get("/api/v1/silences").json()["items"]] == [
        later.json()["id"]]
    everything = api.client.get("/api/v1/silences", params={"include_expired": "true"})
    assert len(everything.json()["items"]) == 2


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/silences/999"), ("DELETE", "/api/v1/silences/999")])
def test_unknown_silences_are_404(api: Api, method: str, path: str) -> None:
    response = api.client.request(method, path, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "silence '999' not found"


def test_silence_writes_need_a_token(api: Api) -> None:
    assert api.client.post("/api/v1/silences",
                           json={"matchers": MATCH_D, "duration": "1h"}).status_code == 401
    assert api.client.get("/api/v1/silences").json()["items"] == []


@pytest.mark.parametrize(("body", "message"), [
    ({"matchers": [], "duration": "1h"}, "at least one matcher"),
    ({"matchers": [{"name": "slo", "op": "=~", "value": "("}], "duration": "1h"},
     "matchers[0]: bad regex '('"),
    ({"matchers": [{"name": "slo", "op": "~", "value": "d"}], "duration": "1h"},
     "matchers[0]: `op` must be one of"),
    ({"matchers": [{"name": "slo", "op": "!=", "value": "d"}], "duration": "1h"},
     "at least one matcher must require a non-empty value"),
    ({"matchers": MATCH_D, "starts_at": "2026-01-02T02:00:00Z",
      "ends_at": "2026-01-02T01:00:00Z"}, "`ends_at` must be after `starts_at`"),
    ({"matchers": MATCH_D, "ends_at": "2025-12-31T00:00:00Z"}, "must be after `starts_at`"),
    ({"matchers": MATCH_D, "starts_at": "2025-12-30T00:00:00Z",
      "ends_at": "2025-12-31T00:00:00Z"}, "already be over"),
    ({"matchers": MATCH_D}, "either `ends_at` or `duration`"),
    ({"matchers": MATCH_D, "duration": "1h", "ends_at": "2026-01-02T01:00:00Z"},
     "either `ends_at` or `duration`"),
    ({"matchers": MATCH_D, "duration": "soon"}, "invalid duration 'soon'"),
    ({"matchers": MATCH_D, "duration": "0s"}, "`duration` must be positive"),
    ({"matchers": MATCH_D, "ends_at": "2026-01-02T01:00:00"}, "need a time zone"),
    ({"matchers": MATCH_D, "duration": "1h", "author": "x"}, "Extra inputs"),
])
def test_invalid_silences_get_422_naming_the_problem(api: Api, body: dict[str, Any],
                                                     message: str) -> None:
    response = api.client.post("/api/v1/silences", headers=AUTH, json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    texts = [error["message"]] + [d["message"] for d in error.get("details", [])]
    assert any(message in text for text in texts), texts
    assert api.client.get("/api/v1/silences",
                          params={"include_expired": "true"}).json()["items"] == []


# -- Slack buttons ----------------------------------------------------------------------


def press(kind: ActionKind, incident_id: int | str) -> bytes:
    """A form-encoded `block_actions` body, as Slack sends for a button press."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "alice", "team_id": "T0"},
        "container": {"type": "message", "message_ts": "1767225600.000100",
                      "channel_id": "C0123"},
        "channel": {"id": "C0123", "name": "oncall"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"type": "button", "action_id": ACTION_IDS[kind],
                     "value": str(incident_id), "action_ts": "1767225700.000200"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def post_signed(api: Api, body: bytes, *, secret: str = SECRET,
                at: float | None = None) -> httpx.Response:
    stamp = api.clock.now() if at is None else at
    return api.client.post("/slack/actions", content=body,
                           headers={**FORM, **sign(secret, body, stamp)})


def test_a_signed_ack_button_acknowledges_and_queues_the_slack_update(api: Api) -> None:
    incident_id = api.ids["a"]
    response = post_signed(api, press("ack", incident_id))
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral",
                               "text": f"Acknowledged incident #{incident_id}"}
    body = api.incident("a")
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "alice (Slack)"
    assert body["timeline"][-1]["text"] == "Acknowledged by alice (Slack)"
    assert ("acknowledge", "slack-oncall") in notifications(api.engine, incident_id)


def test_a_signed_resolve_button_resolves(api: Api) -> None:
    response = post_signed(api, press("resolve", api.ids["b"]))
    assert response.json()["text"] == f"Resolved incident #{api.ids['b']}"
    assert api.incident("b")["resolved_by"] == "alice (Slack)"
    again = post_signed(api, press("ack", api.ids["b"]))
    assert again.status_code == 200  # Slack shows the text; nothing else to do
    assert again.json()["text"].startswith(f"Could not ack incident #{api.ids['b']}")


def test_the_silence_button_silences_the_slo_for_an_hour(api: Api) -> None:
    response = post_signed(api, press("silence", api.ids["c"]))
    assert response.status_code == 200
    assert response.json()["text"].startswith(f"Silenced incident #{api.ids['c']} for 1h")
    [silence] = api.client.get("/api/v1/silences").json()["items"]
    assert silence["matchers"] == [{"name": "slo", "op": "=", "value": "c"}]
    assert silence["created_by"] == "alice (Slack)"
    assert silence["ends_at"] - silence["starts_at"] == 3600
    assert api.incident("c")["timeline"][-1]["kind"] == "silenced"


def forged(api: Api) -> httpx.Response:
    return post_signed(api, press("ack", api.ids["a"]), secret="not-our-secret")


def stale(api: Api) -> httpx.Response:
    return post_signed(api, press("ack", api.ids["a"]), at=api.clock.now() - 301)


def tampered(api: Api) -> httpx.Response:
    signed = sign(SECRET, press("ack", api.ids["b"]), api.clock.now())
    return api.client.post("/slack/actions", content=press("ack", api.ids["a"]),
                           headers={**FORM, **signed})


def unsigned(api: Api) -> httpx.Response:
    return api.client.post("/slack/actions", content=press("ack", api.ids["a"]),
                           headers=FORM)


@pytest.mark.parametrize("attempt", [forged, stale, tampered, unsigned])
def test_unverified_button_presses_are_401_and_change_nothing(api: Api, attempt: Any) -> None:
    before = api.incident("a")
    queued = notifications(api.engine, api.ids["a"])
    response = attempt(api)
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
    assert api.incident("a") == before
    assert notifications(api.engine, api.ids["a"]) == queued


def test_a_press_four_minutes_old_still_counts(api: Api) -> None:
    response = post_signed(api, press("ack", api.ids["a"]), at=api.clock.now() - 240)
    assert response.status_code == 200
    assert api.incident("a")["status"] == "acknowledged"


def test_an_unknown_incident_or_action_gets_an_ephemeral_explanation(api: Api) -> None:
    response = post_signed(api, press("ack", 999))
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral",
                               "text": "There is no incident #999 (it may have been deleted)."}
    foreign = urlencode({"payload": json.dumps({"type": "view_submission"})}).encode()
    assert post_signed(api, foreign).json()["text"] == "primewatch does not handle this action."


def test_an_oversized_body_is_refused_before_it_is_parsed(api: Api) -> None:
    response = post_signed(api, b"payload=" + b"x" * (1 << 20))
    assert response.status_code == 413


def test_slack_actions_without_a_signing_secret_are_not_served(tmp_path: Path) -> None:
    with serve(tmp_path, settings(signing_secret=None)) as api:
        response = post_signed(api, press("ack", api.ids["a"]))
        assert response.status_code == 404
        assert "Slack interactivity is not configured" in response.json()["error"]["message"]
        assert api.incident("a")["status"] == "triggered"


def test_resolving_writes_the_draft_the_route_serves(api: Api) -> None:
    incident_id = api.ids["b"]
    api.client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=AUTH)
    response = api.client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "SLO b is burning its error budget" in response.text
