"""`primewatch db backup` / `db restore` on real SQLite files and a real PostgreSQL with
the real pg_dump / pg_restore: what comes back is what was there at backup time."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect, select, text

from alerts.escalation import IncidentManager
from alerts.rules import ActiveAlert
from monitor import backup as backup_module
from monitor.app import create_app
from monitor.backup import backup
from monitor.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from monitor.clock import FakeClock
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.service import MonitorService
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import ProbeResultRow, SloRollup
from monitor.storage.rollups import DAY
from probes.base import ProbeResult
from tests.conftest import drop_all, make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T0 + 6 * 3600
SETTINGS = make_settings()


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def write_config(tmp_path: Path, url: str, name: str = "primewatch.yaml") -> str:
    path = tmp_path / name
    path.write_text(f"""\
storage: {{url: "{url}"}}
targets: [{{name: api, type: http, url: "http://127.0.0.1:1/health"}}]
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99, window: 1d}}
  - {{name: api-latency, target: api, sli: latency, threshold: 100ms, objective: 90,
     window: 1d}}
""", encoding="utf-8")
    return str(path)


def results(start: float, count: int, step: float = 10.0) -> list[ProbeResult]:
    return [ProbeResult(target="api", started_at=start + i * step, ok=i % 25 != 0,
                        latency=0.02 + (i % 7) * 0.03, status_code=200 if i % 25 else 500,
                        error_class=None if i % 25 else "http_status",
                        values={"n": float(i)}) for i in range(count)]


def populate(engine: Engine) -> None:
    """Results with rollups and bins, an open incident with its timeline."""
    ResultWriter(engine, SETTINGS.slos)(results(T0, 2000))
    alert = ActiveAlert(key="slo:api-availability", kind="burn_rate", severity="page",
                        title="SLO api-availability is burning", summary="burn 20x",
                        slo="api-availability", target="api",
                        labels={"severity": "page"}, burn_rate=20.0)
    IncidentManager(engine, SETTINGS, channels=[]).tick([alert], NOW - 60)


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, order-independent."""
    found: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for name in sorted(inspect(connection).get_table_names()):
            rows = connection.execute(text(f'SELECT * FROM "{name}"')).all()
            found[name] = sorted(repr(tuple(row)) for row in rows)
    return found


def cli(config: str, *args: str) -> int:
    return main(["--config", config, "db", *args])


def test_restore_brings_back_the_data_at_backup_time(
        engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, url_of(engine))
    populate(engine)
    at_backup = snapshot(engine)
    assert len(at_backup["probe_results"]) == 2000 and len(at_backup["incidents"]) == 1
    path = tmp_path / "primewatch.backup"

    assert cli(config, "backup", str(path)) == EXIT_OK
    assert "backed up" in capsys.readouterr().out and path.stat().st_size > 0

    drop_all(engine)  # the database is lost
    assert cli(config, "restore", str(path)) == EXIT_OK  # empty: no --force needed
    out = capsys.readouterr().out
    assert "restored" in out and "probe_results: 2,000 rows" in out
    assert snapshot(engine) == at_backup

    ResultWriter(engine, SETTINGS.slos)(results(T0 + 20_000, 50))  # life goes on
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM incidents"))
    changed = snapshot(engine)
    assert cli(config, "restore", str(path)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "already holds data" in err and "--force" in err and "probe_results 2,050" in err
    assert snapshot(engine) == changed  # refused: untouched

    assert cli(config, "restore", "--force", str(path)) == EXIT_OK
    assert "; replaced " in capsys.readouterr().out
    assert snapshot(engine) == at_backup

    fresh = make_engine(url_of(engine))  # primewatch itself works on the restored data
    app = create_app(SETTINGS, fresh, clock=FakeClock(NOW),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        slos = {s["name"]: s for s in client.get("/api/v1/slos").json()["items"]}
        assert (slos["api-availability"]["good"], slos["api-availability"]["total"]) == \
            (1920, 2000)
        [incident] = client.get("/api/v1/incidents").json()["items"]
        assert incident["slo"] == "api-availability" and incident["status"] == "triggered"
        page = client.get("/api/v1/targets/api/results", params={"limit": 5}).json()
        assert len(page["items"]) == 5
    app.state.runtime.leadership.release()  # as `stop` would, while the engine is open
    fresh.dispose()


def test_sqlite_backup_while_writing_is_one_consistent_instant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    upgrade(source)
    writer = ResultWriter(source, SETTINGS.slos)
    writer(results(T0, 3000))
    batches, stop, failures = [0], threading.Event(), []

    def keep_writing() -> None:
        start = T0 + 30_000
        try:
            while not stop.is_set():
                writer(results(start + batches[0] * 500, 50))  # one transaction each
                batches[0] += 1
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)

    progress: list[str] = []

    def wait_for_writes(line: str) -> None:
        if not progress:  # mid-copy: let the writer commit several batches
            seen = batches[0]
            deadline = time.monotonic() + 30
            while batches[0] < seen + 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        progress.append(line)

    monkeypatch.setattr(backup_module, "PAGES_PER_STEP", 8)  # many steps: a long copy
    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        while batches[0] < 2:
            time.sleep(0.01)
        path = tmp_path / "snapshot.db"
        summary = backup(url_of(source), path, environ=os.environ, progress=wait_for_writes)
    finally:
        stop.set()
        thread.join()
    assert not failures
    assert "copied 100% of" in " ".join(progress)
    with source.connect() as connection:
        live = [tuple(r) for r in connection.execute(
            select(ProbeResultRow).order_by(ProbeResultRow.id))]

    restored_url = f"sqlite:///{tmp_path / 'restored' / 'pw.db'}"
    config = write_config(tmp_path, restored_url)
    assert cli(config, "restore", str(path)) == EXIT_OK
    restored = make_engine(restored_url)
    with restored.connect() as connection:
        copy = [tuple(r) for r in connection.execute(
            select(ProbeResultRow).order_by(ProbeResultRow.id))]
        day_total = connection.execute(select(SloRollup.total).where(
            SloRollup.slo == "api-availability", SloRollup.resolution == DAY)).scalar_one()
    # One instant: the first k results exactly, and the rollups written with them.
    assert summary.tables["probe_results"] == len(copy)
    assert copy == live[:len(copy)]
    assert day_total == len(copy)
    assert len(live) - len(copy) >= 3 * 50  # what was written during the copy is not in it
    status = MonitorService(SETTINGS, restored, FakeClock(T0 + 80_000)).slo_status(
        "api-availability")
    assert status.total == len(copy)
    restored.dispose()
    source.dispose()


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "other kind"])
def test_restore_refuses_a_bad_file_and_changes_nothing(
        engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    config = write_config(tmp_path, url_of(engine))
    populate(engine)
    good = tmp_path / "good.backup"
    assert cli(config, "backup", str(good)) == EXIT_OK
    before = snapshot(engine)
    bad = tmp_path / "bad.backup"
    sqlite = engine.dialect.name == "sqlite"
    if case == "garbage":
        bad.write_bytes(b"definitely not a database\n" * 100)
    elif case == "truncated":
        bad.write_bytes(good.read_bytes()[:3000])
    elif case == "other kind":
        bad.write_bytes(b"PGDMP\x01\x0e\x00" * 10 if sqlite
                        else _a_sqlite_file(tmp_path).read_bytes())
    expected = {"missing": "does not exist", "garbage": "not a primewatch backup",
                "truncated": "damaged" if sqlite else "not a readable pg_dump archive",
                "other kind": "only into the kind of database it came from"}[case]
    capsys.readouterr()
    assert cli(config, "restore", "--force", str(bad)) == EXIT_USAGE
    assert expected in capsys.readouterr().err
    assert snapshot(engine) == before


@pytest.mark.postgres
def test_a_pg_restore_failing_midway_rolls_back(
        postgres_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(postgres_engine)
    config = write_config(tmp_path, url_of(postgres_engine))
    populate(postgres_engine)
    good = tmp_path / "good.dump"
    assert cli(config, "backup", str(good)) == EXIT_OK
    ResultWriter(postgres_engine, SETTINGS.slos)(results(T0 + 50_000, 10))
    before = snapshot(postgres_engine)
    cut = tmp_path / "cut.dump"  # the table of contents reads fine, the data ends early
    cut.write_bytes(good.read_bytes()[:int(good.stat().st_size * 0.7)])
    capsys.readouterr()
    assert cli(config, "restore", "--force", str(cut)) == EXIT_FAILED
    assert "pg_restore failed" in capsys.readouterr().err
    assert snapshot(postgres_engine) == before


def test_backup_refuses_a_destination_it_cannot_or_must_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "pw.db"
    config = write_config(tmp_path, f"sqlite:///{database}")
    assert cli(config, "upgrade") == EXIT_OK
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    (tmp_path / "a-dir").mkdir()
    cases = {str(a_file / "x.db"): "is not a directory",
             str(tmp_path / "missing" / "x.db"): "does not exist",
             str(tmp_path / "a-dir"): "is a directory",
             str(a_file): "already exists; pass --force",
             str(database): "is the database itself"}
    def listing() -> list[str]:  # SQLite's -wal and -shm files come and go
        return sorted(name for name in os.listdir(tmp_path) if not name.startswith("pw.db"))

    before = listing()
    capsys.readouterr()
    for destination, expected in cases.items():
        assert cli(config, "backup", destination) == EXIT_USAGE, destination
        assert expected in capsys.readouterr().err, destination
    assert cli(config, "backup", "--force", str(database)) == EXIT_USAGE
    assert "is the database itself" in capsys.readouterr().err
    assert cli(config, "restore", "--force", str(database)) == EXIT_USAGE
    assert "is the database itself" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"
    assert listing() == before  # no partial files left behind


def test_restore_refuses_a_schema_this_version_does_not_know(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'pw.db'}")
    assert cli(config, "upgrade") == EXIT_OK
    path = tmp_path / "future.db"
    assert cli(config, "backup", str(path)) == EXIT_OK
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    capsys.readouterr()
    assert cli(config, "restore", "--force", str(path)) == EXIT_USAGE
    assert "does not know" in capsys.readouterr().err


@pytest.mark.postgres
def test_pg_tools_get_the_password_by_environment_never_argv(
        postgres_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(postgres_engine)
    populate(postgres_engine)
    url = postgres_engine.url.set(password="s3cret-Pw")  # trust auth ignores it
    config = write_config(tmp_path, url.render_as_string(hide_password=False))
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("pg_dump", "pg_restore"):  # record the real tools' argv and env
        real = _which(tool)
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $* PGPASSWORD=$PGPASSWORD" >> {log}\n'
                           f'exec {real} "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    before = snapshot(postgres_engine)
    path = tmp_path / "pw.dump"
    assert cli(config, "backup", str(path)) == EXIT_OK
    assert cli(config, "restore", "--force", str(path)) == EXIT_OK
    assert "s3cret-Pw" not in capsys.readouterr().out  # summaries mask it too
    calls = log.read_text().splitlines()
    assert {c.split()[0] for c in calls} == {"pg_dump", "pg_restore"}
    for call in calls:
        argv, env = call.rsplit(" PGPASSWORD=", 1)
        assert "s3cret-Pw" not in argv
        if call.startswith("pg_dump") or "--dbname" in argv:  # the calls that connect
            assert env == "s3cret-Pw"
    assert snapshot(postgres_engine) == before


@pytest.mark.postgres
def test_missing_pg_tools_are_named(
        postgres_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(postgres_engine)
    config = write_config(tmp_path, url_of(postgres_engine))
    archive = tmp_path / "pw.dump"
    assert cli(config, "backup", str(archive)) == EXIT_OK
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    capsys.readouterr()
    assert cli(config, "backup", str(tmp_path / "other.dump")) == EXIT_FAILED
    assert "pg_dump not found" in capsys.readouterr().err
    assert not (tmp_path / "other.dump").exists()
    assert cli(config, "restore", str(archive)) == EXIT_FAILED
    assert "pg_restore not found" in capsys.readouterr().err


def test_help_explains_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for action, phrase in (("backup", "safe to run"), ("restore", "--force")):
        with pytest.raises(SystemExit) as info:
            main(["db", action, "--help"])
        assert info.value.code == 0
        assert phrase in capsys.readouterr().out


def _a_sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "sqlite-backup.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _which(tool: str) -> str:
    import shutil
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed")
    return found

