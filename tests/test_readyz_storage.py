"""Security review item 11 over the real app on loopback: a SQLite file deleted or
replaced under a running instance makes /readyz not ready, and an unusable spill path
is said at start and shown by /readyz."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.spill import unusable_reason
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.servers import serve_asgi


@contextmanager
def running(db: Path, *, background: bool = False, **storage: object
            ) -> Iterator[httpx.Client]:
    """The app on a migrated SQLite file at `db`, served on loopback."""
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    settings = make_settings(storage={"url": f"sqlite:///{db}", **storage})
    app = create_app(settings, engine, clock=FakeClock(1_767_225_600.0),
                     metrics=Metrics(CollectorRegistry()), run_background=background)
    try:
        with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
            yield client
    finally:
        engine.dispose()


def errors_about(caplog: pytest.LogCaptureFixture, db: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.ERROR and str(db) in r.getMessage()]


def test_a_deleted_database_file_makes_readyz_not_ready(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "primewatch.db"
    with running(db) as client:
        assert client.get("/readyz").status_code == 200
        db.unlink()  # SQLite keeps answering from the open, now nameless, file
        with caplog.at_level(logging.ERROR, logger="monitor.storage.engine"):
            first, second = client.get("/readyz"), client.get("/readyz")
    assert first.status_code == second.status_code == 503
    body = first.json()
    assert body["status"] == "not ready"
    assert body["checks"]["storage"] == (
        f"database file {db} was deleted — writes would be lost; restart primewatch")
    assert len(errors_about(caplog, db)) == 1  # logged once, not on every probe


def test_a_database_file_replaced_by_another_makes_readyz_not_ready(
        tmp_path: Path) -> None:
    db = tmp_path / "primewatch.db"
    with running(db) as client:
        other = tmp_path / "restored.db"
        other.write_bytes(db.read_bytes())
        os.replace(other, db)  # a "restore" by mv under the running process
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "was replaced (inode changed)" in response.json()["checks"]["storage"]


def test_an_unwritable_spill_path_is_warned_at_start_and_shown_by_readyz(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A directory that cannot be created even by root (tests may run as root, where
    # chmod 0o500 stops nothing): the spill path goes under a regular file.
    (tmp_path / "file.txt").write_text("not a directory")
    spill = tmp_path / "file.txt" / "spill.jsonl"
    with caplog.at_level(logging.WARNING, logger="monitor.spill"), \
            running(tmp_path / "primewatch.db", background=True,
                    spill_path=str(spill)) as client:
        response = client.get("/readyz")
    [warning] = [r.getMessage() for r in caplog.records if r.name == "monitor.spill"]
    assert "storage.spill_path" in warning and str(spill) in warning
    assert f"{tmp_path / 'file.txt'} is not a directory" in warning
    # Degraded, not unready: nothing is lost unless the database goes down too.
    assert response.status_code == 200 and response.json()["status"] == "ready"
    assert response.json()["checks"]["spill_file"] == (
        f"unusable: {tmp_path / 'file.txt'} is not a directory")


def test_a_usable_spill_path_is_not_reported_and_nothing_is_written(
        tmp_path: Path) -> None:
    """A directory still to be created is fine (the first spill creates it), and the
    check writes nothing: the default spill path is in the working directory."""
    (tmp_path / "spill.jsonl").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spill.jsonl").mkdir()
    assert unusable_reason(tmp_path / "missing" / "deeper" / "spill.jsonl") is None
    assert unusable_reason(tmp_path / "spill.jsonl") is None
    assert unusable_reason(tmp_path / "sub" / "spill.jsonl") == (
        f"{tmp_path / 'sub' / 'spill.jsonl'} is not a regular file")
    assert not (tmp_path / "missing").exists()
    with running(tmp_path / "primewatch.db", background=True) as client:
        checks = client.get("/readyz").json()["checks"]
    assert checks["spill_file"] == f"0 of {256 * 1024**2} bytes"
    assert not list(tmp_path.glob("*spill*.lock"))
