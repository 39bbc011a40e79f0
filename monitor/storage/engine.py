"""Engines for SQLite (WAL, busy timeout) and PostgreSQL (psycopg 3), plus migrations,
and `DatabaseFile`, which notices a SQLite file deleted under a running process."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

import migrations

log = logging.getLogger(__name__)


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


class DatabaseFile:
    """The SQLite file a running primewatch opened, watched for being deleted or replaced.

    SQLite writes to the file it opened, not to its path: after an `rm` (or a `mv` of
    another file over it) every write still succeeds, /readyz still said ready, and
    everything written since is gone at the next start. `problem` compares the path's
    device and inode with those seen at start: one `os.stat`, cheap for every /readyz.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened = _identity(path)
        self._reported: str | None = None

    @classmethod
    def of(cls, engine: Engine) -> DatabaseFile | None:
        """The file behind a SQLite engine (as opened at start); None without one
        (PostgreSQL, an in-memory or `file:` URI database)."""
        url = engine.url
        name = url.database
        if url.get_backend_name() != "sqlite" or not name or name == ":memory:" \
                or name.startswith("file:"):
            return None
        return cls(Path(name).absolute())  # relative to the working directory, as SQLite

    def problem(self) -> str | None:
        """Why writes would be lost, or None; logged at ERROR once per distinct problem."""
        current = _identity(self.path)
        if self._opened is None:  # not created yet at start: the first file seen is ours
            self._opened = current
            return None
        if current is None:
            problem = (f"database file {self.path} was deleted — writes would be lost; "
                       "restart primewatch")
        elif current != self._opened:
            problem = (f"database file {self.path} was replaced (inode changed) — writes "
                       "would be lost; restart primewatch")
        else:
            return None
        if problem != self._reported:
            self._reported = problem
            log.error("%s", problem)
        return problem


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`; None when nothing is there to stat."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
