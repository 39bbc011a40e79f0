"""Every write route, found from the app itself, refuses the unauthorised and changes nothing.

The routes are enumerated from the running app (every method but GET/HEAD/OPTIONS), so
a write route added later is covered without touching this file. Each is called with no
token, a wrong token and a read-only token: the answer must be 401 or 403, every table
but the audit log must be exactly as before, and each attempt must leave one audit entry.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, MetaData, select

from alerts.rules import ActiveAlert
from alerts.silences import create_silence, parse_matchers
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.maintenance import Window, store
from monitor.metrics import Metrics
from tests.conftest import make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0
WRITE, READ = "matrix-write-token", "matrix-read-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CREDENTIALS: dict[str, dict[str, str]] = {
    "no token": {},
    "wrong token": {"Authorization": "Bearer not-a-configured-token"},
    "read-only token": {"Authorization": f"Bearer {READ}"},
}


@dataclass
class Matrix:
    app: FastAPI
    engine: Engine
    client: httpx.Client
    ids: dict[str, int]  # path parameter name -> an existing row's id


def matrix_settings() -> Any:
    return make_settings(
        server={"tokens": [{"name": "oncall", "token": WRITE, "scope": "write"},
                           {"name": "viewer", "token": READ, "scope": "read"}],
                # the matrix makes many refused attempts from one address on purpose
                "failed_auth": {"max_failures": 0}},
        alerting={"policies": [{"name": "default", "steps": [{"notify": ["slack"]}]}],
                  "channels": [{"name": "slack", "type": "slack", "token": "xoxb-matrix",
                                "channel": "#oncall", "api_url": "http://127.0.0.1:1/",
                                "signing_secret": "matrix-signing-secret"}]})


@pytest.fixture
def matrix(engine: Engine) -> Iterator[Matrix]:
    clock = FakeClock(T0)
    app = create_app(matrix_settings(), engine, clock=clock,
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    runtime = app.state.runtime
    alert = ActiveAlert(key="slo:api-availability", kind="burn_rate", severity="page",
                        title="SLO api-availability is burning", summary="burn rate 20x",
                        slo="api-availability", target="api",
                        labels={"severity": "page", "slo": "api-availability"},
                        burn_rate=20.0)
    runtime.incidents.tick([alert], T0)
    silence = create_silence(engine, parse_matchers([{"name": "slo", "value": "x"}]),
                             starts_at=T0, ends_at=T0 + 3600, created_by="setup",
                             comment="", now=T0)
    window_id = store(engine, Window("deploy", T0, T0 + 3600, comment="setup",
                                     author="setup", created_at=T0))
    with engine.connect() as connection:
        incident_id = connection.exec_driver_sql("SELECT id FROM incidents").scalar_one()
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield Matrix(app, engine, client, {"incident_id": int(incident_id),
                                           "silence_id": silence.id, "window_id": window_id})


def write_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route that may change something."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        for method in (route.methods or set()) - SAFE_METHODS:
            found.add((method, str(route.path)))
    return sorted(found)


def concrete(path: str, ids: dict[str, int]) -> str:
    """The template with each `{param}` filled: an existing row's id where one is known."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(ids.get(m.group(1), 1)), path)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit log, in a stable order."""
    metadata = MetaData()
    metadata.reflect(engine)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for name, table in sorted(metadata.tables.items()):
            if name == "audit_log":
                continue
            rows = connection.execute(select(table)).all()
            tables[name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def audit_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(
            "SELECT actor, method, path, status FROM audit_log ORDER BY id")]


def test_the_app_has_the_write_routes_we_know_of(matrix: Matrix) -> None:
    # Enumeration sanity: if this finds nothing, the matrix below would prove nothing.
    routes = write_routes(matrix.app)
    assert ("POST", "/api/v1/incidents/{incident_id}/ack") in routes
    assert ("DELETE", "/api/v1/silences/{silence_id}") in routes
    assert ("POST", "/slack/actions") in routes


@pytest.mark.parametrize("who", list(CREDENTIALS))
def test_every_write_route_refuses_and_changes_nothing(matrix: Matrix, who: str) -> None:
    before = dump(matrix.engine)
    for method, template in write_routes(matrix.app):
        path = concrete(template, matrix.ids)
        audited = len(audit_rows(matrix.engine))
        response = matrix.client.request(method, path, json={}, headers=CREDENTIALS[who])
        assert response.status_code in (401, 403), (method, path, who, response.text)
        assert response.json()["error"]["status"] == response.status_code
        assert dump(matrix.engine) == before, f"{method} {path} with {who} changed data"
        entries = audit_rows(matrix.engine)[audited:]
        actor = "viewer" if who == "read-only token" and path.startswith("/api/") \
            else "anonymous"
        assert entries == [(actor, method, path, response.status_code)], (method, path)


def test_the_write_token_does_change_things(matrix: Matrix) -> None:
    # The control: the same comparison notices a write that is allowed.
    before = dump(matrix.engine)
    path = f"/api/v1/incidents/{matrix.ids['incident_id']}/ack"
    response = matrix.client.post(path, json={},
                                  headers={"Authorization": f"Bearer {WRITE}"})
    assert response.status_code == 200, response.text
    assert dump(matrix.engine) != before
    assert audit_rows(matrix.engine)[-1] == ("oncall", "POST", path, 200)
