"""The sql probe against real SQLite, PostgreSQL and MariaDB: outcomes and error classes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from probes import HttpClientPool, ProbeContext
from probes.base import ErrorClass, ProbeResult
from probes.sql import KIND, SqlProbe, SqlTarget, engine_url
from tests.conftest import service_missing
from tests.servers import free_port

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
SECRET = "s3cret-pw-" + uuid.uuid4().hex[:6]


def make_probe(url: str, **fields: Any) -> SqlProbe:
    config = SqlTarget.model_validate({"name": "db", "type": "sql", "url": url,
                                       "timeout": "3s", **fields})
    probe = KIND.build(config, ProbeContext(HttpClientPool(), region="test"))
    assert isinstance(probe, SqlProbe)
    return probe


def run_probe(url: str, **fields: Any) -> ProbeResult:
    return run_timed(make_probe(url, **fields))[0]


def run_timed(probe: SqlProbe, runs: int = 1) -> tuple[ProbeResult, float]:
    """Run the probe `runs` times (returning the last result and its time), then close it."""

    async def go() -> tuple[ProbeResult, float]:
        try:
            for _ in range(runs):
                t0 = time.monotonic()
                result = await probe.run(time.time())
                elapsed = time.monotonic() - t0
            return result, elapsed
        finally:
            await probe.aclose()

    return asyncio.run(go())


def reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    engine = create_engine(engine_url(url), poolclass=NullPool,
                           connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return type(exc).__name__
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "probe.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO items (name) VALUES ('a')")
    connection.close()
    return f"sqlite:///{path}"


@pytest.fixture
def postgresql_url() -> str:
    problem = reachable(POSTGRES_URL)
    if problem:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {problem}")
    return POSTGRES_URL


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    problem = reachable(MARIADB_URL)
    if problem:  # CI does not promise MariaDB: a plain skip, never a failure
        pytest.skip(f"MariaDB not reachable at {MARIADB_URL}: {problem}")
    # An InnoDB table so information_schema has a size to report for the schema.
    table = f"primewatch_probe_{uuid.uuid4().hex[:8]}"
    engine = create_engine(MARIADB_URL, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id INT PRIMARY KEY) ENGINE=InnoDB"))
    try:
        yield MARIADB_URL
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        "mariadb"])
def db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def test_select_one_is_timed(db_url: str) -> None:
    result = run_probe(db_url)
    assert result.ok, result.error
    assert result.region == "test"
    assert 0 < result.values["query_seconds"] <= result.latency < 3
    assert result.values["query_value"] == 1
    assert "database_size_bytes" not in result.values


def test_database_size_is_reported(db_url: str) -> None:
    result = run_probe(db_url, database_size=True)
    assert result.ok, result.error
    assert result.values["database_size_bytes"] > 0


@pytest.mark.parametrize("expected", [1, "1", 1.0])
def test_expected_value_matches_across_types(db_url: str, expected: object) -> None:
    result = run_probe(db_url, query="SELECT 1", expect={"value": expected})
    assert result.ok, result.error


def test_expected_value_mismatch_is_an_assertion(db_url: str) -> None:
    result = run_probe(db_url, query="SELECT 'ready'", expect={"value": "done"})
    assert result.error_class == ErrorClass.ASSERTION
    assert "'ready'" in (result.error or "") and "'done'" in (result.error or "")


def test_no_rows_with_an_expectation_is_an_assertion(sqlite_url: str) -> None:
    result = run_probe(sqlite_url, query="SELECT name FROM items WHERE id < 0",
                       expect={"value": "a"})
    assert result.error_class == ErrorClass.ASSERTION
    assert "no rows" in (result.error or "")


@pytest.mark.parametrize("query", ["SELEC 1", "SELECT * FROM no_such_table_here"])
def test_bad_sql_is_a_query_error(db_url: str, query: str) -> None:
    result = run_probe(db_url, query=query)
    assert not result.ok
    assert result.error_class == ErrorClass.QUERY, result.error
    assert "[SQL:" not in (result.error or "")  # the driver's words, not SQLAlchemy's dump


def test_query_runs_verbatim_without_placeholder_rewriting(db_url: str) -> None:
    result = run_probe(db_url, query="SELECT '100%'", expect={"value": "100%"})
    assert result.ok, result.error


def test_probe_never_changes_the_database(sqlite_url: str) -> None:
    result = run_probe(sqlite_url, query="DELETE FROM items")
    assert result.ok, result.error
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        assert connection.execute("SELECT count(*) FROM items").fetchone() == (1,)
    connection.close()


@pytest.mark.parametrize(("backend", "query"), [
    pytest.param("postgresql", "SELECT pg_sleep(2)", marks=pytest.mark.postgres),
    ("mariadb", "SELECT SLEEP(2)"),
])
def test_slow_query_times_out_within_the_deadline(request: pytest.FixtureRequest,
                                                  backend: str, query: str) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    probe = make_probe(url, query=query, timeout="500ms")
    result, elapsed = run_timed(probe)
    assert result.error_class == ErrorClass.TIMEOUT, result.error
    assert elapsed < 1.0


def test_blocked_query_times_out_then_the_same_probe_recovers(db_url: str) -> None:
    """A lock held elsewhere stalls the probe's query; the next run must not inherit it."""
    table = f"pw_lock_{uuid.uuid4().hex[:8]}"
    engine = create_engine(engine_url(db_url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id INT)"))
    probe = make_probe(db_url, query=f"SELECT count(*) FROM {table}", timeout="500ms")
    backend = engine.dialect.name

    async def go() -> tuple[tuple[ProbeResult, float], ProbeResult]:
        try:
            with engine.connect() as holder:
                raw = holder.connection.dbapi_connection
                assert raw is not None
                if backend == "sqlite":
                    raw.isolation_level = None
                    holder.exec_driver_sql("BEGIN EXCLUSIVE")
                elif backend == "postgresql":
                    holder.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                else:
                    holder.exec_driver_sql(f"LOCK TABLES {table} WRITE")
                t0 = time.monotonic()
                blocked = await probe.run(time.time())
                elapsed = time.monotonic() - t0
                holder.exec_driver_sql("UNLOCK TABLES" if backend != "sqlite"
                                       and backend != "postgresql" else "ROLLBACK")
            await asyncio.sleep(0.2)  # the next interval, in miniature
            return (blocked, elapsed), await probe.run(time.time())
        finally:
            await probe.aclose()

    try:
        (blocked, elapsed), after = asyncio.run(go())
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {table}"))
        engine.dispose()
    assert blocked.error_class == ErrorClass.TIMEOUT, blocked.error
    assert elapsed < 1.0
    assert after.ok, after.error
    assert after.values["query_value"] == 0


def test_missing_sqlite_file_fails_without_creating_it_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    probe = make_probe(f"sqlite:///{path}")

    async def go() -> tuple[ProbeResult, ProbeResult]:
        try:
            missing = await probe.run(time.time())
            sqlite3.connect(path).close()
            return missing, await probe.run(time.time())
        finally:
            await probe.aclose()

    missing, found = asyncio.run(go())
    assert missing.error_class == ErrorClass.CONNECTION, missing.error
    assert found.ok, found.error


@pytest.mark.parametrize(("backend", "url", "expected", "words"), [
    pytest.param("postgresql", "postgresql://nobody_here@127.0.0.1:5432/test",
                 ErrorClass.AUTH, 'role "nobody_here" does not exist',
                 marks=pytest.mark.postgres),
    pytest.param("postgresql", "postgresql://postgres@127.0.0.1:5432/no_such_db",
                 ErrorClass.CONNECTION, 'database "no_such_db" does not exist',
                 marks=pytest.mark.postgres),
    ("mariadb", f"mysql://root:{SECRET}@127.0.0.1:3306/test", ErrorClass.AUTH,
     "Access denied"),
    ("mariadb", "mariadb://root@127.0.0.1:3306/no_such_db", ErrorClass.CONNECTION,
     "Unknown database"),
])
def test_rejected_sessions(request: pytest.FixtureRequest, backend: str, url: str,
                           expected: str, words: str) -> None:
    request.getfixturevalue(f"{backend}_url")
    result = run_probe(url)
    assert result.error_class == expected, result.error
    assert words in (result.error or "")
    assert SECRET not in (result.error or "")


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_refused_port_and_credentials_never_shown(scheme: str) -> None:
    url = f"{scheme}://admin:{SECRET}@127.0.0.1:{free_port()}/test"
    result = run_probe(url)
    assert result.error_class == ErrorClass.REFUSED, result.error
    config = SqlTarget(name="db", url=url)
    assert SECRET not in config.display_url() and "admin" not in config.display_url()
    assert SECRET not in (result.error or "")
    assert config.display_url().endswith("127.0.0.1:" + url.rsplit(":", 1)[1])


def test_unresolvable_host_is_dns() -> None:
    result = run_probe("postgresql://postgres@no-such-host.invalid:5432/test")
    assert result.error_class == ErrorClass.DNS, result.error


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql://u:p@db/x", "postgresql+psycopg"),
    ("postgres://u@db/x", "postgresql+psycopg"),
    ("mysql://u@db/x", "mysql+pymysql"),
    ("mariadb://u@db/x", "mariadb+pymysql"),
    ("sqlite:///x.db", "sqlite+pysqlite"),
])
def test_urls_get_an_explicit_driver(url: str, driver: str) -> None:
    assert engine_url(url).drivername == driver


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql+psycopg2://u@db/x", "unsupported database driver"),
    ("oracle://u@db/x", "unsupported database driver"),
    (f"not a url {SECRET}", "invalid database URL"),
])
def test_config_rejects_unusable_urls(url: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message) as caught:
        SqlTarget(name="db", url=url)
    assert SECRET not in str(caught.value.errors()[0]["msg"])
