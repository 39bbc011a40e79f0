"""The write audit over the real app: who did what, when, from where; and GET /api/v1/audit.

Runs on SQLite and PostgreSQL (the `engine` fixture); time is a FakeClock, so the
recorded `at` is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from tests.conftest import make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0
WRITE, READ = "audit-write-token", "audit-read-token"
AS_WRITER = {"Authorization": f"Bearer {WRITE}"}
AS_READER = {"Authorization": f"Bearer {READ}"}
SILENCE = {"matchers": [{"name": "slo", "value": "api-availability"}], "duration": "1h",
           "comment": "deploy"}


@dataclass
class Audited:
    client: httpx.Client
    clock: FakeClock
    engine: Engine

    def log(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/audit", params=params, headers=AS_READER)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
def audited(engine: Engine) -> Iterator[Audited]:
    clock = FakeClock(T0)
    settings = make_settings(
        server={"tokens": [{"name": "oncall", "token": WRITE, "scope": "write"},
                           {"name": "viewer", "token": READ, "scope": "read"}]},
        dashboard={"auth": "token"})
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield Audited(client, clock, engine)


def test_a_write_is_recorded_with_who_what_when_and_where(audited: Audited) -> None:
    created = audited.client.post("/api/v1/silences", json=SILENCE, headers=AS_WRITER)
    assert created.status_code == 201, created.text
    (entry,) = audited.log()
    assert entry["actor"] == "oncall"
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/api/v1/silences",
                                                                 201)
    assert entry["at"] == T0 and entry["at_iso"] == "2026-01-01T00:00:00.000+00:00"
    assert entry["client"] == "127.0.0.1"
    assert entry["summary"] == "create"  # the route that ran

    silence_id = created.json()["id"]
    audited.clock.advance(60)
    assert audited.client.delete(f"/api/v1/silences/{silence_id}",
                                 headers=AS_WRITER).status_code == 200
    newest = audited.log()[0]
    assert (newest["method"], newest["status"], newest["at"]) == ("DELETE", 200, T0 + 60)
    assert newest["summary"] == f"expire(silence_id={silence_id})"


def test_refused_writes_are_recorded_with_the_reason(audited: Audited) -> None:
    audited.client.post("/api/v1/silences", json=SILENCE)
    audited.client.post("/api/v1/silences", json=SILENCE,
                        headers={"Authorization": "Bearer wrong-guess"})
    audited.client.post("/api/v1/silences", json=SILENCE, headers=AS_READER)
    read_only, wrong, missing = audited.log()
    assert (missing["actor"], missing["status"]) == ("anonymous", 401)
    assert "needs `Authorization: Bearer <token>`" in missing["summary"]
    assert (wrong["actor"], wrong["status"], wrong["summary"]) == (
        "anonymous", 401, "create: invalid token")
    assert (read_only["actor"], read_only["status"]) == ("viewer", 403)
    assert "read-only" in read_only["summary"]
    assert "wrong-guess" not in str(audited.log())


def test_reads_are_not_audited_and_queries_are_not_kept(audited: Audited) -> None:
    audited.client.get("/api/v1/silences", headers=AS_READER)
    audited.client.get("/api/v1/targets", headers=AS_READER)
    assert audited.log() == []
    # A token in the query string (a misconfigured client) never reaches the log.
    audited.client.post("/api/v1/silences?token=query-secret", json=SILENCE,
                        headers=AS_WRITER)
    (entry,) = audited.log()
    assert entry["path"] == "/api/v1/silences"
    assert "query-secret" not in str(entry)


def test_the_log_is_newest_first_with_limit_and_since(audited: Audited) -> None:
    for _ in range(5):
        audited.client.post("/api/v1/silences", json=SILENCE, headers=AS_WRITER)
        audited.clock.advance(10)
    entries = audited.log()
    assert [e["at"] for e in entries] == [T0 + 40, T0 + 30, T0 + 20, T0 + 10, T0]
    assert [e["at"] for e in audited.log(limit=2)] == [T0 + 40, T0 + 30]
    assert [e["at"] for e in audited.log(since="2026-01-01T00:00:25Z")] == [T0 + 40, T0 + 30]
    assert audited.client.get("/api/v1/audit", params={"limit": 0},
                              headers=AS_READER).status_code == 422


def test_the_log_is_a_read_needing_a_token_when_reads_do(audited: Audited) -> None:
    assert audited.client.get("/api/v1/audit").status_code == 401
    assert audited.client.get("/api/v1/audit", headers=AS_READER).status_code == 200


def test_a_failing_audit_write_is_logged_and_the_write_still_succeeds(
        audited: Audited, caplog: pytest.LogCaptureFixture) -> None:
    with audited.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_log"))
    with caplog.at_level(logging.ERROR, logger="monitor.audit"):
        created = audited.client.post("/api/v1/silences", json=SILENCE, headers=AS_WRITER)
    assert created.status_code == 201, created.text
    listed = audited.client.get("/api/v1/silences", headers=AS_READER).json()["items"]
    assert [s["id"] for s in listed] == [created.json()["id"]]
    (record,) = [r for r in caplog.records if r.name == "monitor.audit"]
    assert "could not record the audit entry for POST /api/v1/silences (201, by oncall)" \
        in record.getMessage()
    assert WRITE not in record.getMessage()
