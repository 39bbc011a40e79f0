"""`db backup` and `db restore`: a consistent copy of the database, and the way back.

SQLite: the online backup API copies pages inside one read transaction, so the copy is
the database as of one instant while primewatch keeps writing (WAL lets the writer go
on); restore copies pages back the same way, inside one write transaction.
PostgreSQL: `pg_dump --format=custom` (one snapshot) and `pg_restore --clean --if-exists
--single-transaction`, so a failed restore changes nothing. Connection details reach
them through PG* environment variables, never argv, where `ps` would show a password.

Either way the new file appears under its name only once complete (written beside it,
then renamed), and every check on a backup file runs before the database is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, func, inspect, select, table
from sqlalchemy.engine import URL, make_url

from monitor.errors import StorageError
from monitor.storage.engine import make_engine, normalise_url

Progress = Callable[[str], None]
SQLITE_MAGIC, PGDUMP_MAGIC = b"SQLite format 3\x00", b"PGDMP"
PAGES_PER_STEP = 2048  # 8 MB at SQLite's default page size; progress is reported per step
DUMP_POLL = 2.0  # seconds between "MB written" lines while pg_dump runs
# storage.url query parameters → the libpq environment variables that carry them.
LIBPQ_ENV = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT",
             "sslmode": "PGSSLMODE", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
             "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL",
             "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
             "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS",
             "gssencmode": "PGGSSENCMODE", "channel_binding": "PGCHANNELBINDING",
             "service": "PGSERVICE", "passfile": "PGPASSFILE"}


class BackupError(StorageError):
    """A backup or restore was not done; whatever existed before is unchanged."""


class BackupRefused(BackupError):
    """The request is the problem: a missing, damaged or foreign backup file, a
    destination that exists or cannot be written, or a database holding data without
    `force`."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What a backup or restore did, for the CLI to print."""

    backend: str  # sqlite | postgresql
    path: Path
    size: int  # bytes of the backup file
    tables: dict[str, int] = field(default_factory=dict)  # rows per table (restore, SQLite)
    revision: str | None = None  # the schema revision inside the backup
    replaced: dict[str, int] = field(default_factory=dict)  # rows there before a restore
    seconds: float = 0.0


def backup(url: str, path: Path, *, environ: Mapping[str, str], overwrite: bool = False,
           progress: Progress = lambda _: None) -> Summary:
    """Copy the database at `url` to `path` as it is at one instant."""
    started = time.monotonic()
    parsed = make_url(normalise_url(url))
    temporary = _claim_destination(path, overwrite=overwrite,
                                   live=_sqlite_file(parsed) if _is_sqlite(parsed) else None)
    try:
        if _is_sqlite(parsed):
            _sqlite_backup(_sqlite_file(parsed), temporary, progress)
            progress("checking the copy (quick_check)")
            backend, tables, revision = "sqlite", *_sqlite_contents(temporary)
        else:
            _pg_dump(parsed, temporary, environ, progress)
            backend, tables, revision = "postgresql", *_archive_contents(temporary, environ)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return Summary(backend, path, path.stat().st_size, tables, revision,
                   seconds=time.monotonic() - started)


def restore(url: str, path: Path, *, environ: Mapping[str, str], force: bool = False,
            progress: Progress = lambda _: None) -> Summary:
    """Replace the database at `url` with the backup at `path`; refuses to replace data
    unless `force`."""
    started = time.monotonic()
    parsed = make_url(normalise_url(url))
    sqlite = _is_sqlite(parsed)
    kind = _backup_kind(path)
    if kind != ("sqlite" if sqlite else "postgresql"):
        made_by = "a SQLite database" if kind == "sqlite" else "a pg_dump archive"
        raise BackupRefused(f"{path} is {made_by}, but storage.url is "
                            f"{'SQLite' if sqlite else 'PostgreSQL'}: a backup restores "
                            "only into the kind of database it came from")
    if sqlite:
        database = _sqlite_file(parsed)
        if database.exists() and path.samefile(database):
            raise BackupRefused(f"{path} is the database itself, not a backup of it")
        _, revision = _sqlite_contents(path)  # quick_check: a damaged copy is refused
    else:
        _, revision = _archive_contents(path, environ)
    if revision is None:
        raise BackupRefused(f"{path} is not a primewatch backup (no alembic_version table)")
    _check_revision_known(path, revision)
    before = _rows_or_fail(parsed)
    data = {name: rows for name, rows in before.items() if rows and name != "alembic_version"}
    if data and not force:
        listed = ", ".join(f"{name} {rows:,}" for name, rows in sorted(data.items()))
        raise BackupRefused(f"{_safe(parsed)} already holds data ({listed} rows); "
                            "pass --force to replace it with the backup")
    if sqlite:
        _sqlite_restore(path, _sqlite_file(parsed), progress)
    else:
        _pg_restore(parsed, path, environ, progress)
    return Summary("sqlite" if sqlite else "postgresql", path, path.stat().st_size,
                   _rows_or_fail(parsed), revision, data, time.monotonic() - started)


def safe_url(url: str) -> str:
    """The storage URL with its password masked, for messages."""
    return _safe(make_url(normalise_url(url)))


# --- destination and backup files ------------------------------------------------------

def _claim_destination(path: Path, *, overwrite: bool, live: Path | None) -> Path:
    """Check `path` can take a backup and create the temporary file beside it."""
    if path.is_dir():
        raise BackupRefused(f"{path} is a directory; give a file name")
    if not path.parent.is_dir():
        problem = "is not a directory" if path.parent.exists() else "does not exist"
        raise BackupRefused(f"cannot write {path}: {path.parent} {problem}")
    if live is not None and path.exists() and live.exists() and path.samefile(live):
        raise BackupRefused(f"{path} is the database itself; back up to another file")
    if path.exists() and not overwrite:
        raise BackupRefused(f"{path} already exists; pass --force to overwrite it")
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.open("xb").close()
    except OSError as exc:
        raise BackupRefused(f"cannot write {path}: {exc.strerror or exc}") from exc
    return temporary


def _backup_kind(path: Path) -> str:
    if not path.exists():
        raise BackupRefused(f"backup file {path} does not exist")
    if not path.is_file():
        raise BackupRefused(f"{path} is not a file")
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise BackupRefused(f"{path} is neither a SQLite database nor a pg_dump custom-format "
                        "archive: not a primewatch backup, or damaged")


def _check_revision_known(path: Path, revision: str) -> None:
    from alembic.script import ScriptDirectory

    from monitor.storage.engine import alembic_config_without_engine
    scripts = ScriptDirectory.from_config(alembic_config_without_engine())
    try:
        known = scripts.get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        known = False
    if not known:
        raise BackupRefused(f"{path} has schema revision {revision!r}, which this version of "
                            "primewatch does not know: restore it with the version that made it")


def _rows_or_fail(url: URL) -> dict[str, int]:
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        return table_rows(engine)
    except Exception as exc:  # boundary: any driver error means "cannot reach it"
        raise BackupError(f"cannot read {_safe(url)}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        engine.dispose()


def table_rows(engine: Engine) -> dict[str, int]:
    """Rows in every table of the database (its default schema)."""
    names = sorted(inspect(engine).get_table_names())
    with engine.connect() as connection:
        return {name: int(connection.execute(select(func.count()).select_from(table(name)))
                          .scalar_one()) for name in names}


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise BackupRefused(f"storage.url {url} does not name a SQLite file")
    return Path(url.database)


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- SQLite ----------------------------------------------------------------------------

def _sqlite_backup(database: Path, destination: Path, progress: Progress) -> None:
    if not database.is_file():
        raise BackupRefused(f"database file {database} does not exist")
    source = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        # One read transaction across every backup step: the copy is this snapshot, and
        # writes by the running service neither block nor restart it (WAL).
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        target = sqlite3.connect(destination, isolation_level=None)
        try:
            source.backup(target, pages=PAGES_PER_STEP, progress=_page_progress(progress))
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {database} failed: {exc}") from exc
    finally:
        source.close()


def _sqlite_restore(backup_file: Path, database: Path, progress: Progress) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    source = _open_read_only(backup_file)
    try:
        target = sqlite3.connect(database, isolation_level=None, timeout=30)
        try:
            # Pages go in under one write lock: readers see the old database or the new.
            source.backup(target, pages=PAGES_PER_STEP, progress=_page_progress(progress))
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore into {database} failed: {exc}") from exc
    finally:
        source.close()


def _sqlite_contents(path: Path) -> tuple[dict[str, int], str | None]:
    """Rows per table and the schema revision of a SQLite file, after an integrity check."""
    try:
        connection = _open_read_only(path)
    except sqlite3.Error as exc:
        raise BackupRefused(f"cannot open {path}: {exc}") from exc
    try:
        _quick_check(connection, path)
        names = [str(row[0]) for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        tables = {name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                  for name in names}
        revision = None
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = str(row[0]) if row else None
        return tables, revision
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(f"{path} is damaged: {exc}") from exc
    finally:
        connection.close()


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                           isolation_level=None)


def _quick_check(connection: sqlite3.Connection, path: Path) -> None:
    try:
        verdict = [str(row[0]) for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(f"{path} is damaged or not a SQLite database: {exc}") from exc
    if verdict != ["ok"]:
        raise BackupRefused(f"{path} is damaged: {'; '.join(verdict[:3])}")


def _page_progress(progress: Progress) -> Callable[[int, int, int], None]:
    """sqlite3's per-step callback → one line per 10 % copied."""
    shown = [-1]

    def report(_status: int, remaining: int, total: int) -> None:
        tenth = (total - remaining) * 10 // max(total, 1)
        if tenth > shown[0] and total > PAGES_PER_STEP:
            shown[0] = tenth
            progress(f"copied {tenth * 10}% of {total:,} pages")

    return report


# --- PostgreSQL --------------------------------------------------------------------------

def _pg_dump(url: URL, destination: Path, environ: Mapping[str, str],
             progress: Progress) -> None:
    command = [_tool("pg_dump", environ), "--format=custom", "--no-password",
               "--lock-wait-timeout=60s", f"--file={destination}"]
    size = _pg_database_size(url)
    progress(f"pg_dump: dumping {_safe(url)} ({size / 1e6:,.1f} MB on disk)")
    with subprocess.Popen(command, env=pg_environment(url, environ), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        while True:
            try:
                _, errors = process.communicate(timeout=DUMP_POLL)
                break
            except subprocess.TimeoutExpired:
                progress(f"pg_dump: {destination.stat().st_size / 1e6:,.1f} MB written")
    if process.returncode != 0:
        raise BackupError(f"pg_dump failed (exit {process.returncode}): {_last(errors)}")


def _pg_restore(url: URL, path: Path, environ: Mapping[str, str], progress: Progress) -> None:
    # --single-transaction: an error anywhere rolls everything back (and implies
    # --exit-on-error); --no-owner: the restoring role owns the tables. The empty
    # --dbname selects "restore into a database" and leaves its name to PGDATABASE.
    command = [_tool("pg_restore", environ), "--clean", "--if-exists", "--single-transaction",
               "--no-owner", "--no-password", "--verbose", "--dbname=", str(path)]
    lines: list[str] = []
    with subprocess.Popen(command, env=pg_environment(url, environ), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as process:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip())
            match = re.search(r'processing data for table "([^"]+)"', line)
            if match:
                progress(f"pg_restore: loading {match.group(1)}")
    if process.returncode != 0:
        problems = [line for line in lines if "error" in line.lower()] or lines
        raise BackupError(f"pg_restore failed (exit {process.returncode}), nothing was "
                          f"changed: {_last(chr(10).join(problems))}")


def _archive_contents(path: Path, environ: Mapping[str, str]
                      ) -> tuple[dict[str, int], str | None]:
    """Tables listed in a pg_dump archive (rows unknown: -1) and its schema revision."""
    tool = _tool("pg_restore", environ)
    listing = subprocess.run([tool, "--list", str(path)], capture_output=True,
                             env=dict(environ), stdin=subprocess.DEVNULL)
    if listing.returncode != 0:
        raise BackupRefused(f"{path} is not a readable pg_dump archive: "
                            f"{_last(listing.stderr)}")
    names = re.findall(r"^\d+; \d+ \d+ TABLE (?!DATA )\S+ (\S+) ", listing.stdout.decode(), re.M)
    revision = None
    if "alembic_version" in names:
        data = subprocess.run([tool, "--data-only", "--table=alembic_version", "--file=-",
                               str(path)], capture_output=True, env=dict(environ),
                              stdin=subprocess.DEVNULL)
        copied = re.search(r"^COPY \S*alembic_version .*?;\n(.+?)\n\\\.",
                           data.stdout.decode(), re.M | re.S)
        revision = copied.group(1).strip() if copied else None
    return dict.fromkeys(sorted(names), -1), revision


def _pg_database_size(url: URL) -> int:
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql(
                "SELECT pg_database_size(current_database())").scalar_one())
    except Exception as exc:  # boundary: any driver error means "cannot reach it"
        raise BackupError(f"cannot connect to {_safe(url)}: {type(exc).__name__}") from exc
    finally:
        engine.dispose()


def pg_environment(url: URL, environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours plus the URL's parts as libpq variables."""
    env = dict(environ)
    for part, name in ((url.host, "PGHOST"), (url.port, "PGPORT"),
                       (url.username, "PGUSER"), (url.password, "PGPASSWORD"),
                       (url.database, "PGDATABASE")):
        if part is not None:
            env[name] = str(part)
    for key, value in url.query.items():
        if key not in LIBPQ_ENV:
            raise BackupError(f"storage.url parameter {key!r} cannot be passed to the "
                              "PostgreSQL tools; use a libpq service file (service=...) "
                              "or PG* environment variables instead")
        env[LIBPQ_ENV[key]] = value if isinstance(value, str) else ",".join(value)
    return env


def _tool(name: str, environ: Mapping[str, str]) -> str:
    found = shutil.which(name, path=environ.get("PATH", os.defpath))
    if found is None:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools "
                          "of the server's major version or newer (Debian, Ubuntu: "
                          "apt install postgresql-client)")
    return found


def _last(output: bytes | str, lines: int = 5) -> str:
    """The last lines of a tool's stderr, on one line."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return " | ".join(text.strip().splitlines()[-lines:]) or "no message"
