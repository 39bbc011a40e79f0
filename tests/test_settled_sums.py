"""Cached sums over settled ranges: same answers as a fresh read, fewer rows read."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.ingest import ResultWriter
from monitor.settled_sums import SettledSums, add_counts, chunked
from monitor.slo_engine import SloEngine
from probes.base import ProbeResult

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86400


def slos() -> list[SloConfig]:
    return [SloConfig.model_validate(data) for data in (
        {"name": "avail", "target": "api", "sli": "availability", "objective": 99,
         "window": "7d"},
        {"name": "fast", "target": "api", "sli": "latency", "threshold": "100ms",
         "objective": 90, "window": "7d"},
    )]


def results(rng: random.Random, start: float, end: float, count: int) -> list[ProbeResult]:
    return [ProbeResult(target="api", started_at=rng.uniform(start, end),
                        ok=rng.random() > 0.05, latency=rng.lognormvariate(-3, 0.8))
            for _ in range(count)]


def comparable(statuses: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(s.name, s.good, s.total, s.budget_remaining,
             tuple((w.seconds, w.good, w.total) for w in s.windows), s.latency)
            for s in statuses]


def test_cached_ticks_equal_a_fresh_evaluation_while_data_arrives(engine: Engine) -> None:
    definitions = slos()
    cached = SloEngine(engine)
    writer = ResultWriter(engine, definitions, on_written=cached.forget)
    rng = random.Random(7)
    writer(results(rng, T0 - 6 * DAY, T0, 3000))
    now = float(T0)
    for _ in range(40):  # 40 ticks of 7 minutes: crosses chunk and hour boundaries
        writer(results(rng, now - 5, now + 420, 60))
        now += 420
        assert comparable(cached.evaluate(definitions, now)) == \
            comparable(SloEngine(engine).evaluate(definitions, now))


def test_a_late_batch_into_settled_history_is_counted_on_the_next_tick(
        engine: Engine) -> None:
    definitions = slos()
    cached = SloEngine(engine)
    writer = ResultWriter(engine, definitions, on_written=cached.forget)
    rng = random.Random(8)
    writer(results(rng, T0 - 3 * DAY, T0, 500))
    before = cached.evaluate(definitions, T0 + 7200.0)[0]
    # A sink that buffered through a database outage flushes results from two days ago.
    writer([ProbeResult(target="api", started_at=T0 - 2 * DAY + 100, ok=False,
                        latency=0.5)] * 7)
    after = cached.evaluate(definitions, T0 + 7230.0)[0]
    assert after.total == before.total + 7
    assert after.good == before.good


def test_settled_ranges_are_read_once_and_open_ones_every_time() -> None:
    reads: list[tuple[str, tuple[int, int, int]]] = []

    def fetch(requests: Sequence[tuple[Sequence[str], tuple[int, int, int]]]
              ) -> list[dict[str, tuple[int, int]]]:
        answers = []
        for names, range_ in requests:
            reads.extend((name, range_) for name in names)
            answers.append({name: (range_[2] - range_[1], range_[2] - range_[1])
                            for name in names})
        return answers

    sums: SettledSums[tuple[int, int]] = SettledSums(fetch, add_counts, lambda: (0, 0))
    span = (T0 - 3 * DAY + 300, T0 + 1800)
    first = sums.sums({span: ["a"]}, now=T0 + 1830.0)
    assert first[span]["a"] == (span[1] - span[0],) * 2
    first_reads = len(reads)
    reads.clear()
    again = sums.sums({span: ["a"]}, now=T0 + 1830.0)
    assert again == first
    # Only the chunks ending within the last 10 minutes are read again.
    assert reads == [("a", (60, T0 + 1200, T0 + 1800))]
    assert first_reads > len(reads)
    sums.forget(since=T0 - 3 * DAY)
    reads.clear()
    sums.sums({span: ["a"]}, now=T0 + 1830.0)
    assert len(reads) == first_reads


def test_minute_ranges_are_cut_at_ten_minute_boundaries() -> None:
    ranges = [(60, T0 + 120, T0 + 1500), (3600, T0 + 3600, T0 + 7200)]
    assert chunked(ranges) == [(60, T0 + 120, T0 + 600), (60, T0 + 600, T0 + 1200),
                               (60, T0 + 1200, T0 + 1500), (3600, T0 + 3600, T0 + 7200)]
