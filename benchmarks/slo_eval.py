"""SLO evaluation cost: primewatch's rollup reads against a naive scan of raw results.

The question: with 100 targets probed every 10 s and 100 SLOs (30-day windows plus the
5m..3d burn windows), does a full evaluation — `SloEngine(engine).evaluate(slos, now)`,
every SLO and every window — stay under 100 ms as data grows from 1 to 30 days, on
SQLite and on PostgreSQL? And what would the same SLIs and burn rates cost read from raw
rows (`SELECT count(*), sum(ok) ... WHERE started_at >= ...`, one grouped query per
window, the shape primewatch's own queries have)?

Why data is generated instead of ingested: pushing 25.9 M ProbeResults through
`ResultWriter` takes hours. The samples are drawn with numpy (10 s grid, per-target
offsets, rare random failures, a few all-bad minutes per target and day, log-normal
latencies) and their minute, hour and day rollups and latency bins are derived exactly as
ingest would and bulk-inserted (executemany on SQLite; COPY, plus a staging table for the
tiers that need add-on-conflict, on PostgreSQL). `--check-generator` (on by default)
first writes a small sample through the real `ResultWriter` and asserts that the
generated rollup and bin rows equal the ones ingest wrote.

Data grows backwards from a fixed `now`, step by step (1, 7, 14, 30 days by default):
each step adds the older days and is measured before the next is added. Raw rows are
written at full density (100 targets × 8,640 a day) for the newest `--raw-days` days;
for longer spans the naive time is extrapolated from the largest fully measured span by
rows read, and the table says so.

    python benchmarks/slo_eval.py                                    # the full run
    python benchmarks/slo_eval.py --days 1 --slos 20 --repeat 3      # a quick check
    python benchmarks/slo_eval.py --backends sqlite --raw-days 30    # measure 30 d raw

Writes JSON to benchmarks/results/slo_eval-<timestamp>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, and_, bindparam, func, or_, select, text
from sqlalchemy.engine import make_url

from monitor.config_slo import SloConfig
from monitor.ingest import ResultWriter
from monitor.slo_engine import SloEngine, plan
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import LatencyBin, SloRollup
from probes.base import ProbeResult
from slo.budget import burn_rate, sli
from slo.sketch import GAMMA
from slo.windows import split_by_resolution

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GOAL_MS = 100.0
INTERVAL = 10
TICK = 30.0  # seconds between evaluations: alerting.evaluate_every's default
PER_MINUTE = 60 // INTERVAL
MINUTES = 1440
DAY, HOUR, MINUTE = 86400, 3600, 60
THRESHOLD = 0.1  # latency SLOs: good when ok and latency <= 100 ms
FAIL_P = 0.0005  # a random failed probe
BAD_MINUTES = 1.5  # mean all-failed minutes per target and day (Poisson)
TIMEOUT = 2.0
BIN_OFFSET = 1 << 19
LOG_GAMMA = math.log(GAMMA)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DB = "primewatch_bench"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a full SLO evaluation (all SLOs, all windows) over 1..30 days of "
                    "10-second data against a naive scan of raw rows, on SQLite and "
                    "PostgreSQL. Goal: full evaluation < 100 ms.")
    parser.add_argument("--days", default="1,7,14,30",
                        help="data spans to measure, in days, ascending (default 1,7,14,30)")
    parser.add_argument("--slos", type=int, default=100,
                        help="SLOs, one per target (default 100: 60 availability 30d, "
                             "30 latency 30d, 10 availability calendar month)")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed evaluations per step after one warm-up (default 7)")
    parser.add_argument("--naive-repeat", type=int, default=3,
                        help="timed naive scans per step (default 3)")
    parser.add_argument("--raw-days", type=int, default=7,
                        help="write raw rows at full density for the newest N days "
                             "(default 7); longer spans extrapolate the naive time")
    parser.add_argument("--latency-sigma", type=float, default=0.25,
                        help="log-normal sigma of probe latency (median 50 ms); wider "
                             "spreads mean more histogram bins to read (default 0.25)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help=f"server to create the scratch database {BENCH_DB!r} on "
                             "(dropped at the end)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-check-generator", dest="check_generator", action="store_false",
                        help="skip comparing generated rollups with ResultWriter's")
    parser.add_argument("--tag", default="", help="suffix for the JSON file name")
    opts = parser.parse_args(argv)
    try:
        opts.day_list = sorted({int(d) for d in opts.days.split(",") if d.strip()})
    except ValueError:
        parser.error(f"--days: expected comma-separated whole days, got {opts.days!r}")
    if not opts.day_list or opts.day_list[0] < 1:
        parser.error("--days: give at least one span of 1 day or more")
    opts.backend_list = [b.strip() for b in opts.backends.split(",") if b.strip()]
    unknown = set(opts.backend_list) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"--backends: unknown {', '.join(sorted(unknown))}")
    if opts.slos < 1 or opts.repeat < 1 or opts.naive_repeat < 1:
        parser.error("--slos, --repeat and --naive-repeat must be at least 1")
    return opts


# ---------------------------------------------------------------- SLOs and data


@dataclass(frozen=True, slots=True)
class Fleet:
    """The SLOs, one per target, and which of them count latency."""

    slos: list[SloConfig]
    latency: np.ndarray  # bool per target

    @property
    def targets(self) -> list[str]:
        return [s.target for s in self.slos]


def build_fleet(count: int) -> Fleet:
    """60% availability 30d, 30% latency 30d, 10% availability over the calendar month."""
    slos = []
    for i in range(count):
        kind = i % 10
        spec: dict[str, Any] = {"name": f"slo-{i:03d}", "target": f"t{i:03d}",
                                "sli": "availability", "objective": 99.9, "window": "30d"}
        if kind in (1, 4, 7):
            spec.update(sli="latency", threshold="100ms", objective=99)
        elif kind == 9:
            spec.update(window="month")
        slos.append(SloConfig.model_validate(spec))
    return Fleet(slos, np.array([s.sli == "latency" for s in slos]))


@dataclass
class Chunk:
    """One day of generated data: rows per table, as ingest would have produced them."""

    minutes: list[tuple[Any, ...]] = field(default_factory=list)  # no conflicts possible
    tiers: list[tuple[Any, ...]] = field(default_factory=list)  # hour/day: add on conflict
    minute_bins: list[tuple[Any, ...]] = field(default_factory=list)
    tier_bins: list[tuple[Any, ...]] = field(default_factory=list)
    raw: list[tuple[Any, ...]] = field(default_factory=list)


def generate_day(rng: np.random.Generator, fleet: Fleet, start: int, *, raw: bool,
                 sigma: float, minutes: int = MINUTES) -> Chunk:
    """Samples of every target over `minutes` minutes from `start` (minute-aligned)."""
    count = len(fleet.slos)
    samples = minutes * PER_MINUTE
    ok = rng.random((count, samples)) >= FAIL_P
    for i, bad in enumerate(rng.poisson(BAD_MINUTES * minutes / MINUTES, count)):
        for minute in rng.integers(0, minutes, bad):
            ok[i, minute * PER_MINUTE:(minute + 1) * PER_MINUTE] = False
    latency = rng.lognormal(math.log(0.05), sigma, (count, samples))
    latency[~ok] = TIMEOUT
    good = np.where(fleet.latency[:, None], ok & (latency <= THRESHOLD), ok)
    per_minute = good.reshape(count, minutes, PER_MINUTE).sum(axis=2)
    starts = start + MINUTE * np.arange(minutes, dtype=np.int64)
    names = [s.name for s in fleet.slos]
    chunk = Chunk()
    for i, name in enumerate(names):
        chunk.minutes.extend(zip([name] * minutes, [MINUTE] * minutes, starts.tolist(),
                                 per_minute[i].tolist(), [PER_MINUTE] * minutes,
                                 strict=True))
    bins = np.ceil(np.log(latency) / LOG_GAMMA).astype(np.int64)  # slo.sketch.bin_index
    sample_minute = np.repeat(np.arange(minutes), PER_MINUTE)
    for resolution in (MINUTE, HOUR, DAY):
        keys = starts - starts % resolution
        buckets, first, minute_bucket = np.unique(keys, return_index=True,
                                                  return_inverse=True)
        if resolution != MINUTE:
            sums = np.add.reduceat(per_minute, first, axis=1)
            totals = np.add.reduceat(np.full(minutes, PER_MINUTE), first)
            for i, name in enumerate(names):
                chunk.tiers.extend((name, resolution, int(b), int(g), int(t))
                                   for b, g, t in zip(buckets, sums[i], totals, strict=True))
        # bins hold the latency of successful probes, for availability and latency SLOs
        slot = (np.arange(count)[:, None] * len(buckets) + minute_bucket[sample_minute])
        key = (slot << 20) + bins + BIN_OFFSET
        found, counts = np.unique(key[ok], return_counts=True)
        slots, bin_ids = found >> 20, (found & ((1 << 20) - 1)) - BIN_OFFSET
        rows = [(names[s // len(buckets)], resolution, int(buckets[s % len(buckets)]),
                 int(b), int(c))
                for s, b, c in zip(slots.tolist(), bin_ids.tolist(), counts.tolist(),
                                   strict=True)]
        (chunk.minute_bins if resolution == MINUTE else chunk.tier_bins).extend(rows)
    if raw:
        offsets = (np.arange(count) * 7919 % 100) / 10.0  # targets spread over the 10 s
        times = start + INTERVAL * np.arange(samples)[None, :] + offsets[:, None]
        order = np.argsort(times, axis=None, kind="stable")  # as ingest sees them
        target_of = np.repeat(np.arange(count), samples)[order]
        targets = fleet.targets
        chunk.raw = [(targets[t], "local", at, bool(o), lat, 200 if o else None,
                      None if o else "timeout")
                     for t, at, o, lat in zip(target_of.tolist(), times.ravel()[order].tolist(),
                                              ok.ravel()[order].tolist(),
                                              latency.ravel()[order].tolist(), strict=True)]
    return chunk


# ---------------------------------------------------------------- loading


class Loader:
    """Bulk writes of generated chunks; subclasses per backend."""

    def add(self, chunk: Chunk) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Make the database as a long-running service would have it before reads."""

    def close(self) -> None:
        raise NotImplementedError


ROLLUP_COLUMNS = "slo, resolution, bucket_start, good, total"
BIN_COLUMNS = "slo, resolution, bucket_start, bin, count"
RAW_COLUMNS = "target, region, started_at, ok, latency, status_code, error_class"


class SqliteLoader(Loader):
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA synchronous=OFF")

    def add(self, chunk: Chunk) -> None:
        with self.db:
            self.db.executemany(f"INSERT INTO slo_rollups ({ROLLUP_COLUMNS}) "
                                "VALUES (?, ?, ?, ?, ?)", chunk.minutes)
            self.db.executemany(
                f"INSERT INTO slo_rollups ({ROLLUP_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (slo, resolution, bucket_start) DO UPDATE SET "
                "good = good + excluded.good, total = total + excluded.total", chunk.tiers)
            self.db.executemany(f"INSERT INTO latency_bins ({BIN_COLUMNS}) "
                                "VALUES (?, ?, ?, ?, ?)", chunk.minute_bins)
            self.db.executemany(
                f"INSERT INTO latency_bins ({BIN_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (slo, resolution, bucket_start, bin) DO UPDATE SET "
                "count = count + excluded.count", chunk.tier_bins)
            if chunk.raw:
                self.db.executemany(f"INSERT INTO probe_results ({RAW_COLUMNS}) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?)", chunk.raw)

    def settle(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.db.close()


class PostgresLoader(Loader):
    def __init__(self, conninfo: str) -> None:
        import psycopg
        self.db = psycopg.connect(conninfo, autocommit=True)
        self.db.execute("CREATE TEMP TABLE stage_rollups (LIKE slo_rollups)")
        self.db.execute("CREATE TEMP TABLE stage_bins (LIKE latency_bins)")

    def _copy(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        with self.db.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def add(self, chunk: Chunk) -> None:
        with self.db.transaction():
            self._copy("slo_rollups", ROLLUP_COLUMNS, chunk.minutes)
            self._copy("latency_bins", BIN_COLUMNS, chunk.minute_bins)
            self._copy("stage_rollups", ROLLUP_COLUMNS, chunk.tiers)
            self._copy("stage_bins", BIN_COLUMNS, chunk.tier_bins)
            self.db.execute(
                f"INSERT INTO slo_rollups ({ROLLUP_COLUMNS}) SELECT {ROLLUP_COLUMNS} "
                "FROM stage_rollups ON CONFLICT (slo, resolution, bucket_start) DO UPDATE "
                "SET good = slo_rollups.good + excluded.good, "
                "total = slo_rollups.total + excluded.total")
            self.db.execute(
                f"INSERT INTO latency_bins ({BIN_COLUMNS}) SELECT {BIN_COLUMNS} "
                "FROM stage_bins ON CONFLICT (slo, resolution, bucket_start, bin) DO UPDATE "
                "SET count = latency_bins.count + excluded.count")
            self.db.execute("TRUNCATE stage_rollups, stage_bins")
            if chunk.raw:
                self._copy("probe_results", RAW_COLUMNS, chunk.raw)

    def settle(self) -> None:
        # what autovacuum does for a running service: statistics and visibility map
        self.db.execute("VACUUM ANALYZE")

    def close(self) -> None:
        self.db.close()


@dataclass
class Backend:
    name: str
    engine: Engine
    loader: Loader


@contextmanager
def sqlite_backend() -> Iterator[Backend]:
    with tempfile.TemporaryDirectory(prefix="pw-slo-eval-") as folder:
        path = Path(folder) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        loader = SqliteLoader(path)
        try:
            yield Backend("SQLite", engine, loader)
        finally:
            loader.close()
            engine.dispose()


@contextmanager
def postgres_backend(url: str) -> Iterator[Backend]:
    """A scratch database created for this run and dropped at its end."""
    import psycopg
    parsed = make_url(url)
    admin = psycopg.conninfo.make_conninfo(
        host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
        user=parsed.username or "postgres", password=parsed.password or None,
        dbname=parsed.database or "postgres")
    bench = psycopg.conninfo.make_conninfo(admin, dbname=BENCH_DB)

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")

    drop()  # left over by an interrupted run of this benchmark
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {BENCH_DB}")
    engine = loader = None
    try:
        engine = make_engine(parsed.set(drivername="postgresql+psycopg",
                                        database=BENCH_DB).render_as_string(
                                            hide_password=False))
        upgrade(engine)
        loader = PostgresLoader(bench)
        yield Backend("PostgreSQL", engine, loader)
    finally:
        if loader is not None:
            loader.close()
        if engine is not None:
            engine.dispose()
        drop()


# ---------------------------------------------------------------- measuring


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with 7 samples, p95 is the slowest."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def time_evaluations(engine: Engine, slos: Sequence[SloConfig], now: float, repeat: int
                     ) -> tuple[list[float], list[Any], float]:
    """Ticks as the service runs them: one SloEngine evaluating every `TICK` seconds up
    to `now`. The first tick is cold (nothing cached) and reported on its own; the timed
    ticks cross minute boundaries and re-read what the service would re-read."""
    evaluator = SloEngine(engine)
    first = now - repeat * TICK
    started = time.perf_counter()
    evaluator.evaluate(slos, first)  # cold: connection pool, every range read
    cold_ms = (time.perf_counter() - started) * 1000
    times = []
    statuses: list[Any] = []
    for tick in range(1, repeat + 1):
        started = time.perf_counter()
        statuses = evaluator.evaluate(slos, first + tick * TICK)
        times.append((time.perf_counter() - started) * 1000)
    return times, statuses, cold_ms


def split_timing(engine: Engine, slos: Sequence[SloConfig], now: float, runs: int = 3
                 ) -> dict[str, float]:
    """Where an evaluation's time goes: ms in the count queries (SLIs, burn rates), the
    bin queries (latency percentiles) and the rest; medians of a few instrumented runs."""
    from monitor.storage import rollups
    samples: list[dict[str, float]] = []
    spent: dict[str, float] = defaultdict(float)
    originals = rollups.sum_counts_many, rollups.sum_bins

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += (time.perf_counter() - started) * 1000
        return wrapper

    rollups.sum_counts_many = timed("counts_ms", originals[0])
    rollups.sum_bins = timed("bins_ms", originals[1])
    try:
        for _ in range(runs):
            spent.clear()
            started = time.perf_counter()
            SloEngine(engine).evaluate(slos, now)
            total = (time.perf_counter() - started) * 1000
            counts, bins = spent.get("counts_ms", 0.0), spent.get("bins_ms", 0.0)
            samples.append({"counts_ms": counts, "bins_ms": bins,
                            "other_ms": total - counts - bins})
    finally:
        rollups.sum_counts_many, rollups.sum_bins = originals
    return {key: statistics.median(sample[key] for sample in samples)
            for key in ("counts_ms", "bins_ms", "other_ms")}


def _in_ranges(model: Any, ranges: Sequence[tuple[int, int, int]]) -> Any:
    return or_(*(and_(model.resolution == r, model.bucket_start >= a, model.bucket_start < b)
                 for r, a, b in ranges))


def rows_read(engine: Engine, slos: Sequence[SloConfig], now: float) -> dict[str, int]:
    """Rows the evaluation's queries match: the same spans and predicates, counted."""
    spans: dict[tuple[int, int], set[str]] = defaultdict(set)
    windows: dict[tuple[int, int], set[str]] = defaultdict(set)
    for slo in slos:
        p = plan(slo, now)
        spans[p.window].add(slo.name)
        windows[p.window].add(slo.name)
        for span in p.spans.values():
            spans[span].add(slo.name)
    out = {"rollup_rows": 0, "bin_rows": 0}
    with engine.connect() as connection:
        for span, names in spans.items():
            out["rollup_rows"] += connection.execute(
                select(func.count()).select_from(SloRollup).where(
                    SloRollup.slo.in_(sorted(names)),
                    _in_ranges(SloRollup, split_by_resolution(*span)))).scalar_one()
        for span, names in windows.items():
            out["bin_rows"] += connection.execute(
                select(func.count()).select_from(LatencyBin).where(
                    LatencyBin.slo.in_(sorted(names)),
                    _in_ranges(LatencyBin, split_by_resolution(*span)))).scalar_one()
    return out


NAIVE = text("SELECT target, count(*), sum(CASE WHEN ok THEN 1 ELSE 0 END), "
             "sum(CASE WHEN ok AND latency <= :threshold THEN 1 ELSE 0 END) "
             "FROM probe_results WHERE target IN :targets AND started_at >= :start "
             "AND started_at < :end GROUP BY target").bindparams(
                 bindparam("targets", expanding=True))


def naive_evaluation(engine: Engine, slos: Sequence[SloConfig], now: float
                     ) -> tuple[dict[str, dict[object, tuple[int, int]]], int]:
    """The same windows' SLIs and burn rates from raw rows: one grouped query per window.

    Returns (good, total) per SLO and window ("window" or seconds) and rows matched.
    Percentiles are left out (primewatch reads them from bins): this is a lower bound.
    """
    plans = [plan(slo, now) for slo in slos]
    wanted: dict[tuple[int, int], list[tuple[SloConfig, object]]] = defaultdict(list)
    for p in plans:
        wanted[p.window].append((p.slo, "window"))
        for seconds, span in p.spans.items():
            wanted[span].append((p.slo, seconds))
    counts: dict[str, dict[object, tuple[int, int]]] = defaultdict(dict)
    matched = 0
    with engine.connect() as connection:
        for (start, end), users in wanted.items():
            targets = sorted({slo.target for slo, _ in users})
            found = {row[0]: (int(row[1]), int(row[2] or 0), int(row[3] or 0))
                     for row in connection.execute(NAIVE, {
                         "threshold": THRESHOLD, "start": start, "end": end,
                         "targets": targets})}
            matched += sum(total for total, _, _ in found.values())
            for slo, key in users:
                total, ok, fast = found.get(slo.target, (0, 0, 0))
                good = fast if slo.sli == "latency" else ok
                counts[slo.name][key] = (good, total)
                sli(good, total)
                burn_rate(good, total, slo.objective)
    return counts, matched


def time_naive(engine: Engine, slos: Sequence[SloConfig], now: float, repeat: int
               ) -> tuple[list[float], dict[str, dict[object, tuple[int, int]]], int]:
    times = []
    counts: dict[str, dict[object, tuple[int, int]]] = {}
    matched = 0
    for _ in range(repeat):
        started = time.perf_counter()
        counts, matched = naive_evaluation(engine, slos, now)
        times.append((time.perf_counter() - started) * 1000)
    return times, counts, matched


def expected_raw_rows(slos: Sequence[SloConfig], now: float, data_start: int,
                      data_end: int) -> int:
    """Raw rows the naive queries would match with full-density raw data over the span."""
    total = 0.0
    for slo in slos:
        p = plan(slo, now)
        for start, end in [p.window, *p.spans.values()]:
            total += max(0, min(end, data_end) - max(start, data_start)) / INTERVAL
    return round(total)


def compare(statuses: Sequence[Any], counts: dict[str, dict[object, tuple[int, int]]]
            ) -> list[str]:
    """Where primewatch and the raw scan disagree (must be nowhere)."""
    problems = []
    for status in statuses:
        mine = counts[status.name]
        if (status.good, status.total) != mine["window"]:
            problems.append(f"{status.name} window: rollups {(status.good, status.total)} "
                            f"vs raw {mine['window']}")
        for window in status.windows:
            if (window.good, window.total) != mine[window.seconds]:
                problems.append(f"{status.name} {window.window}: rollups "
                                f"{(window.good, window.total)} vs raw {mine[window.seconds]}")
    return problems


# ---------------------------------------------------------------- the run


def check_generator(opts: argparse.Namespace) -> str:
    """Write two hours of samples through ResultWriter and through the generator (in two
    chunks, so the add-on-conflict path is used) and require identical rollups and bins."""
    fleet = build_fleet(10)
    rng = np.random.default_rng(opts.seed)
    start = int(time.time() // HOUR) * HOUR - 5 * HOUR + 37 * MINUTE  # not hour-aligned
    chunks = [generate_day(rng, fleet, start + i * HOUR, raw=True, sigma=opts.latency_sigma,
                           minutes=60) for i in range(2)]
    with tempfile.TemporaryDirectory(prefix="pw-slo-eval-check-") as folder:
        ingested = make_engine(f"sqlite:///{folder}/ingest.db")
        upgrade(ingested)
        ResultWriter(ingested, fleet.slos)([
            ProbeResult(target, at, ok, latency, region, status_code=code, error_class=error)
            for chunk in chunks for target, region, at, ok, latency, code, error in chunk.raw])
        generated = make_engine(f"sqlite:///{folder}/generated.db")
        upgrade(generated)
        loader = SqliteLoader(Path(folder) / "generated.db")
        for chunk in chunks:
            loader.add(chunk)
        loader.close()
        tables = {}
        for name, engine in (("ingest", ingested), ("generated", generated)):
            with engine.connect() as connection:
                tables[name] = [
                    connection.execute(text(f"SELECT {ROLLUP_COLUMNS} FROM slo_rollups "
                                            "ORDER BY slo, resolution, bucket_start")).all(),
                    connection.execute(text(f"SELECT {BIN_COLUMNS} FROM latency_bins ORDER "
                                            "BY slo, resolution, bucket_start, bin")).all()]
            engine.dispose()
    if tables["ingest"] != tables["generated"]:
        raise SystemExit("generator check FAILED: generated rollups differ from ResultWriter's")
    rollup_rows, bin_rows = (len(t) for t in tables["ingest"])
    return (f"generator check: {rollup_rows} rollup and {bin_rows} bin rows identical to "
            f"ResultWriter's for {sum(len(c.raw) for c in chunks)} results")


def count_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: int(connection.execute(text(f"SELECT count(*) FROM {table}"))
                           .scalar_one())
                for table in ("slo_rollups", "latency_bins", "probe_results")}


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run_backend(backend: Backend, fleet: Fleet, now: float, anchor: int,
                opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Grow the data step by step (older days added) and measure after each step."""
    rng = np.random.default_rng(opts.seed)  # the same data on every backend
    steps: list[dict[str, Any]] = []
    loaded = 0
    for days in opts.day_list:
        started = time.perf_counter()
        for day in range(loaded, days):
            chunk = generate_day(rng, fleet, anchor - (day + 1) * DAY,
                                 raw=day < opts.raw_days, sigma=opts.latency_sigma)
            backend.loader.add(chunk)
        backend.loader.settle()
        load_s = time.perf_counter() - started
        loaded = days
        stored = count_rows(backend.engine)
        log(f"{backend.name}: {days} d loaded in {load_s:.0f} s ({stored}); measuring")
        times, statuses, cold_ms = time_evaluations(backend.engine, fleet.slos, now,
                                                    opts.repeat)
        step: dict[str, Any] = {
            "days": days, "load_s": round(load_s, 1), "stored": stored,
            "eval_ms": [round(t, 2) for t in times],
            "eval_median_ms": statistics.median(times), "eval_p95_ms": percentile(times, 0.95),
            "eval_cold_ms": cold_ms,
            "eval_split": split_timing(backend.engine, fleet.slos, now),
            "rows_read": rows_read(backend.engine, fleet.slos, now),
            "naive_rows_expected": expected_raw_rows(fleet.slos, now, anchor - days * DAY,
                                                     anchor),
        }
        if days <= opts.raw_days:
            naive, counts, matched = time_naive(backend.engine, fleet.slos, now,
                                                opts.naive_repeat)
            problems = compare(statuses, counts)
            if problems:
                raise SystemExit("primewatch and the raw scan disagree:\n  "
                                 + "\n  ".join(problems[:10]))
            step.update(naive_ms=[round(t, 1) for t in naive],
                        naive_median_ms=statistics.median(naive), naive_rows=matched,
                        naive_measured=True, agree=True)
        else:
            basis = next((s for s in reversed(steps) if s.get("naive_measured")), None)
            if basis is not None:
                per_row = basis["naive_median_ms"] / basis["naive_rows"]
                step.update(naive_median_ms=per_row * step["naive_rows_expected"],
                            naive_rows=step["naive_rows_expected"], naive_measured=False,
                            naive_basis_days=basis["days"])
        if step.get("naive_median_ms"):
            step["naive_over_eval"] = step["naive_median_ms"] / step["eval_median_ms"]
        steps.append(step)
        log(f"{backend.name}: {days} d: eval median {step['eval_median_ms']:.1f} ms, "
            f"naive {step.get('naive_median_ms') or float('nan'):.0f} ms")
    return steps


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"


def millions(value: float) -> str:
    return f"{value / 1e6:.2f} M" if value >= 1e5 else f"{value / 1e3:.1f} k"


def render(results: dict[str, list[dict[str, Any]]], opts: argparse.Namespace,
           slos: int) -> str:
    lines = [f"Full SLO evaluation (SloEngine.evaluate: {slos} SLOs, 30d/month windows + "
             f"5m..3d burn windows) vs a naive scan of raw rows; {slos} targets every "
             f"{INTERVAL} s; median of {opts.repeat} evaluations, naive median of "
             f"{opts.naive_repeat}.", ""]
    columns = (("days", 4), ("rollup+bin rows", 15), ("raw rows", 8), ("eval med", 10),
               ("eval p95", 10), ("cold eval", 10), ("counts/bins ms", 14), ("rows hit", 8),
               ("naive scan", 11), ("naive rows", 10), ("naive/eval", 10))
    header = " | ".join(f"{title:>{width}}" for title, width in columns)
    legend = ("  eval med/p95: SloEngine.evaluate on ticks every "
              f"{TICK:.0f} s (settled sums cached, as in the service); cold eval: the "
              "first tick, nothing cached; counts/bins (cold): its ms in count queries (SLIs, "
              "burn rates) / bin queries (latency percentiles); rows hit: rollup + bin rows "
              "inside the queried ranges; naive rows: raw rows the naive queries matched")
    for name, steps in results.items():
        lines += [name, header, "-" * len(header)]
        for s in steps:
            split = s["eval_split"]
            naive = s.get("naive_median_ms")
            mark = "" if s.get("naive_measured") else "~"
            ratio = s.get("naive_over_eval")
            cells = (str(s["days"]),
                     millions(s["stored"]["slo_rollups"] + s["stored"]["latency_bins"]),
                     millions(s["stored"]["probe_results"]), ms(s["eval_median_ms"]),
                     ms(s["eval_p95_ms"]), ms(s["eval_cold_ms"]),
                     f"{split['counts_ms']:,.0f}/{split['bins_ms']:,.0f}",
                     millions(s["rows_read"]["rollup_rows"] + s["rows_read"]["bin_rows"]),
                     "—" if naive is None else mark + ms(naive),
                     millions(s.get("naive_rows") or 0),
                     "—" if ratio is None else f"{mark}{ratio:,.0f}×")
            lines.append(" | ".join(f"{cell:>{width}}"
                                    for cell, (_, width) in zip(cells, columns, strict=True)))
        extrapolated = [s for s in steps if s.get("naive_basis_days")]
        if extrapolated:
            lines.append(f"  ~ extrapolated: raw rows were written for the newest "
                         f"{opts.raw_days} d only; naive ms = ms per raw row read at "
                         f"{extrapolated[0]['naive_basis_days']} d × rows the naive "
                         "queries would read")
        if any(s.get("agree") for s in steps):
            lines.append("  measured steps: every SLO's window and burn-window counts from "
                         "rollups equal the raw scan's")
        lines.append(legend)
        lines.append("")
    return "\n".join(lines)


def verdict(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    worst = {name: max(steps, key=lambda s: s["eval_median_ms"])
             for name, steps in results.items() if steps}
    passed = bool(worst) and all(s["eval_median_ms"] < GOAL_MS for s in worst.values())
    p95_over = [name for name, s in worst.items() if s["eval_p95_ms"] >= GOAL_MS]
    text_ = ("full evaluation < 100 ms: " + ("PASS" if passed else "FAIL") + " — "
             + "; ".join(f"{name} worst median {s['eval_median_ms']:.1f} ms "
                         f"(p95 {s['eval_p95_ms']:.1f} ms) at {s['days']} d"
                         for name, s in worst.items())
             + (f" [p95 at or above 100 ms on {', '.join(p95_over)}]" if p95_over else ""))
    return {"pass": passed, "line": text_}


def environment() -> dict[str, Any]:
    import importlib.metadata
    import subprocess
    versions: dict[str, str | None] = {}
    for package in ("SQLAlchemy", "psycopg", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["sqlite"] = sqlite3.sqlite_version
    commit = subprocess.run(["git", "-C", str(RESULTS_DIR.parent.parent), "rev-parse",
                             "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
            "versions": versions, "git_commit": commit or None}


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    env = environment()
    if opts.check_generator:
        log(check_generator(opts))
    anchor = int(time.time() // MINUTE) * MINUTE  # data ends here ...
    now = anchor + 30.0  # ... and the evaluation runs half a minute later
    fleet = build_fleet(opts.slos)
    results: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for kind in opts.backend_list:
        try:
            context = sqlite_backend() if kind == "sqlite" \
                else postgres_backend(opts.postgres_url)
            with context as backend:
                if kind == "postgresql":
                    with backend.engine.connect() as connection:
                        env["versions"]["postgresql"] = connection.execute(
                            text("SHOW server_version")).scalar_one()
                results[backend.name] = run_backend(backend, fleet, now, anchor, opts)
        except Exception as exc:  # a missing server skips that backend, loudly
            if kind == "postgresql" and type(exc).__name__ == "OperationalError":
                notes.append(f"PostgreSQL skipped: {exc}".splitlines()[0])
                log(notes[-1])
                continue
            raise
    table = render(results, opts, opts.slos)
    decision = verdict(results)
    print(table)
    for note in notes:
        print(note)
    print(decision["line"])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"slo_eval-{stamp}{'-' + opts.tag if opts.tag else ''}.json"
    path.write_text(json.dumps({
        "options": vars(opts), "now": now, "environment": env,
        "results": results, "verdict": decision, "notes": notes, "table": table,
    }, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if decision["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
