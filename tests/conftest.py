"""Shared fixtures: databases (SQLite always, PostgreSQL when present) and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from monitor.config import Settings
from monitor.leadership import release_all
from monitor.storage.engine import make_engine, upgrade
from tests.fake_slack import FakeSlack
from tests.fake_webhook import FakeWebhook
from tests.servers import route_server

REQUIRE_SERVICES = os.environ.get("PRIMEWATCH_REQUIRE_SERVICES") == "1"
SHARED_POSTGRES_URL = os.environ.get("PRIMEWATCH_TEST_DATABASE_URL",
                                     "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PRIVATE_PREFIX = "pw_test_"
POSTGRES_URL = make_url(SHARED_POSTGRES_URL).set(
    database=f"{PRIVATE_PREFIX}{os.getpid()}").render_as_string(hide_password=False)
"""Each pytest process gets its own database, created at start and dropped at the end,
so parallel workers (and two developers' runs) never drop each other's tables."""
TABLES = ("latency_bins", "slo_rollups", "probe_results", "maintenance_windows", "alert_events",
          "incidents", "incident_events", "notifications", "incident_threads", "silences",
          "instances", "audit_log", "incident_members", "handled_slos", "alembic_version")


def _admin(url: str) -> Engine:
    """AUTOCOMMIT on the server's `postgres` database: CREATE/DROP DATABASE need both."""
    admin_url = make_url(url).set(database="postgres", drivername="postgresql+psycopg")
    return create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1,
                         connect_args={"connect_timeout": 3})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pytest_configure(config: pytest.Config) -> None:
    """Create this process's PostgreSQL database, and drop those of runs that died."""
    admin = _admin(POSTGRES_URL)
    try:
        with admin.connect() as connection:
            names = connection.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
                {"prefix": f"{PRIVATE_PREFIX}%"}).scalars().all()
            for name in names:
                pid = name.removeprefix(PRIVATE_PREFIX)
                if pid.isdigit() and not _pid_alive(int(pid)):
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            database = make_url(POSTGRES_URL).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{database}"'))
    except Exception:  # no PostgreSQL here: its tests skip (or fail under CI) by themselves
        pass
    finally:
        admin.dispose()


def pytest_unconfigure(config: pytest.Config) -> None:
    admin = _admin(POSTGRES_URL)
    try:
        with admin.connect() as connection:
            database = make_url(POSTGRES_URL).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    except Exception:
        pass
    finally:
        admin.dispose()


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
