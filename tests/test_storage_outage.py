"""Storage outages with everything real: probes keep running against loopback targets,
PostgreSQL disappears behind a TCP proxy that the test cuts (or SQLite is locked by
another connection), results past a tiny buffer spill to disk, /readyz says degraded,
and once storage is back every produced result is stored exactly once — also when the
process is killed mid-outage and restarted.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from monitor.app import create_app
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.spill import decode
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import POSTGRES_URL, make_settings
from tests.servers import RouteServer, free_port, route_server, send, serve_asgi
from tests.tcp_proxy import TcpProxy, tcp_proxy
from tests.test_crash_restart import start
from tests.test_end_to_end import wait_for

TARGETS = 8
INTERVAL = "100ms"  # 80 results/s: the 100-result buffer is full within 2 s of an outage


@pytest.fixture
def target() -> Iterator[RouteServer]:
    with route_server({f"/t/{i}": lambda h: send(h, 200, "ok") for i in range(TARGETS)}) \
            as server:
        yield server


@pytest.fixture
def proxied_postgres(postgres_engine: Engine) -> Iterator[tuple[Engine, TcpProxy, str]]:
    """The migrated test database, its direct engine, and a URL that goes through a
    proxy the test can cut."""
    upgrade(postgres_engine)
    url = make_url(POSTGRES_URL)
    with tcp_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        yield postgres_engine, proxy, url.set(host="127.0.0.1", port=proxy.port) \
            .render_as_string(hide_password=False)


def outage_settings(url: str, target: RouteServer, spill_path: Path) -> Settings:
    return make_settings(
        storage={"url": url, "max_buffer": 100, "batch_size": 20, "flush_interval": "100ms",
                 "spill_path": str(spill_path)},
        targets=[{"name": f"t{i}", "type": "http", "url": f"{target.url}/t/{i}",
                  "interval": INTERVAL, "timeout": "1s"} for i in range(TARGETS)],
        slos=[{"name": "t0-availability", "target": "t0", "sli": "availability",
               "objective": 99, "window": "1d"}])


def stored_keys(engine: Engine) -> list[tuple[str, float]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT target, started_at FROM probe_results"))
        return [(str(target), float(started_at)) for target, started_at in rows]


def value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def run_through_outage(engine: Engine, direct: Engine, settings: Settings,
                       cut: Any, restore: Any, outage_check: str) -> tuple[Any, Metrics]:
    """Probe, cut storage until results spill, check /readyz and /metrics, restore it,
    wait until the spill is written, stop. Returns the runtime and its metrics."""
    metrics = Metrics(CollectorRegistry())
    app = create_app(settings, engine, metrics=metrics)
    runtime = app.state.runtime
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        wait_for(lambda: stored_keys(direct), 20, "the first stored results")
        assert client.get("/readyz").json()["status"] == "ready"
        cut()
        runs_at_cut = runtime.scheduler.runs
        wait_for(lambda: value(metrics, "primewatch_results_spilled_total") >= 100, 30,
                 "results spilled past the buffer")
        assert runtime.scheduler.runs >= runs_at_cut + 100  # probing went on
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["storage"].startswith(outage_check)
        assert body["checks"]["scheduler"] == "ok"
        pending, spilled, dropped = (int(part.split()[0]) for part in
                                     body["checks"]["write_buffer"].split(", "))
        assert pending > 0 and spilled >= 100 and dropped == 0
        assert "primewatch_storage_up 0.0" in client.get("/metrics").text
        assert value(metrics, "primewatch_spill_bytes") > 0
        restore()
        wait_for(lambda: runtime.sink.spilled == 0 and client.get("/readyz").status_code == 200,
                 60, "the spill file written back and /readyz ready")
        assert client.get("/readyz").json()["status"] == "ready"
    return runtime, metrics  # leaving the block stopped the runtime; the sink flushed


def assert_nothing_lost(runtime: Any, metrics: Metrics, direct: Engine,
                        spill_path: Path) -> None:
    keys = stored_keys(direct)
    assert len(keys) == runtime.scheduler.runs  # every produced result is stored ...
    assert len(set(keys)) == len(keys)  # ... exactly once
    assert runtime.sink.dropped == 0 and value(metrics, "primewatch_results_dropped_total") == 0
    spilled = value(metrics, "primewatch_results_spilled_total")
    assert value(metrics, "primewatch_results_replayed_total") == spilled >= 100
    assert value(metrics, "primewatch_storage_up") == 1
    assert value(metrics, "primewatch_spill_bytes") == 0
    assert not spill_path.exists()


@pytest.mark.postgres
def test_postgres_unreachable_results_spill_and_each_is_written_once(
        proxied_postgres: tuple[Engine, TcpProxy, str], target: RouteServer,
        tmp_path: Path) -> None:
    direct, proxy, url = proxied_postgres
    spill_path = tmp_path / "spill.jsonl"
    engine = make_engine(url)
    try:
        runtime, metrics = run_through_outage(
            engine, direct, outage_settings(url, target, spill_path), proxy.cut,
            proxy.restore, "unreachable")
    finally:
        engine.dispose()
    assert_nothing_lost(runtime, metrics, direct, spill_path)


def test_sqlite_locked_by_another_connection_results_spill_and_each_is_written_once(
        target: RouteServer, tmp_path: Path) -> None:
    database = tmp_path / "pw.db"
    url = f"sqlite:///{database}"
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _fail_fast(dbapi_connection: Any, _record: Any) -> None:
        # The real 30 s busy timeout would make each failed write take 30 s.
        dbapi_connection.execute("PRAGMA busy_timeout=100")

    upgrade(engine)
    holder = sqlite3.connect(database, isolation_level=None, timeout=30)

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")  # e.g. a backup tool or a stuck sqlite3 shell

    spill_path = tmp_path / "spill.jsonl"
    try:
        runtime, metrics = run_through_outage(
            engine, engine, outage_settings(url, target, spill_path), lock,
            lambda: holder.execute("ROLLBACK"), "writes failing: OperationalError")
        assert_nothing_lost(runtime, metrics, engine, spill_path)
    finally:
        holder.close()
        engine.dispose()


# --- kill -9 during an outage: the spill file outlives the process --------------------

def spilled_keys(path: Path) -> list[tuple[str, float]]:
    """What a crashed process left in its spill file (a torn last line is not a result)."""
    keys = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.endswith(b"\n"):
            result = decode(line)
            keys.append((result.target, result.started_at))
    return keys


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_during_an_outage_then_restart_writes_every_spilled_result(
        proxied_postgres: tuple[Engine, TcpProxy, str], target: RouteServer,
        tmp_path: Path) -> None:
    direct, proxy, url = proxied_postgres
    spill_path = tmp_path / "spill.jsonl"
    config = tmp_path / "config.yaml"
    targets = "\n".join(f'  - {{name: t{i}, type: http, url: "{target.url}/t/{i}", '
                        f'interval: {INTERVAL}, timeout: 1s}}' for i in range(TARGETS))
    config.write_text(f"""
service: {{name: spill-crash}}
server: {{port: {free_port()}}}
storage: {{url: "{url}", max_buffer: 100, batch_size: 20, flush_interval: 100ms,
          spill_path: "{spill_path}"}}
targets:
{targets}
""")
    first = start(config, tmp_path, "first")
    try:
        wait_for(lambda: stored_keys(direct), 30, "the first stored results")
        proxy.cut()
        wait_for(lambda: spill_path.exists() and len(spilled_keys(spill_path)) >= 200, 30,
                 "results spilled")
    finally:
        first.send_signal(signal.SIGKILL)  # no shutdown, no flush: a crash
        first.wait(10)
    spilled = spilled_keys(spill_path)
    proxy.restore()
    second = start(config, tmp_path, "second")
    try:
        wait_for(lambda: not spill_path.exists(), 60, "the spill file written back")
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(15)
    keys = stored_keys(direct)
    assert len(set(keys)) == len(keys)  # nothing twice ...
    assert set(spilled) <= set(keys)  # ... and nothing that reached the disk lost
    log = (tmp_path / "second.log").read_text()
    assert f"{len(spilled)} results not yet stored" in log, log[-2000:]
