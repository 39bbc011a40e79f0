"""Shared fixtures: databases (SQLite always, PostgreSQL when present) and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from monitor.config import Settings
from monitor.leadership import release_all
from monitor.storage.engine import make_engine, upgrade
from tests.fake_slack import FakeSlack
from tests.fake_webhook import FakeWebhook
from tests.servers import route_server

REQUIRE_SERVICES = os.environ.get("PRIMEWATCH_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("PRIMEWATCH_TEST_DATABASE_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ("latency_bins", "slo_rollups", "probe_results", "maintenance_windows", "alert_events",
          "incidents", "incident_events", "notifications", "incident_threads", "silences",
          "instances", "audit_log", "alembic_version")


@pytest.fixture(autouse=True)
def _release_leadership() -> Iterator[None]:
    """A runtime evaluated without `stop` keeps the PostgreSQL leader lock; release it
    so the next test's runtime can lead (and the connection is closed, not leaked)."""
    yield
    release_all()


def service_missing(reason: str) -> None:
    """Skip, or fail when CI demands every service (PRIMEWATCH_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PRIMEWATCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def drop_all(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}")
    drop_all(engine)
    yield engine
    drop_all(engine)
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty database of each supported kind."""
    name = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    engine: Engine = request.getfixturevalue(name)
    upgrade(engine)
    return engine


@pytest.fixture
def receivers() -> Iterator[tuple[FakeSlack, FakeWebhook]]:
    """Local Slack and webhook receivers on one loopback server (the kill -9 tests)."""
    with route_server() as server:
        yield FakeSlack(server), FakeWebhook(server)


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: one http target `api` and two SLOs on it, unless overridden."""
    data: dict[str, Any] = {
        "targets": [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/health",
                     "interval": "1s", "timeout": "500ms"}],
        "slos": [
            {"name": "api-availability", "target": "api", "sli": "availability",
             "objective": 99, "window": "1d"},
            {"name": "api-latency", "target": "api", "sli": "latency", "threshold": "100ms",
             "objective": 90, "window": "1d"},
        ],
    }
    data.update(overrides)
    return Settings.model_validate(data)


# The dashboard tests' fixtures (a populated site on loopback, a real Chromium).
from tests.dashboard_support import browser, site  # noqa: E402, F401
