"""The `sql` probe kind: one query against PostgreSQL, MySQL/MariaDB or SQLite, timed.

The drivers block, so each probe owns a one-thread executor: a query that overruns the
deadline finishes (or hits its driver timeout) in the background while the probe has
already reported `timeout`, and it cannot starve other probes or the default executor.
The next run queues behind it, so one target never holds more than one session.
Server-side limits keep that background work short: PostgreSQL gets `statement_timeout`,
pymysql a socket `read_timeout`, SQLite a busy `timeout`.

The query runs verbatim on a raw driver cursor (no `%` or `:name` rewriting) inside a
transaction that is rolled back, so a probe never changes the database.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeGuard
from urllib.parse import quote

from pydantic import Field, field_validator
from sqlalchemy import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool

from probes.base import (
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.urls import redact_url

log = logging.getLogger(__name__)

# Accepted drivernames → (driver used, module it needs). Others are refused at load time:
# timeouts and `database_size` are per backend, so an unknown driver could not honour them.
_DRIVERS: dict[str, tuple[str, str]] = {
    "postgresql": ("postgresql+psycopg", "psycopg"),
    "postgres": ("postgresql+psycopg", "psycopg"),
    "postgresql+psycopg": ("postgresql+psycopg", "psycopg"),
    "mysql": ("mysql+pymysql", "pymysql"),
    "mysql+pymysql": ("mysql+pymysql", "pymysql"),
    "mariadb": ("mariadb+pymysql", "pymysql"),
    "mariadb+pymysql": ("mariadb+pymysql", "pymysql"),
    "sqlite": ("sqlite+pysqlite", "sqlite3"),
    "sqlite+pysqlite": ("sqlite+pysqlite", "sqlite3"),
}

_SIZE_QUERIES = {
    "postgresql": "SELECT pg_database_size(current_database())",
    "mysql": "SELECT SUM(data_length + index_length) FROM information_schema.tables "
             "WHERE table_schema = DATABASE()",
    "sqlite": "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
}

# MySQL/MariaDB error numbers, by what they mean to a monitor.
_MYSQL_AUTH = {1044, 1045, 1698, 1227, 1251}
_MYSQL_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_MYSQL_UNAVAILABLE = {1040, 1203}  # too many connections


class SqlExpect(StrictModel):
    """What a good answer looks like: the first column of the first row equals `value`."""

    value: Any = None


class SqlTarget(TargetConfig):
    """A database reached with a SQLAlchemy URL and checked with one query."""

    type: Literal["sql"] = "sql"
    url: str = Field(repr=False)  # may hold a password; display_url() is the safe view
    query: str = Field(default="SELECT 1", min_length=1)
    expect: SqlExpect = Field(default_factory=SqlExpect)
    database_size: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        engine_url(value)
        return value

    def display_url(self) -> str:
        return _redact(self.url)

    def signals(self) -> Signals:
        return Signals(values=frozenset({
            "query_seconds", "query_value", *(["database_size_bytes"] if self.database_size
                                               else [])}))


def engine_url(url: str) -> URL:
    """The URL with its driver made explicit (psycopg 3, pymysql); ValueError if unusable."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The text is not echoed: an unparseable URL may still hold a password.
        raise ValueError("invalid database URL: expected e.g. "
                         "postgresql://user@host/db, mysql://..., sqlite:///path") from None
    if parsed.drivername not in _DRIVERS:
        known = ", ".join(sorted(_DRIVERS))
        raise ValueError(f"unsupported database driver {parsed.drivername!r}; use one of {known}")
    driver, module = _DRIVERS[parsed.drivername]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{parsed.drivername} targets need the {module!r} package installed")
    parsed = parsed.set(drivername=driver)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not database.startswith("file:"):
        # Open read-write but never create: a missing file is an outage, not a new database.
        path = quote(os.path.abspath(database))
        parsed = parsed.set(database=f"file:{path}",
                            query={**parsed.query, "mode": "rw", "uri": "true"})
    return parsed


def _redact(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:
        return "<unparseable URL>"


@dataclass(slots=True)
class _Measurement:
    latency: float
    query_seconds: float
    failure: tuple[str, str] | None = None
    values: dict[str, float] = field(default_factory=dict)


class SqlProbe:
    """Runs one SqlTarget on its own engine (one pooled connection) and worker thread."""

    def __init__(self, config: SqlTarget, *, region: str) -> None:
        self.config = config
        self.region = region
        self._url = engine_url(config.url)
        self._backend = self._url.get_backend_name()
        self._password = self._url.password
        self._engine: Engine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"sql-probe-{config.name}")

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.config.timeout):
                measured = await loop.run_in_executor(self._executor, self._measure)
        except TimeoutError:
            return self._fail(started_at, t0, ErrorClass.TIMEOUT,
                              f"no answer within {self.config.timeout:g}s")
        except (DBAPIError, PoolTimeoutError) as exc:
            return self._fail(started_at, t0, *classify_sql_error(exc))
        except Exception as exc:  # boundary: a probe never raises into the scheduler
            if _is_driver_error(exc):
                return self._fail(started_at, t0, *classify_sql_error(exc))
            log.exception("sql probe %s failed unexpectedly", self.config.name)
            return self._fail(started_at, t0, ErrorClass.INTERNAL,
                              f"internal error: {type(exc).__name__}")
        result = ProbeResult(target=self.config.name, started_at=started_at,
                             ok=measured.failure is None, latency=measured.latency,
                             region=self.region, values=measured.values)
        result.values["query_seconds"] = measured.query_seconds
        if measured.failure is not None:
            result.error_class, result.error = measured.failure
        return result

    def _measure(self) -> _Measurement:
        """Connect, run the query, check it, then (optionally) read the size. In the thread."""
        engine = self._get_engine()
        t_connect = time.perf_counter()
        with engine.connect() as connection:
            cursor = connection.connection.cursor()
            try:
                t_query = time.perf_counter()
                cursor.execute(self.config.query)
                row = cursor.fetchone() if cursor.description is not None else None
                t_done = time.perf_counter()
                measured = _Measurement(latency=t_done - t_connect,
                                        query_seconds=t_done - t_query)
                first = row[0] if row else None
                if _is_number(first):
                    measured.values["query_value"] = float(first)
                measured.failure = self._check(row)
                if self.config.database_size:
                    cursor.execute(_SIZE_QUERIES[self._backend])
                    size = cursor.fetchone()
                    if size and size[0] is not None:
                        measured.values["database_size_bytes"] = float(size[0])
            except Exception as exc:
                # The raw cursor bypasses SQLAlchemy's disconnect detection: do it here, so
                # a dead session (a read timeout) is discarded, not rolled back and reused.
                dbapi_connection = connection.connection.dbapi_connection
                if _is_driver_error(exc) and engine.dialect.is_disconnect(
                        exc, dbapi_connection, cursor):  # type: ignore[arg-type]
                    connection.invalidate(exc)
                raise
            finally:
                cursor.close()
        return measured

    def _check(self, row: Any) -> tuple[str, str] | None:
        expected = self.config.expect.value
        if expected is None:
            return None
        if not row:
            return ErrorClass.ASSERTION, f"query returned no rows, expected {expected!r}"
        actual = row[0]
        # Drivers differ on types (Decimal, int, str): equal values or equal text both pass.
        if actual == expected or str(actual) == str(expected):
            return None
        return ErrorClass.ASSERTION, f"first value is {str(actual)[:80]!r}, expected {expected!r}"

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> Engine:
        timeout = self.config.timeout
        if self._backend == "sqlite":
            # Opening a file is cheap; holding no handle between runs lets it be replaced.
            return create_engine(self._url, poolclass=NullPool,
                                 connect_args={"timeout": timeout, "check_same_thread": False})
        connect_args: dict[str, Any]
        if self._backend == "postgresql":
            options = str(self._url.query.get("options", ""))
            connect_args = {
                "connect_timeout": max(2, math.ceil(timeout)),  # libpq: whole seconds, >= 2
                "options": f"{options} -c statement_timeout={int(timeout * 1000)}".strip(),
                "application_name": "primewatch",
            }
        else:
            connect_args = {"connect_timeout": timeout, "read_timeout": timeout,
                            "write_timeout": timeout}
        return create_engine(self._url, pool_size=1, max_overflow=0, pool_timeout=timeout,
                             pool_pre_ping=True, connect_args=connect_args)

    def _fail(self, started_at: float, t0: float, error_class: str, message: str) -> ProbeResult:
        if self._password:
            message = message.replace(self._password, "***")
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region,
            error_class=error_class, error=message[:300],
        )

    async def aclose(self) -> None:
        """Dispose the engine after any query still running, waiting at most `timeout`."""
        engine, self._engine = self._engine, None
        done = self._executor.submit(engine.dispose) if engine is not None else None
        self._executor.shutdown(wait=False)
        if done is not None:
            await asyncio.wait([asyncio.wrap_future(done)], timeout=self.config.timeout)


def classify_sql_error(exc: BaseException) -> tuple[str, str]:
    """Map a SQLAlchemy or driver error to an error class and a short, secret-free message."""
    if isinstance(exc, PoolTimeoutError):
        return ErrorClass.TIMEOUT, "no free connection: the previous query is still running"
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = _driver_message(orig)
    lowered = text.lower()
    module = type(orig).__module__
    sqlstate = getattr(orig, "sqlstate", None)
    code = orig.args[0] if module.startswith("pymysql") and orig.args else None
    if sqlstate == "57014" or code in _MYSQL_TIMEOUT or "timed out" in lowered \
            or "timeout expired" in lowered or "database is locked" in lowered:
        return ErrorClass.TIMEOUT, f"timed out: {text}"
    if "connection refused" in lowered or "errno 111" in lowered:
        return ErrorClass.REFUSED, "connection refused"
    if "failed to resolve host" in lowered or "could not translate host name" in lowered \
            or "name or service not known" in lowered or "errno -2]" in lowered \
            or "errno -3]" in lowered or "errno -5]" in lowered:
        return ErrorClass.DNS, f"DNS lookup failed: {text}"
    if str(sqlstate).startswith("28") or code in _MYSQL_AUTH or "password authentication" \
            in lowered or ("role" in lowered and "does not exist" in lowered) \
            or "no pg_hba.conf entry" in lowered:
        return ErrorClass.AUTH, f"authentication failed: {text}"
    if sqlstate in ("53300", "57P03") or code in _MYSQL_UNAVAILABLE \
            or "too many connections" in lowered or "starting up" in lowered:
        return ErrorClass.UNAVAILABLE, f"server not accepting sessions: {text}"
    if _is_query_error(orig, sqlstate, code, module, lowered):
        return ErrorClass.QUERY, f"query failed: {text}"
    return ErrorClass.CONNECTION, f"connection failed: {text}"


def _is_query_error(orig: BaseException, sqlstate: Any, code: Any, module: str,
                    lowered: str) -> bool:
    """An error in the SQL itself (syntax, missing table, bad cast), not in reaching it."""
    if isinstance(code, int):
        return code < 2000 and code != 1049  # 2xxx are client/connection; 1049 unknown db
    if isinstance(sqlstate, str):
        return not sqlstate.startswith(("08", "3D", "57P"))
    if module == "sqlite3":
        return not any(word in lowered for word in (
            "unable to open", "not a database", "disk i/o", "readonly database"))
    return type(orig).__name__ in ("ProgrammingError", "DataError", "IntegrityError",
                                   "NotSupportedError")


def _driver_message(orig: BaseException) -> str:
    """The driver's own words, first line only, without SQLAlchemy's SQL and links."""
    args = orig.args
    if type(orig).__module__.startswith("pymysql") and len(args) >= 2:
        text = f"({args[0]}) {args[1]}"
    else:
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    text = text.removeprefix("connection failed: ")
    return text if len(text) <= 200 else text[:197] + "..."


def _is_driver_error(exc: BaseException) -> bool:
    """A PEP 249 error raised on the raw cursor (not wrapped by SQLAlchemy)."""
    return any(cls.__name__ == "Error" and cls.__module__.split(".")[0] in
               ("psycopg", "pymysql", "sqlite3") for cls in type(exc).__mro__)


def _is_number(value: object) -> TypeGuard[int | float | Decimal]:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _build(config: SqlTarget, ctx: ProbeContext) -> SqlProbe:
    return SqlProbe(config, region=ctx.region)


KIND = ProbeKind(SqlTarget, _build)
