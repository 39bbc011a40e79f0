"""The result sink: batching, retry after storage errors, bounded buffer with counted drops,
and the spill file that keeps results past the buffer through an outage and a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.sink import ResultSink
from monitor.spill import SpillFile, decode, default_path, encode, open_spill
from monitor.storage import repository
from probes.base import ProbeResult
from tests.conftest import make_settings

T0 = 1_767_225_600.0


def results(count: int, start: int = 0) -> list[ProbeResult]:
    return [ProbeResult(target="api", started_at=T0 + i, ok=True, latency=0.01)
            for i in range(start, start + count)]


class FlakyStorage:
    """A real writer behind a switch that makes the database 'unreachable'."""

    def __init__(self, writer: ResultWriter) -> None:
        self.writer = writer
        self.down = False
        self.batches: list[int] = []
        self.failures = 0

    def __call__(self, batch: Sequence[ProbeResult]) -> None:
        if self.down:
            self.failures += 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
        self.writer(batch)
        self.batches.append(len(batch))


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


def test_results_are_written_in_batches(engine: Engine) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> None:
        sink = ResultSink(storage, metrics, batch_size=100, flush_interval=0.05)
        task = asyncio.create_task(sink.run())
        for result in results(1000):
            sink.submit(result)
        await asyncio.sleep(0.3)
        sink.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert repository.count_results(engine) == 1000
    assert max(storage.batches) <= 100
    assert len(storage.batches) < 1000 / 10  # batched, not one write per result
    assert sample(metrics, "primewatch_results_written_total") == 1000


def test_storage_outage_is_retried_and_nothing_is_lost(engine: Engine) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> ResultSink:
        sink = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02,
                          max_backoff=0.05)
        task = asyncio.create_task(sink.run())
        storage.down = True
        for result in results(300):
            sink.submit(result)
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)
        assert repository.count_results(engine) == 0
        assert sink.pending == 300
        storage.down = False
        sink.close()
        await asyncio.wait_for(task, 10)
        return sink

    sink = asyncio.run(scenario())
    assert storage.failures >= 2
    assert repository.count_results(engine) == 300
    assert sink.dropped == 0 and sink.pending == 0
    assert sample(metrics, "primewatch_storage_write_errors_total") == storage.failures
    # Every result written exactly once, in order of arrival.
    page = repository.results_page(engine, "api", since=None, before_id=None, limit=1000)
    assert sorted(r.result.started_at for r in page) == [T0 + i for i in range(300)]


def test_full_buffer_drops_oldest_and_counts_every_drop(engine: Engine) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    storage.down = True
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> ResultSink:
        sink = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02,
                          max_buffer=200, max_backoff=0.05)
        task = asyncio.create_task(sink.run())
        for result in results(500):
            sink.submit(result)
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        storage.down = False
        sink.close()
        await asyncio.wait_for(task, 10)
        return sink

    sink = asyncio.run(scenario())
    written = repository.count_results(engine)
    assert sink.dropped == 300
    assert written == 200
    assert written + sink.dropped == 500
    assert sample(metrics, "primewatch_results_dropped_total") == 300
    newest = repository.results_page(engine, "api", since=None, before_id=None, limit=1)
    assert newest[0].result.started_at == T0 + 499  # the newest results are the ones kept


def test_shutdown_retries_for_its_grace_period_then_reports_what_is_lost(
        engine: Engine) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    storage.down = True
    metrics = Metrics(CollectorRegistry())

    async def scenario() -> ResultSink:
        sink = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02,
                          max_buffer=1000, max_backoff=0.05, shutdown_grace=0.3)
        task = asyncio.create_task(sink.run())
        for result in results(20):
            sink.submit(result)
        sink.close()  # storage never comes back
        await asyncio.wait_for(task, 10)
        return sink

    sink = asyncio.run(scenario())
    assert storage.failures >= 3  # it kept trying after close ...
    assert sink.pending == 20  # ... and says what it could not write
    assert repository.count_results(engine) == 0


# --- the spill file: past the buffer, results wait on disk -----------------------------

def stored_keys(engine: Engine) -> list[float]:
    page = repository.results_page(engine, "api", since=None, before_id=None, limit=100_000)
    return sorted(r.result.started_at for r in page)


def run_outage(sink: ResultSink, storage: FlakyStorage, produced: list[ProbeResult],
               *, recover: bool = True, during: Callable[[], None] = lambda: None) -> None:
    """Submit `produced` while storage is down, call `during`, then (optionally) bring
    storage back and close the sink once it has nothing left to write."""

    async def scenario() -> None:
        task = asyncio.create_task(sink.run())
        storage.down = True
        for result in produced:
            sink.submit(result)
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        during()
        storage.down = not recover
        sink.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def run_for(sink: ResultSink, seconds: float) -> None:
    """Run `sink` (storage up) for `seconds`, then close it and wait until it returns."""

    async def scenario() -> None:
        task = asyncio.create_task(sink.run())
        await asyncio.sleep(seconds)
        sink.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_a_full_buffer_spills_to_disk_and_every_result_is_written_once(
        engine: Engine, tmp_path: Path) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    metrics = Metrics(CollectorRegistry())
    spill = SpillFile(tmp_path / "spill.jsonl", 10 * 1024**2)
    sink = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02, max_buffer=100,
                      max_backoff=0.05, spill=spill)
    during: dict[str, float] = {}

    def look() -> None:
        for name in ("primewatch_spill_bytes", "primewatch_spill_results",
                     "primewatch_storage_up", "primewatch_results_buffered"):
            during[name] = sample(metrics, name)

    run_outage(sink, storage, results(1000), during=look)
    assert during["primewatch_storage_up"] == 0
    assert during["primewatch_results_buffered"] == 100  # the buffer stayed bounded ...
    assert during["primewatch_spill_results"] == 900  # ... the rest went to disk
    assert during["primewatch_spill_bytes"] == 900 * len(encode(results(1)[0]))
    assert stored_keys(engine) == [T0 + i for i in range(1000)]  # all, each once
    assert sink.dropped == 0 and sink.pending == 0 and sink.spilled == 0
    spilled = sample(metrics, "primewatch_results_spilled_total")
    assert spilled >= 900  # everything the buffer could not hold
    assert sample(metrics, "primewatch_results_replayed_total") == spilled
    assert sample(metrics, "primewatch_results_written_total") == 1000
    assert sample(metrics, "primewatch_spill_bytes") == 0  # the file is gone
    assert sample(metrics, "primewatch_spill_results") == 0
    assert sample(metrics, "primewatch_storage_up") == 1
    assert not spill.path.exists()


def test_past_the_spill_cap_the_oldest_are_dropped_counted_and_logged_once(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    metrics = Metrics(CollectorRegistry())
    record_size = len(encode(results(1)[0]))
    spill = SpillFile(tmp_path / "spill.jsonl", 200 * record_size + record_size // 2)
    sink = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02, max_buffer=100,
                      max_backoff=0.05, spill=spill)
    with caplog.at_level(logging.WARNING, logger="monitor.sink"):
        run_outage(sink, storage, results(1000))
    written = stored_keys(engine)
    assert len(written) == len(set(written)) == 1000 - sink.dropped
    assert 0 < sink.dropped <= 1000 - 300  # the buffer's 100 and the file's 200 survive
    assert sample(metrics, "primewatch_results_dropped_total") == sink.dropped
    drops = [r for r in caplog.records if "dropping probe results" in r.getMessage()]
    assert len(drops) == 1  # once per outage, not once per result


def test_results_spilled_before_a_crash_are_written_by_the_next_process(
        engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    first = SpillFile(path, 10 * 1024**2)
    sink = ResultSink(storage, Metrics(CollectorRegistry()), batch_size=50,
                      flush_interval=0.02, max_buffer=100, max_backoff=0.05, spill=first)

    async def crash() -> None:
        task = asyncio.create_task(sink.run())
        storage.down = True
        for result in results(500):
            sink.submit(result)
        await asyncio.sleep(0.1)
        task.cancel()  # the buffer goes to the spill file too ...
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(crash())
    first.close()  # ... and the process dies, which releases its lock
    with path.open("ab") as file:
        file.write(encode(results(1, start=999)[0])[:40])  # a record torn mid-append
    storage.down = False
    second = SpillFile(path, 10 * 1024**2)
    second.open()
    assert second.pending == 500
    metrics = Metrics(CollectorRegistry())
    assert sample(metrics, "primewatch_spill_results") == 0
    restarted = ResultSink(storage, metrics, batch_size=50, flush_interval=0.02,
                           max_backoff=0.05, spill=second)
    assert sample(metrics, "primewatch_spill_results") == 500

    run_for(restarted, 0.3)
    assert stored_keys(engine) == [T0 + i for i in range(500)]
    assert not path.exists()


def test_a_crash_during_replay_resumes_at_the_saved_offset(
        engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    spill = SpillFile(path, 10 * 1024**2)
    assert spill.append(results(300)) == 300
    batch = spill.read(120)  # what a replay stores first ...
    storage(batch.results)
    spill.save_offset(batch.end)  # ... and records, before the process dies
    spill.close()
    again = SpillFile(path, 10 * 1024**2)
    again.open()
    assert again.pending == 180
    sink = ResultSink(storage, Metrics(CollectorRegistry()), batch_size=50,
                      flush_interval=0.02, spill=again)

    run_for(sink, 0.2)
    assert stored_keys(engine) == [T0 + i for i in range(300)]  # none twice


def test_shutdown_during_an_outage_keeps_the_buffer_for_the_next_start(
        engine: Engine, tmp_path: Path) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    spill = SpillFile(tmp_path / "spill.jsonl", 10 * 1024**2)
    sink = ResultSink(storage, Metrics(CollectorRegistry()), batch_size=50,
                      flush_interval=0.02, max_backoff=0.05, shutdown_grace=0.2, spill=spill)
    run_outage(sink, storage, results(40), recover=False)
    assert sink.pending == 0 and sink.spilled == 40  # nothing lost, nothing written
    assert repository.count_results(engine) == 0
    spill.close()
    storage.down = False
    again = SpillFile(spill.path, 10 * 1024**2)
    again.open()
    restarted = ResultSink(storage, Metrics(CollectorRegistry()), flush_interval=0.02,
                           spill=again)

    run_for(restarted, 0.2)
    assert stored_keys(engine) == [T0 + i for i in range(40)]


def test_an_unreadable_record_is_skipped_and_counted_not_retried_forever(
        engine: Engine, tmp_path: Path) -> None:
    storage = FlakyStorage(ResultWriter(engine, make_settings().slos))
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, 10 * 1024**2)
    spill.append(results(10))
    spill.close()
    with path.open("ab") as file:
        file.write(b'{"v":1,"target":["not","a","name"]}\n')  # e.g. written by a bug
    again = SpillFile(path, 10 * 1024**2)
    again.open()
    again.append(results(10, start=10))
    metrics = Metrics(CollectorRegistry())
    sink = ResultSink(storage, metrics, flush_interval=0.02, spill=again)

    run_for(sink, 0.2)
    assert stored_keys(engine) == [T0 + i for i in range(20)]
    assert sink.dropped == 1
    assert sample(metrics, "primewatch_results_dropped_total") == 1


def test_spill_records_round_trip_every_field() -> None:
    result = ProbeResult(target="api", started_at=T0 + 0.123456789, ok=False, latency=1e-6,
                         region="eu", status_code=503, error_class="http_status",
                         error='line one\nline "two"', cert_days_left=12.5,
                         response_bytes=42, values={"cold_start": 1.0},
                         counts={"warm": (0.0, 1.0)}, details={"ip": "127.0.0.1"})
    line = encode(result)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert decode(line) == result


def test_two_processes_never_share_one_spill_file(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    owner = SpillFile(path, 1024**2)
    assert owner.append(results(5)) == 5
    other = SpillFile(path, 1024**2)  # another process, same working directory
    other.open()
    assert other.pending == 0 and other.append(results(5)) == 0 and not other.usable
    owner.close()


def test_spill_config_defaults_next_to_sqlite_else_the_working_directory(
        tmp_path: Path) -> None:
    assert default_path(f"sqlite:///{tmp_path}/pw.db") == tmp_path / "pw.db-spill.jsonl"
    assert default_path("sqlite:///data/pw.db") == Path("data/pw.db-spill.jsonl")
    assert default_path("sqlite://") == Path("primewatch-spill.jsonl")  # in memory
    assert default_path("postgresql://pw@db/pw") == Path("primewatch-spill.jsonl")
    storage = make_settings(storage={"url": f"sqlite:///{tmp_path}/pw.db",
                                     "spill_max_bytes": "64MiB"}).storage
    assert storage.spill_max_bytes == 64 * 1024**2
    spill = open_spill(storage)
    assert spill is not None and spill.path == tmp_path / "pw.db-spill.jsonl"
    assert not spill.path.exists()  # nothing is written until something spills
    assert open_spill(make_settings(storage={"spill_max_bytes": 0}).storage) is None
