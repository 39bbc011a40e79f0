"""Schemathesis fuzzes every operation of the app's own /openapi.json, as CI runs it.

No response may be a 5xx, and every status code, content type and body must be one the
schema documents. The app runs for real (uvicorn on loopback, migrated SQLite) over a
day of results, SLO rollups, an open and a resolved incident, a silence and maintenance
windows, so reads return real rows. Three passes share that server, writes first: with
the write token (writes get past auth and store what the fuzzer sends, which the later
passes then have to read back), with the read token (writes answer 403) and with no
credentials (401 everywhere under /api/v1).

Schemathesis runs as its CLI (`schemathesis run`), the stable interface CI uses; its
pytest plugin cannot take a schema from a fixture under pytest 9.2. Bounded and
reproducible: deterministic generation (no seed, no example database), a few dozen
examples per operation, one worker; under 40 s on two cores.

Fuzzing finds a regression only with some luck, so what it found is pinned by plain
requests (`FOUND`); and since a response model silently drops a field it lacks, the
models are checked against the dicts the API builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import select

from alerts.rules import ActiveAlert
from alerts.silences import create_silence, list_silences, parse_matchers
from alerts.store import list_incidents
from monitor.api import _result_json, phases_json, slo_json
from monitor.api_incidents import incident_json, silence_json
from monitor.api_maintenance import window_json
from monitor.api_schemas import (
    IncidentView,
    MaintenanceWindowView,
    PhasesView,
    ProbeResultView,
    SilenceView,
    SloView,
)
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.ingest import ResultWriter
from monitor.maintenance import Window, load_stored, store
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import IncidentRow
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T0 + 86400
WRITE, READ = "fuzz-write-token", "fuzz-read-token"
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
PASSES = {  # Authorization header, phases, examples per operation
    "write-token": (f"Bearer {WRITE}", "coverage,fuzzing", 50),
    # Reads as above, so a few random requests suffice: writes answer 403, and with no
    # credentials everything under /api/v1/ answers 401, whatever the input.
    "read-token": (f"Bearer {READ}", "fuzzing", 10),
    "anonymous": (None, "fuzzing", 10),
}


def fuzz_settings() -> Settings:
    """Two targets, three SLOs, a phase with a trigger, a config maintenance window,
    read and write tokens, Slack buttons; API reads need a token, as in production.
    The request rate limit is off: the fuzzer is faster than any client should be."""
    return make_settings(
        targets=[{"name": "api", "type": "http", "url": "http://127.0.0.1:1/health"},
                 {"name": "web", "type": "http", "url": "http://127.0.0.1:1/"}],
        slos=[{"name": "api-availability", "target": "api", "sli": "availability",
               "objective": 99.9, "window": "1d"},
              {"name": "api-latency", "target": "api", "sli": "latency",
               "threshold": "200ms", "objective": 95, "window": "1d"},
              {"name": "web-availability", "target": "web", "sli": "availability",
               "objective": 99.5, "window": "1d"}],
        phases=[{"name": "launch", "title": "Launch", "slos": ["api-availability"]}],
        triggers=[{"name": "slow-api", "target": "api", "stat": "p95", "above": "500ms",
                   "window": "1h", "phase": "launch"}],
        maintenance=[{"name": "db-upgrade", "start": "2026-01-01T03:00:00Z",
                      "end": "2026-01-01T04:00:00Z", "targets": ["web"]}],
        server={"tokens": [{"name": "oncall", "token": WRITE, "scope": "write"},
                           {"name": "viewer", "token": READ, "scope": "read"}],
                "rate_limit": {"requests_per_second": 0}},
        dashboard={"auth": "token"},
        alerting={"policies": [{"name": "default",
                                "steps": [{"after": "0m", "notify": ["hook"]}]}],
                  "channels": [{"name": "hook", "type": "webhook",
                                "url": "http://127.0.0.1:9/"},
                               {"name": "slack", "type": "slack",
                                "webhook_url": "http://127.0.0.1:9/",
                                "signing_secret": "fuzz-signing-secret"}]},
    )


def alert(slo: str, target: str) -> ActiveAlert:
    return ActiveAlert(key=f"slo:{slo}", kind="burn_rate", severity="page",
                       title=f"SLO {slo} is burning its error budget",
                       summary=f"{slo}: burn rate 20x over 1h", slo=slo, target=target,
                       labels={"alertname": "burn_rate", "severity": "page", "slo": slo,
                               "target": target}, burn_rate=20.0, since=NOW - 900)


def seed(runtime: Runtime) -> None:
    """A day of results every five minutes (a bad hour on api), evaluated once; one
    incident open and one resolved (with its post-mortem); a silence; an API window."""
    engine = runtime.service.engine
    results = []
    for t in range(int(T0), int(NOW), 300):
        bad = T0 + 6 * 3600 <= t < T0 + 7 * 3600
        results.append(ProbeResult(target="api", started_at=t, ok=not bad,
                                   latency=0.9 if bad else 0.05, status_code=503 if bad
                                   else 200, error_class="http_status" if bad else None))
        results.append(ProbeResult(target="web", started_at=t + 7, ok=True, latency=0.3,
                                   status_code=200))
    ResultWriter(engine, runtime.settings.slos)(results)
    runtime._evaluate_and_publish()
    open_alert, fixed_alert = alert("api-availability", "api"), alert("web-availability", "web")
    runtime.incidents.tick([open_alert, fixed_alert], NOW - 600)
    with engine.connect() as connection:
        fixed = connection.execute(select(IncidentRow.id)
                                   .where(IncidentRow.slo == fixed_alert.slo)).scalar_one()
    runtime.incidents.resolve(fixed, "oncall", NOW - 200, reason="fixed")
    create_silence(engine, parse_matchers([{"name": "target", "value": "web"}]),
                   starts_at=NOW - 60, ends_at=NOW + 3600, created_by="oncall",
                   comment="noisy", now=NOW - 60)
    store(engine, Window("deploy", NOW + 3600, NOW + 7200, frozenset({"api"}), frozenset(),
                         "planned", "oncall", created_at=NOW - 60))
    runtime.service.calendar.replace_stored(load_stored(engine))


@dataclass
class Served:
    url: str
    runtime: Runtime


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The seeded app on loopback, shared by the module's tests in order: the fields
    check sees the seeded rows, then the write pass stores what the fuzzer sends and
    the read and anonymous passes read it back."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'pw.db'}")
    upgrade(engine)
    app = create_app(fuzz_settings(), engine, clock=FakeClock(NOW),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    runtime: Runtime = app.state.runtime
    seed(runtime)
    try:
        with serve_asgi(app) as url:
            yield Served(url, runtime)
    finally:
        runtime.outbox.close()
        engine.dispose()


def schemathesis_run(url: str, folder: Path, authorization: str | None, phases: str,
                     max_examples: int) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` against `url`'s /openapi.json; its report is on stdout."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
               "--checks", ",".join(CHECKS), "--phases", phases,
               "--max-examples", str(max_examples), "--generation-deterministic",
               "--workers", "1", "--request-timeout", "10", "--no-color"]
    if authorization is not None:
        command += ["--header", f"Authorization: {authorization}"]
    # A fresh working folder, so no schemathesis.toml is picked up; no proxy for loopback.
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=100, check=False)


def round_trips(model: type[BaseModel], data: dict[str, Any]) -> bool:
    """Whether `model` keeps every field of `data` and adds none, at any depth."""
    return model.model_validate(data).model_dump(mode="json") == json.loads(json.dumps(data))


def test_response_models_keep_every_field_the_api_builds(served: Served) -> None:
    """A field added to a result, SLO status, incident, silence or window must be added
    to its response model too, or the API would silently drop it."""
    runtime = served.runtime
    engine = runtime.service.engine
    results = runtime.service.target_results("api", since=None, before_id=None, limit=5)
    assert results and all(round_trips(ProbeResultView, _result_json(r)) for r in results)
    statuses = runtime.service.slo_statuses()
    assert statuses and all(round_trips(SloView, slo_json(s)) for s in statuses)
    assert round_trips(PhasesView, phases_json(runtime.service.phases(),
                                               runtime.service.trigger_statuses()))
    incidents, _ = list_incidents(engine, status=None, limit=10, offset=0)
    assert {i.status for i in incidents} >= {"triggered", "resolved"}
    assert all(round_trips(IncidentView, incident_json(runtime.settings, i))
               for i in incidents)
    silences = list_silences(engine, NOW, include_expired=True)
    assert silences and all(round_trips(SilenceView, silence_json(s, NOW)) for s in silences)
    windows = runtime.service.calendar.windows()
    assert {w.author for w in windows} >= {"config", "oncall"}
    assert all(round_trips(MaintenanceWindowView, window_json(w)) for w in windows)


def test_every_operation_documents_the_errors_middleware_and_validation_answer(
        served: Served) -> None:
    schema = httpx.get(f"{served.url}/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(schema)  # FastAPI's {"detail"} shape
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"413", "429"} | ({"401"} if path.startswith("/api/v1/") and
                                         method == "get" else set())
            assert expected <= set(responses), (method, path)
            for status in expected | ({"422"} & set(responses)):
                assert responses[status]["content"]["application/json"]["schema"] == \
                    error_body, (method, path, status)


HUGE = 2**63  # one past BIGINT: SQLite's driver raised OverflowError on it
ONE_MATCHER = [{"name": "target", "value": "api"}]
FOUND = {  # what answered 500 before (and for bodies, first stored a row no read could
    # render, so the list answered 500 from then on); each must now be a 422
    "incident id": ("GET", f"/api/v1/incidents/{HUGE}", None),
    "postmortem id": ("GET", f"/api/v1/incidents/{HUGE}/postmortem", None),
    "silence id": ("GET", f"/api/v1/silences/{HUGE}", None),
    "offset": ("GET", f"/api/v1/incidents?offset={HUGE}", None),
    "cursor": ("GET", f"/api/v1/targets/api/results?cursor={HUGE}", None),
    "window in year 0": ("POST", "/api/v1/maintenance", {
        "name": "x", "start": "0001-01-01T00:00:00+05:00",
        "end": "0001-01-02T00:00:00+05:00"}),
    "silence past 9999": ("POST", "/api/v1/silences", {
        "matchers": ONE_MATCHER, "starts_at": "9999-12-31T00:00:00Z", "duration": "2d"}),
    "huge duration": ("POST", "/api/v1/silences", {"matchers": ONE_MATCHER,
                                                   "duration": 1e308}),
    "NaN duration": ("POST", "/api/v1/silences",  # Python's JSON parser takes NaN
                     '{"matchers": [{"name": "target", "value": "api"}], "duration": NaN}'),
}


@pytest.mark.parametrize(("method", "path", "body"), FOUND.values(), ids=FOUND.keys())
def test_what_the_fuzz_found_is_refused_with_422(served: Served, method: str, path: str,
                                                  body: dict[str, Any] | str | None) -> None:
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {WRITE}"}
                      ) as client:
        if isinstance(body, str):
            response = client.request(method, path, content=body,
                                      headers={"Content-Type": "application/json"})
        else:
            response = client.request(method, path, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["status"] == 422
        for listing in ("/api/v1/maintenance", "/api/v1/silences?include_expired=true"):
            assert client.get(listing).status_code == 200


def test_an_alertmanager_start_outside_1970_to_9999_counts_as_unknown(served: Served) -> None:
    """Go's zero time (or a broken clock) as `startsAt`: the incident opens, with its
    impact starting when it opened, instead of a time no page could render."""
    alert = {"status": "firing", "labels": {"alertname": "ZeroTime"}, "annotations": {},
             "startsAt": "0001-01-01T00:00:00Z", "fingerprint": "zero-time"}
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {WRITE}"}
                      ) as client:
        sent = client.post("/api/v1/alertmanager", json={
            "version": "4", "status": "firing", "alerts": [alert], "groupLabels": {},
            "commonLabels": {}})
        assert sent.status_code == 200, sent.text
        [incident_id] = sent.json()["incidents"]
        incident = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert incident["impact_started_at"] == incident["opened_at"] == NOW


@pytest.mark.parametrize(("authorization", "phases", "max_examples"), PASSES.values(),
                         ids=PASSES.keys())
def test_every_response_is_documented_and_none_is_a_server_error(
        served: Served, tmp_path: Path, authorization: str | None, phases: str,
        max_examples: int) -> None:
    run = schemathesis_run(served.url, tmp_path, authorization, phases, max_examples)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[report.find("FAILURES"):][:20_000] or report
    assert "Tested: " in report  # it ran operations, not only loaded the schema
