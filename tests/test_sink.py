"""The result sink: batching, retry after storage errors, bounded buffer with counted drops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.sink import ResultSink
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
