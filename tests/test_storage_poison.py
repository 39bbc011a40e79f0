"""One odd byte from a probed endpoint never stops storage: what an endpoint sends is
stored sanitised (NUL, lone surrogates, megabytes, NaN), a row the database still
refuses is quarantined while the rest of its batch is written, and the spill file
replays everything else. On SQLite and PostgreSQL, with real targets and databases."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from monitor.app import create_app
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.sink import ResultSink
from monitor.spill import SpillFile
from monitor.storage import repository
from monitor.storage.isolate import is_rejection
from monitor.storage.sanitize import ERROR_CHARS, KEY_CHARS, MAX_ENTRIES, storable
from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ErrorClass, ProbeResult
from probes.http import HttpTarget
from tests.conftest import make_settings
from tests.servers import route_server, send, serve_asgi
from tests.test_end_to_end import wait_for

T0 = 1_767_225_600.0
MARK = "REFUSE-ME"
"""Rows whose error holds this are refused by a real constraint the tests install."""

HOSTILE_BODIES: dict[str, bytes] = {
    "healthy": b'{"status":"ok"}',
    "nul": b'{"status":"bad\\u0000value"}',  # JSON's escape: a real NUL once parsed
    "surrogate": b'{"status":"bad\\ud800value"}',  # a lone surrogate once parsed
    "invalid-utf8": b'{"status":"bad\xff\xfe\xc3value"}',
    "huge": b'{"status":"' + b"E" * 1_000_000 + b'"}',  # a megabyte
}


def answer(body: bytes) -> Any:
    return lambda handler: send(handler, 200, body, "application/json")


def refuse_marked_rows(engine: Engine) -> None:
    """A real database constraint that refuses rows whose error holds MARK: a value
    no sanitiser could know the database would refuse."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text(
                "CREATE TRIGGER refuse_marked BEFORE INSERT ON probe_results "
                f"WHEN NEW.error LIKE '%{MARK}%' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test constraint'); END"))
        else:
            connection.execute(text(
                "ALTER TABLE probe_results ADD CONSTRAINT refuse_marked "
                f"CHECK (error NOT LIKE '%{MARK}%')"))


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def stored(engine: Engine, target: str) -> list[ProbeResult]:
    page = repository.results_page(engine, target, since=None, before_id=None,
                                   limit=100_000)
    return sorted((item.result for item in page), key=lambda r: r.started_at)


def run_sink(sink: ResultSink, produce: Any = None) -> None:
    """Run `sink`, let `produce(sink)` (async) submit results, then close it and wait
    until everything is written or given up."""

    async def scenario() -> None:
        task = asyncio.create_task(sink.run())
        if produce is not None:
            await produce(sink)
        await asyncio.sleep(0)
        sink.close()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())


def new_sink(writer: Any, metrics: Metrics, **options: Any) -> ResultSink:
    # A short grace: today's code would retry a poisoned batch until it runs out.
    defaults: dict[str, Any] = {"batch_size": 500, "flush_interval": 0.02,
                                "max_backoff": 0.05, "shutdown_grace": 0.5}
    return ResultSink(writer, metrics, **(defaults | options))


def results(count: int, start: int = 0, target: str = "api") -> list[ProbeResult]:
    return [ProbeResult(target=target, started_at=T0 + i, ok=True, latency=0.01)
            for i in range(start, start + count)]


def refused(at: int, target: str = "api") -> ProbeResult:
    """A row the test constraint refuses; its payload word is not hex, since the logs
    hold memory addresses (0x7f3a...) that a hex word could appear in by chance."""
    return ProbeResult(target=target, started_at=T0 + at, ok=False, latency=0.01,
                       error_class=ErrorClass.ASSERTION, error=f"payload {MARK} qzxv")


@contextmanager
def serve_asgi_client(app: Any) -> Iterator[httpx.Client]:
    """A real uvicorn server for `app` and an httpx client on it, closed together."""
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


# --- hostile endpoints through the real probe and the real sink ------------------------

def test_hostile_endpoints_are_stored_sanitised_beside_a_healthy_target(
        engine: Engine) -> None:
    rounds = 3
    metrics = Metrics(CollectorRegistry())
    sink = new_sink(ResultWriter(engine, make_settings().slos), metrics)

    with route_server({f"/{name}": answer(body) for name, body in HOSTILE_BODIES.items()}) \
            as server:
        async def produce(sink: ResultSink) -> None:
            clients = HttpClientPool()
            try:
                probes = [build_probe(HttpTarget.model_validate({
                    "name": name, "type": "http", "url": f"{server.url}/{name}",
                    "timeout": "5s", "expect": {"json": {"status": "ok"}}}),
                    ProbeContext(clients, region="test")) for name in HOSTILE_BODIES]
                for round_ in range(rounds):
                    for probe in probes:  # one batch holds the healthy and the hostile
                        sink.submit(await probe.run(T0 + round_))
            finally:
                await clients.aclose()

        run_sink(sink, produce)

    healthy = stored(engine, "healthy")
    assert len(healthy) == rounds and all(r.ok for r in healthy)
    for name in ("nul", "surrogate", "invalid-utf8", "huge"):
        kept = stored(engine, name)
        assert len(kept) == rounds, name  # every hostile result is stored too ...
        for result in kept:  # ... as a failure that says why, in storable text
            assert not result.ok
            assert result.error is not None and len(result.error) <= ERROR_CHARS
            assert "\x00" not in result.error
            result.error.encode("utf-8")  # no lone surrogate survived
    nul = stored(engine, "nul")[0]
    assert nul.error_class == ErrorClass.ASSERTION
    assert nul.error is not None and nul.error.startswith("JSON field 'status' is bad\ufffdvalue")
    surrogate = stored(engine, "surrogate")[0]
    assert surrogate.error is not None and "bad\ufffdvalue" in surrogate.error
    assert stored(engine, "invalid-utf8")[0].error_class == ErrorClass.INVALID_JSON
    huge = stored(engine, "huge")[0]
    assert huge.response_bytes is not None and huge.response_bytes > 1_000_000
    assert sink.quarantined == 0 and sink.dropped == 0 and sink.pending == 0
    assert sample(metrics, "primewatch_results_written_total") == rounds * len(HOSTILE_BODIES)
    assert sample(metrics, "primewatch_storage_write_errors_total") == 0


def test_every_field_a_probe_fills_is_made_storable(engine: Engine) -> None:
    hostile = ProbeResult(
        target="api", started_at=T0, ok=False, latency=0.2, region="eu\x00west",
        status_code=2**40, error_class="assertion\x00" + "x" * 100,
        error="E\x00" + "\ud800" + "r" * 50_000, cert_days_left=math.inf,
        response_bytes=2**70,
        values={"nan": math.nan, "inf": -math.inf, "fine": 1.5, "k\x00ey": 2.0},
        counts={"bad": (math.nan, 1.0), "good": (1.0, 2.0), "s\udc80": (0.0, 1.0)},
        details={"nul\x00key": "v\x00", "surrogate": "\udcff", "long": "d" * 100_000,
                 "ansi": "\x1b]0;owned\x07\x1b[2J\x9b1m", "layout": "a\tb\nc\r",
                 "k" * 500: "long key", **{f"h{i}": "x" for i in range(500)}})
    healthy = results(3, start=1)
    ResultWriter(engine, make_settings().slos)([*healthy, hostile])

    rows = stored(engine, "api")
    assert [r.started_at for r in rows] == [T0, T0 + 1, T0 + 2, T0 + 3]
    back = rows[0]
    assert back.region == "eu\ufffdwest"
    assert back.status_code is None and back.response_bytes is None
    assert back.cert_days_left is None
    assert back.error is not None and back.error.startswith("E\ufffd\ufffdrrr")
    assert len(back.error) == ERROR_CHARS
    assert back.error_class is not None and len(back.error_class) <= 32
    assert back.values == {"fine": 1.5, "k\ufffdey": 2.0}  # JSON has no NaN: left out
    assert back.counts == {"good": (1.0, 2.0), "s\ufffd": (0.0, 1.0)}
    assert back.details["nul\ufffdkey"] == "v\ufffd"
    assert back.details["surrogate"] == "\ufffd"
    # An endpoint's terminal escapes are stored inert; tabs and line breaks are kept.
    assert back.details["ansi"] == "\ufffd]0;owned\ufffd\ufffd[2J\ufffd1m"
    assert back.details["layout"] == "a\tb\nc\r"
    assert len(back.details["long"]) <= 1000
    assert "k" * KEY_CHARS not in back.details and "k" * (KEY_CHARS - 1) + "\u2026" in \
        back.details
    assert len(back.details) <= MAX_ENTRIES + 1
    assert "more entries not stored" in back.details["truncated"]
    assert len(json.dumps(back.details)) < 32 * 1024
    assert storable(healthy[0]) is healthy[0]  # the common case costs no copy


# --- a row the database refuses is isolated; the rest of its batch is written ----------

def test_a_row_the_database_refuses_is_quarantined_and_its_batch_is_written(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    refuse_marked_rows(engine)
    produced = results(200)
    for at in (7, 100, 101):
        produced[at] = refused(at)
    metrics = Metrics(CollectorRegistry())
    sink = new_sink(ResultWriter(engine, make_settings().slos), metrics, batch_size=50)
    for result in produced:  # submitted before the sink runs: full batches of 50
        sink.submit(result)

    with caplog.at_level(logging.WARNING, logger="monitor.sink"):
        run_sink(sink)

    good = [T0 + i for i in range(200) if i not in (7, 100, 101)]
    assert [r.started_at for r in stored(engine, "api")] == good  # each once, in order
    assert sink.quarantined == 3
    assert sample(metrics, "primewatch_results_quarantined_total") == 3
    assert sample(metrics, "primewatch_results_written_total") == 197
    # Refused data is no outage: storage stays up, nothing is retried or buffered.
    assert sample(metrics, "primewatch_storage_up") == 1
    assert sample(metrics, "primewatch_storage_write_errors_total") == 0
    assert sink.storage_ok and sink.pending == 0 and sink.dropped == 0
    # The rollups agree with the stored rows: the refused rows' transactions rolled back.
    with engine.connect() as connection:
        total = connection.execute(text(
            "SELECT SUM(total) FROM slo_rollups WHERE slo = 'api-availability' "
            "AND resolution = 60")).scalar_one()
    assert total == 197
    told = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(told) == 1  # once per target, not once per refused row
    assert "'api'" in told[0] and "IntegrityError" in told[0]
    assert MARK not in caplog.text and "qzxv" not in caplog.text  # never the payload


def test_an_outage_while_isolating_keeps_the_rest_and_writes_each_once(
        engine: Engine, tmp_path: Path) -> None:
    """Storage goes down halfway through the search for a refused row: what was written
    stays written, the rest is retried (buffer) or replayed from past the stored part
    (spill file), and no result is written twice."""
    refuse_marked_rows(engine)
    writer = ResultWriter(engine, make_settings().slos)
    calls = {"n": 0}

    def down_once_while_splitting(batch: Sequence[ProbeResult]) -> None:
        calls["n"] += 1
        # Writes 1-10 of a 40-row batch refused at row 5 find and quarantine it and store
        # rows 0-19; write 11 (rows 20-39) meets the outage, the retry stores them.
        if calls["n"] == 11:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
        writer(batch)

    buffered = results(40, target="buffered")
    buffered[5] = refused(5, "buffered")
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, 10 * 1024**2)
    spilled = results(40, target="spilled")
    spilled[5] = refused(5, "spilled")
    assert spill.append(spilled) == 40
    good = [T0 + i for i in range(40) if i != 5]

    for target, spill_file in (("buffered", None), ("spilled", spill)):
        calls["n"] = 0
        metrics = Metrics(CollectorRegistry())
        sink = new_sink(down_once_while_splitting, metrics, batch_size=40, spill=spill_file)
        if spill_file is None:
            for result in buffered:
                sink.submit(result)
        run_sink(sink, lambda sink: asyncio.sleep(0.3))
        assert [r.started_at for r in stored(engine, target)] == good, target
        assert sink.quarantined == 1 and sink.dropped == 0 and sink.pending == 0
        assert sample(metrics, "primewatch_storage_write_errors_total") == 1
        assert sample(metrics, "primewatch_results_written_total") == 39
    assert not path.exists()


def test_a_poisoned_spill_file_replays_everything_else(engine: Engine,
                                                       tmp_path: Path) -> None:
    refuse_marked_rows(engine)
    path = tmp_path / "spill.jsonl"
    first = SpillFile(path, 10 * 1024**2)
    poisoned = ProbeResult(target="api", started_at=T0 + 10, ok=False, latency=0.01,
                           error="bad\x00value\ud800", values={"v": math.nan},
                           details={"echo": "\x00" * 10})
    assert first.append([*results(10), poisoned, refused(11), *results(20, start=12)]) == 32
    first.close()  # the process that spilled them stopped ...

    again = SpillFile(path, 10 * 1024**2)  # ... and the next one replays its file
    again.open()
    assert again.pending == 32
    metrics = Metrics(CollectorRegistry())
    sink = new_sink(ResultWriter(engine, make_settings().slos), metrics, batch_size=8,
                    spill=again)
    run_sink(sink, lambda sink: asyncio.sleep(0.3))

    rows = stored(engine, "api")
    assert [r.started_at for r in rows] == [T0 + i for i in range(32) if i != 11]
    cleaned = rows[10]
    assert cleaned.error == "bad\ufffdvalue\ufffd" and cleaned.values == {}
    assert cleaned.details == {"echo": "\ufffd" * 10}
    assert sink.quarantined == 1 and sink.dropped == 0
    assert sample(metrics, "primewatch_results_quarantined_total") == 1
    assert sample(metrics, "primewatch_results_replayed_total") == 31
    assert sink.spilled == 0 and not path.exists()  # its offset moved past the poison
    restarted = SpillFile(path, 10 * 1024**2)
    restarted.open()
    assert restarted.pending == 0  # nothing replayed twice after another restart
    restarted.close()


def test_readyz_shows_quarantined_results_while_the_service_stays_ready(
        engine: Engine, tmp_path: Path) -> None:
    refuse_marked_rows(engine)
    routes = {"/ok": answer(b'{"status":"ok"}'),
              "/nul": answer(HOSTILE_BODIES["nul"]),
              "/refused": answer(json.dumps({"status": MARK}).encode())}
    with route_server(routes) as server:
        settings = make_settings(
            storage={"batch_size": 20, "flush_interval": "100ms",
                     "spill_path": str(tmp_path / "spill.jsonl")},
            targets=[{"name": name.strip("/"), "type": "http", "url": f"{server.url}{name}",
                      "interval": "100ms", "timeout": "1s",
                      "expect": {"json": {"status": "ok"}}} for name in routes],
            slos=[{"name": "ok-availability", "target": "ok", "sli": "availability",
                   "objective": 99, "window": "1d"}])
        metrics = Metrics(CollectorRegistry())
        app = create_app(settings, engine, metrics=metrics)
        with serve_asgi_client(app) as client:
            wait_for(lambda: len(stored(engine, "ok")) >= 5 and len(stored(engine, "nul"))
                     >= 5 and sample(metrics, "primewatch_results_quarantined_total") >= 3,
                     30, "healthy and sanitised results stored, refused ones quarantined")
            ready = client.get("/readyz")
            body = ready.json()
            assert ready.status_code == 200 and body["status"] == "ready"
            assert int(body["checks"]["quarantined"]) >= 3
            assert "primewatch_results_quarantined_total" in client.get("/metrics").text
    assert stored(engine, "refused") == []
    assert all("\ufffd" in (r.error or "") for r in stored(engine, "nul"))


def test_outage_errors_are_not_mistaken_for_refused_data() -> None:
    refused_kinds = [UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
                     ValueError("NaN")]
    outages = [OperationalError("INSERT", {}, ConnectionRefusedError("down")),
               ConnectionResetError(), TimeoutError(), OSError("disk")]
    assert all(is_rejection(exc) for exc in refused_kinds)
    assert not any(is_rejection(exc) for exc in outages)
