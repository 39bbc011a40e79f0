"""The JSON API, health endpoints and /metrics, on a real database, background work off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    settings = make_settings()
    writer = ResultWriter(engine, settings.slos)
    writer([ProbeResult(target="api", started_at=T0 + i * 10, ok=i % 10 != 0, latency=0.05,
                        status_code=200 if i % 10 else 500,
                        error_class=None if i % 10 else "http_status")
            for i in range(1, 151)])
    return create_app(settings, engine, clock=FakeClock(T0 + 1510),
                      metrics=Metrics(CollectorRegistry()), run_background=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["storage"] == "ok"


def test_readiness_fails_when_storage_is_unreachable() -> None:
    dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    app = create_app(make_settings(), dead, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["storage"].startswith("unreachable")
        slos = client.get("/api/v1/slos")
        assert slos.status_code == 503
        assert "storage unavailable" in slos.json()["error"]["message"]


def test_targets_show_the_newest_result(client: httpx.Client) -> None:
    items = client.get("/api/v1/targets").json()["items"]
    assert [t["name"] for t in items] == ["api"]
    last = items[0]["last_result"]
    assert last["started_at"].startswith("2026-01-01T00:25:00")
    assert last["ok"] is False and last["status_code"] == 500  # i = 150 is a failure
    assert last["error_class"] == "http_status"
    assert items[0]["interval"] == "1s"


def test_results_are_paginated_newest_first(client: httpx.Client) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 40}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/targets/api/results", params=params).json()
        seen += [item["started_at"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 150
    assert seen == sorted(seen, reverse=True)


def test_results_since_filters_by_time(client: httpx.Client) -> None:
    body = client.get("/api/v1/targets/api/results",
                      params={"since": "2026-01-01T00:24:00Z"}).json()
    assert [i["started_at"][:19] for i in body["items"]] == [
        "2026-01-01T00:25:00", "2026-01-01T00:24:50", "2026-01-01T00:24:40",
        "2026-01-01T00:24:30", "2026-01-01T00:24:20", "2026-01-01T00:24:10",
        "2026-01-01T00:24:00"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "cursor=-1",
                                   "since=yesterday"])
def test_bad_parameters_get_422_with_a_json_error(client: httpx.Client, query: str) -> None:
    response = client.get(f"/api/v1/targets/api/results?{query}")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["status"] == 422
    assert error["details"] and error["details"][0]["location"].startswith("query.")


@pytest.mark.parametrize("path", ["/api/v1/targets/nope/results", "/api/v1/slos/nope",
                                  "/api/v1/nothing-here"])
def test_unknown_names_get_404_with_a_json_error(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


def test_slo_status_matches_the_stored_events(client: httpx.Client) -> None:
    slos = {s["name"]: s for s in client.get("/api/v1/slos").json()["items"]}
    availability = slos["api-availability"]
    assert (availability["good"], availability["total"]) == (135, 150)
    assert availability["sli"] == pytest.approx(0.9)
    # 10% errors against a 99% objective, but in a young SLO: the day's budget is 1% of
    # the 86,400 probes its 1 s schedule runs in the 1-day window, and 15 are spent.
    assert availability["state"] == "ok"
    assert availability["error_budget_remaining"] == pytest.approx(1 - 15 / 864)
    budget = availability["error_budget"]
    assert (budget["expected_events"], budget["estimated"]) == (86400, False)
    assert budget["allowed_bad"] == pytest.approx(864) and budget["spent_bad"] == 15
    assert 0 < budget["window_coverage"] < 0.1 and budget["collecting_since"] is not None
    assert availability["burn_rates"]["1h"] == pytest.approx(10.0)
    detail = client.get("/api/v1/slos/api-latency").json()
    assert detail["percentiles"]["p95"] == pytest.approx(0.05, rel=0.02)
    assert detail["window"] == "1d"


def test_metrics_expose_probe_and_slo_series(app: FastAPI, client: httpx.Client) -> None:
    asyncio.run(app.state.runtime.evaluate_once())
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    api = client.get("/api/v1/slos/api-availability").json()
    assert samples[("primewatch_slo_sli_ratio", (("slo", "api-availability"),))] \
        == pytest.approx(api["sli"])
    assert samples[("primewatch_slo_error_budget_remaining_ratio",
                    (("slo", "api-availability"),))] == pytest.approx(
                        api["error_budget_remaining"])
    assert samples[("primewatch_slo_burn_rate", (("slo", "api-availability"),
                                                 ("window", "1h")))] == pytest.approx(10.0)
    assert samples[("primewatch_slo_objective_ratio", (("slo", "api-latency"),))] == 0.9
    assert any(name == "primewatch_build_info" for name, _ in samples)
    assert samples[("primewatch_slo_no_data", (("slo", "api-latency"),))] == 0.0
    # 10% errors for the SLO's first 25 minutes burn at 10, but they are 25 minutes'
    # worth of the 6h window's budget, not 6 hours': like a mature SLO, nothing fires.
    assert samples[("primewatch_slo_alert_firing", (("severity", "page"),
                                                    ("slo", "api-availability")))] == 0.0
    # Then every probe of the last 5 minutes fails: the 1h/5m page tier fires.
    ResultWriter(app.state.runtime.service.engine, app.state.runtime.settings.slos)([
        ProbeResult(target="api", started_at=T0 + 1215 + i * 5, ok=False, latency=0.05,
                    status_code=500, error_class="http_status") for i in range(59)])
    asyncio.run(app.state.runtime.evaluate_once())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(client.get("/metrics").text)
               for s in family.samples}
    assert samples[("primewatch_slo_alert_firing", (("severity", "page"),
                                                    ("slo", "api-availability")))] == 1.0
    assert samples[("primewatch_slo_alert_firing", (("severity", "ticket"),
                                                    ("slo", "api-availability")))] == 0.0
    alert = client.get("/api/v1/slos/api-availability").json()["alert"]
    assert alert["severity"] == "page" and "over 1h and" in alert["reason"]


def test_openapi_lists_the_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/api/v1/targets", "/api/v1/targets/{name}/results",
            "/api/v1/slos", "/api/v1/slos/{name}"} <= set(paths)
