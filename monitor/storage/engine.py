"""Engines for SQLite (WAL, busy timeout) and PostgreSQL (psycopg 3), plus migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

import migrations


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs (psycopg2 is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine tuned per backend; SQLite gets WAL so readers never block the writer."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(engine: Engine) -> Config:
    """Alembic settings built in code, so the installed package migrates from anywhere."""
    config = alembic_config_without_engine()
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run on every start."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        try:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        except Exception:
            return None
    return str(row[0]) if row else None


def head_revision() -> str:
    """The newest migration shipped with this version of primewatch."""
    from alembic.script import ScriptDirectory
    head = ScriptDirectory.from_config(alembic_config_without_engine()).get_current_head()
    return str(head)


def alembic_config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def check_reachable(engine: Engine) -> None:
    """Connect once, or raise StorageError saying what is wrong and how to fix it.

    Called before migrating at start, so that a typo in storage.url or a stopped server
    reads as one sentence (exit 2) rather than a driver traceback.
    """
    from sqlalchemy.exc import DBAPIError

    from monitor.errors import StorageError
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise StorageError(explain_connect_error(engine.url, exc)) from exc


def explain_connect_error(url: Any, exc: BaseException) -> str:
    """One sentence for the usual first-contact failures of `url` (a SQLAlchemy URL)."""
    detail = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    lowered = " ".join(detail).lower()
    if url.get_backend_name() == "sqlite":
        return (f"cannot open the SQLite database {url.database!r} ({first}): check that "
                "its directory exists and is writable, or change storage.url")
    host = url.host or "localhost"
    where = f"{host}:{url.port or 5432}"
    name = url.database or "postgres"
    if "does not exist" in lowered and "database" in lowered:
        return (f"database {name} does not exist on {where} — create it with "
                f"`createdb -h {host} -p {url.port or 5432}"
                f"{' -U ' + url.username if url.username else ''} {name}`, "
                "or change storage.url")
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (f"PostgreSQL on {where} refused user {url.username or '(default)'}: "
                "wrong or missing password in storage.url")
    if any(word in lowered for word in ("connection refused", "could not connect",
                                        "timeout", "timed out", "name or service",
                                        "could not translate", "no route")):
        return (f"cannot reach PostgreSQL on {where} ({first}) — is the server running "
                "and storage.url's host and port right?")
    return f"cannot use the database on {where}: {first}"
