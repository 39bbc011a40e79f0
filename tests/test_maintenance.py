"""Maintenance windows and corrections: excluded at ingest, suppressing alerts, created
over the API with write tokens, re-deriving the past."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.ingest import ResultWriter
from monitor.maintenance import MaintenanceCalendar
from monitor.metrics import Metrics
from monitor.slo_engine import SloEngine
from monitor.storage import repository
from probes.base import ProbeResult
from tests.servers import serve_asgi

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
WRITE, READ = "w-secret-token", "r-secret-token"


def settings(**extra: Any) -> Settings:
    return Settings.model_validate({
        "server": {"tokens": [{"name": "oncall", "token": WRITE, "scope": "write"},
                              {"name": "viewer", "token": READ, "scope": "read"}]},
        "targets": [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/"},
                    {"name": "web", "type": "http", "url": "http://127.0.0.1:1/"}],
        "slos": [{"name": "api-up", "target": "api", "sli": "availability",
                  "objective": 99, "window": "1d", "alerts": {"min_events": 1}},
                 {"name": "web-up", "target": "web", "sli": "availability",
                  "objective": 99, "window": "1d"}],
        **extra})


def outage(target: str, start: float, minutes: int) -> list[ProbeResult]:
    return [ProbeResult(target=target, started_at=start + i * 60, ok=False, latency=0.1)
            for i in range(minutes)]


def healthy(target: str, start: float, minutes: int) -> list[ProbeResult]:
    return [ProbeResult(target=target, started_at=start + i * 60, ok=True, latency=0.1)
            for i in range(minutes)]


def test_results_inside_a_config_window_are_kept_but_not_counted(engine: Engine) -> None:
    config = settings(maintenance=[{"name": "upgrade", "start": "2026-01-01T01:00:00Z",
                                    "end": "2026-01-01T02:00:00Z", "targets": ["api"]}])
    calendar = MaintenanceCalendar.from_config(config.maintenance)
    writer = ResultWriter(engine, config.slos, calendar)
    writer(healthy("api", T0, 60) + outage("api", T0 + 3600, 60)
           + healthy("web", T0, 60) + outage("web", T0 + 3600, 60))
    assert repository.count_results(engine) == 240  # nothing lost
    statuses = {s.name: s for s in SloEngine(engine).evaluate(config.slos, T0 + 7200)}
    assert (statuses["api-up"].good, statuses["api-up"].total) == (60, 60)
    assert (statuses["web-up"].good, statuses["web-up"].total) == (60, 120)


def test_alerts_are_suppressed_inside_a_window(engine: Engine) -> None:
    config = settings(maintenance=[{"name": "upgrade", "start": "2026-01-01T00:00:00Z",
                                    "end": "2026-01-01T00:30:00Z", "slos": ["api-up"]}])
    calendar = MaintenanceCalendar.from_config(config.maintenance)
    ResultWriter(engine, config.slos)(outage("api", T0, 40))  # counted (no calendar)
    evaluator = SloEngine(engine, in_maintenance=lambda s, now: calendar.covers(
        s.target, s.name, now))
    [inside] = [s for s in evaluator.evaluate(config.slos, T0 + 600, alerts=True)
                if s.name == "api-up"]
    assert inside.in_maintenance and inside.alert.suppressed
    assert inside.alert.severity is None
    [after] = [s for s in evaluator.evaluate(config.slos, T0 + 2400, alerts=True)
               if s.name == "api-up"]
    assert after.alert.severity == "page"
    assert evaluator.last_decisions["api-up"].transition == "fired"


@pytest.fixture
def api(engine: Engine) -> Iterator[tuple[httpx.Client, Engine]]:
    config = settings()
    ResultWriter(engine, config.slos)(healthy("api", T0, 60) + outage("api", T0 + 3600, 60))
    app = create_app(config, engine, clock=FakeClock(T0 + 7200),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client, engine


WINDOW = {"name": "bad-deploy", "start": "2026-01-01T01:00:00Z",
          "end": "2026-01-01T02:00:00Z", "targets": ["api"], "comment": "known bad deploy"}


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic x"}, 401),
    ({"Authorization": f"Bearer {READ}"}, 403)])
def test_writes_need_a_write_token_and_change_nothing_otherwise(
        api: tuple[httpx.Client, Engine], headers: dict[str, str], status: int) -> None:
    client, _ = api
    response = client.post("/api/v1/maintenance", json=WINDOW, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["status"] == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/maintenance").json()["items"] == []


def test_a_correction_in_the_past_rederives_the_slo(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    auth = {"Authorization": f"Bearer {WRITE}"}
    before = client.get("/api/v1/slos/api-up").json()
    assert (before["good"], before["total"]) == (60, 120)
    created = client.post("/api/v1/maintenance", json=WINDOW, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["author"] == "oncall" and body["source"] == "api"
    assert body["rederived_days"] == 1
    after = client.get("/api/v1/slos/api-up").json()
    assert (after["good"], after["total"]) == (60, 60)
    assert repository.count_results(engine) == 120  # the raw results stay
    listed = client.get("/api/v1/maintenance").json()["items"]
    assert [w["name"] for w in listed] == ["bad-deploy"]
    deleted = client.delete(f"/api/v1/maintenance/{body['id']}", headers=auth)
    assert deleted.status_code == 200
    restored = client.get("/api/v1/slos/api-up").json()
    assert (restored["good"], restored["total"]) == (60, 120)


@pytest.mark.parametrize(("change", "status"), [
    ({"end": "2026-01-01T00:00:00Z"}, 422),
    ({"start": "2026-01-01T01:00:00"}, 422),
    ({"targets": ["nope"]}, 404),
    ({"surprise": 1}, 422)])
def test_bad_windows_are_refused(api: tuple[httpx.Client, Engine], change: dict[str, Any],
                                 status: int) -> None:
    client, _ = api
    response = client.post("/api/v1/maintenance", json={**WINDOW, **change},
                           headers={"Authorization": f"Bearer {WRITE}"})
    assert response.status_code == status
    assert client.get("/api/v1/maintenance").json()["items"] == []


def test_writes_are_refused_when_no_token_is_configured(engine: Engine) -> None:
    app = create_app(Settings.model_validate({}), engine,
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        response = client.post("/api/v1/maintenance", json=WINDOW,
                               headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert "no API token" in response.json()["error"]["message"]
