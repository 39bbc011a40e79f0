"""Database size per target per day: raw results, rollups and indexes, SQLite and PostgreSQL.

The question (issue, "Retention and compaction"): what does one probed target cost the
database per day, and where does the database settle under `storage.retention`?

How: N targets (default 100) probed at the default interval (30 s, `TargetConfig`), each
with the two SLOs a target usually has (availability 99.9 % and latency <= 200 ms 95 %,
30-day windows). One simulated day of https results (log-normal latency, median 50 ms,
sigma 0.25; 0.05 % failures) goes through the real `ResultWriter`: raw rows, minute,
hour and day rollups, latency bins. Then bytes per table and per index:

* SQLite: pages in use per table and index from the `dbstat` virtual table, after
  VACUUM (so free pages don't count); the file size before VACUUM is shown too.
* PostgreSQL: `pg_table_size` (heap + TOAST) and `pg_indexes_size` per table after
  VACUUM ANALYZE (what autovacuum gives a running service; the upserts of hour and day
  rollups leave dead row versions whose space is reused, not returned), and
  `pg_total_relation_size` after VACUUM FULL as the compact figure.

Rollup bytes are split between the minute, hour and day tiers in proportion to their
rows. With --hours under 24 the day tier is one partial day (fewer latency bins than a
whole one): use the default 24 for the figures. The steady state is each tier's
bytes/day times its retention (default raw 14 d, minute 35 d, hour 400 d); day rows are
kept forever and add their bytes/day on top.

    python benchmarks/db_size.py                                  # 100 targets, 1 day, both
    python benchmarks/db_size.py --targets 20 --hours 2 --backends sqlite    # quick check
    python benchmarks/db_size.py --postgres-url postgresql+psycopg://postgres@127.0.0.1/test_h3

PostgreSQL: primewatch's tables in --postgres-url's database are dropped, recreated and
dropped again at the end: point it at a scratch database. It refuses a database whose
tables hold rows unless --wipe.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, inspect, select, text

from monitor.config import Retention, Settings
from monitor.ingest import ResultWriter
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import LatencyBin, SloRollup
from monitor.storage.rollups import DAY, HOUR, MINUTE
from probes.base import ProbeResult, TargetConfig

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the day tier gets one whole day
DEFAULT_INTERVAL = float(TargetConfig.model_fields["interval"].default)
POSTGRES_URL = os.environ.get("PRIMEWATCH_TEST_DATABASE_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RAW, ROLLUPS, BINS = "probe_results", "slo_rollups", "latency_bins"
TIERS = {MINUTE: "minute", HOUR: "hour", DAY: "day"}


def fleet(targets: int, interval: float, *, latency_every: int = 1,
          retention: Retention | None = None) -> Settings:
    """N https targets with an availability SLO each and a latency SLO on every
    `latency_every`-th, 30-day windows."""
    slos: list[dict[str, object]] = []
    for i in range(targets):
        slos.append({"name": f"t{i}-availability", "target": f"t{i}",
                     "sli": "availability", "objective": 99.9, "window": "30d"})
        if i % latency_every == 0:
            slos.append({"name": f"t{i}-latency", "target": f"t{i}", "sli": "latency",
                         "threshold": "200ms", "objective": 95, "window": "30d"})
    return Settings.model_validate({
        "targets": [{"name": f"t{i}", "type": "http", "url": f"https://127.0.0.1:1/t/{i}",
                     "interval": f"{interval:g}s"} for i in range(targets)],
        "slos": slos,
        "storage": {"retention": (retention or Retention()).model_dump()}})


class Fleet:
    """Probe results of every target on its own schedule (a fixed offset per target)."""

    def __init__(self, settings: Settings, *, seed: int = 1, fail: float = 0.0005,
                 outage: Callable[[str, float], bool] = lambda _target, _at: False) -> None:
        self.rng = random.Random(seed)
        self.fail = fail
        self.outage = outage  # (target, time) -> every probe fails
        self.schedule = [(t.name, t.interval, self.rng.uniform(0, t.interval))
                         for t in settings.targets]
        self.region = settings.region

    def between(self, start: float, end: float) -> Iterator[ProbeResult]:
        """Results started in [start, end), target by target."""
        rng = self.rng
        for name, interval, offset in self.schedule:
            first = start + (offset - start) % interval
            for k in range(max(0, math.ceil((end - first) / interval))):
                at = first + k * interval
                ok = rng.random() >= self.fail and not self.outage(name, at)
                yield ProbeResult(
                    target=name, started_at=at, ok=ok,
                    latency=rng.lognormvariate(math.log(0.05), 0.25) if ok else 10.0,
                    region=self.region, status_code=200 if ok else None,
                    error_class=None if ok else "timeout",
                    error=None if ok else "timed out after 10s",
                    cert_days_left=61.5,
                    response_bytes=rng.randint(400, 1200) if ok else None)


def write_span(writer: ResultWriter, results: Fleet, start: float, end: float,
               batch_seconds: float = 300.0) -> int:
    """Write [start, end) through `writer` in batches of `batch_seconds`; returns results."""
    written = 0
    at = start
    while at < end:
        stop = min(end, at + batch_seconds)
        batch = list(results.between(at, stop))
        writer(batch)
        written += len(batch)
        at = stop
    return written


@dataclass
class TableSize:
    rows: int
    table: int  # bytes: heap (PostgreSQL: + TOAST), SQLite: the table b-tree
    indexes: int  # bytes of every index on it (primary keys included)


def table_sizes(engine: Engine) -> dict[str, TableSize]:
    """Rows, table bytes and index bytes of every primewatch table, as stored now."""
    with engine.connect() as connection:
        names = sorted(inspect(connection).get_table_names())
        rows = {n: int(connection.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one())
                for n in names}
        if engine.dialect.name == "sqlite":
            owner: dict[str, str] = dict(connection.execute(text(
                "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")).all())
            sizes = {n: TableSize(rows[n], 0, 0) for n in names}
            for name, size in connection.execute(text(
                    "SELECT name, sum(pgsize) FROM dbstat GROUP BY name")):
                table = owner.get(name)
                if table in sizes:
                    if name == table:
                        sizes[table].table += int(size)
                    else:
                        sizes[table].indexes += int(size)
            return sizes
        return {n: TableSize(rows[n], *(int(v) for v in connection.execute(text(
            f"SELECT pg_table_size('{n}'), pg_indexes_size('{n}')")).one())) for n in names}


def tier_rows(engine: Engine) -> dict[str, dict[int, int]]:
    """Rollup and bin rows per resolution."""
    found: dict[str, dict[int, int]] = {}
    with engine.connect() as connection:
        for name, model in ((ROLLUPS, SloRollup), (BINS, LatencyBin)):
            found[name] = {int(r): int(c) for r, c in connection.execute(
                select(model.resolution, func.count()).group_by(model.resolution))}
    return found


def compact(engine: Engine, *, full: bool) -> None:
    """SQLite: VACUUM. PostgreSQL: VACUUM ANALYZE, or VACUUM FULL."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            if full:
                connection.execute(text("VACUUM"))
        else:
            connection.execute(text("VACUUM FULL ANALYZE" if full else "VACUUM ANALYZE"))


@dataclass
class Figures:
    """Bytes per target per day by kind, from one measured span."""

    backend: str
    per_target_day: dict[str, float]  # raw, raw idx, minute, hour, day (rollups + bins)
    rows_per_target_day: dict[str, float]
    extra: str  # a note line for the table


def measure(engine: Engine, backend: str, settings: Settings, hours: float,
            seed: int) -> Figures:
    upgrade(engine)
    writer = ResultWriter(engine, settings.slos)
    started = time.monotonic()
    written = write_span(writer, Fleet(settings, seed=seed), T0, T0 + hours * HOUR)
    took = time.monotonic() - started
    compact(engine, full=False)
    loose = table_sizes(engine)
    if backend == "sqlite":
        database = engine.url.database or ""
        note = f"file before VACUUM {os.path.getsize(database) / 1e6:,.1f} MB"
        compact(engine, full=True)
        sizes = table_sizes(engine)
        note += f", after {os.path.getsize(database) / 1e6:,.1f} MB"
    else:
        sizes = loose
        compact(engine, full=True)
        tight = table_sizes(engine)
        note = (f"after VACUUM FULL: {sum(s.table + s.indexes for s in tight.values()) / 1e6:,.1f}"
                f" MB vs {sum(s.table + s.indexes for s in sizes.values()) / 1e6:,.1f} MB")
    tiers = tier_rows(engine)
    scale = len(settings.targets) * hours / 24  # target-days measured
    per: dict[str, float] = {"raw": sizes[RAW].table / scale, "raw idx": sizes[RAW].indexes / scale}
    rows: dict[str, float] = {"raw": sizes[RAW].rows / scale}
    for resolution, tier in TIERS.items():
        share = 0.0
        count = 0
        for name in (ROLLUPS, BINS):
            total = sum(tiers[name].values()) or 1
            part = tiers[name].get(resolution, 0)
            share += (sizes[name].table + sizes[name].indexes) * part / total
            count += part
        # One day bucket per SLO per started day, however few hours were written.
        days = len(settings.targets) * math.ceil(hours / 24) if resolution == DAY else scale
        per[tier] = share / days
        rows[tier] = count / days
    note = (f"{written:,} results in {took:.0f} s ({written / took:,.0f}/s through "
            f"ResultWriter); {note}")
    return Figures(backend, per, rows, note)


def print_report(figures: Sequence[Figures], settings: Settings, hours: float) -> None:
    retention = settings.storage.retention
    slos = len(settings.slos)
    targets = len(settings.targets)
    interval = settings.targets[0].interval
    print(f"\n{targets} targets every {interval:g} s, {slos} SLOs "
          f"({slos / targets:g} per target), {hours:g} h simulated; bytes per target per day")
    kinds = ["raw", "raw idx", "minute", "hour", "day"]
    print(f"{'backend':<11}|" + "".join(f"{k:>10} |" for k in kinds) + f"{'total':>10} |"
          + f"{'steady state':>14}")
    kept = {"raw": retention.raw, "raw idx": retention.raw, "minute": retention.minute,
            "hour": retention.hour, "day": 0.0}
    for f in figures:
        total = sum(f.per_target_day.values())
        steady = sum(f.per_target_day[k] * kept[k] / DAY for k in kinds)
        print(f"{f.backend:<11}|" + "".join(f"{_size(f.per_target_day[k]):>10} |" for k in kinds)
              + f"{_size(total):>10} |{_size(steady):>14}")
    rows = figures[0].rows_per_target_day
    print(f"{'rows':<11}|" + "".join(f"{rows.get(k, 0):>10,.0f} |" if k != "raw idx" else
                                     f"{'':>10} |" for k in kinds))
    print(f"\nsteady state = bytes/day x retention per kind (raw {retention.raw / DAY:g} d, "
          f"minute {retention.minute / DAY:g} d, hour {retention.hour / DAY:g} d), per target; "
          "day rows are kept forever: + the 'day' column per further day")
    for f in figures:
        steady = sum(f.per_target_day[k] * kept[k] / DAY for k in kinds)
        parts = ", ".join(f"{k} {_size(f.per_target_day[k] * kept[k] / DAY)}"
                          for k in kinds if kept[k])
        print(f"{f.backend}: per target {parts}; {_size(steady * targets)} for these "
              f"{targets} targets, {_size(steady * 1000)} for 1,000")


def _size(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def drop_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for name in inspect(connection).get_table_names():
            connection.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL,
                        help=f"probe interval in seconds (default {DEFAULT_INTERVAL:g}, "
                             "the config default)")
    parser.add_argument("--hours", type=float, default=24.0,
                        help="simulated hours written (default 24)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help="a scratch database: its primewatch tables are dropped")
    parser.add_argument("--wipe", action="store_true",
                        help="drop tables in --postgres-url's database even if they hold rows")
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args(argv)
    settings = fleet(opts.targets, opts.interval)
    figures: list[Figures] = []
    for backend in opts.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="primewatch-dbsize-") as tmp:
                engine = make_engine(f"sqlite:///{tmp}/size.db")
                figures.append(measure(engine, "sqlite", settings, opts.hours, opts.seed))
                engine.dispose()
        elif backend == "postgresql":
            engine = make_engine(opts.postgres_url)
            with engine.connect() as connection:
                names = inspect(connection).get_table_names()
                held = sum(int(connection.execute(text(f'SELECT count(*) FROM "{n}"'))
                               .scalar_one()) for n in names if n != "alembic_version")
            if held and not opts.wipe:
                print(f"error: {engine.url.render_as_string()} holds {held:,} rows; "
                      "use a scratch database or pass --wipe", file=sys.stderr)
                return 2
            drop_tables(engine)
            try:
                figures.append(measure(engine, "postgresql", settings, opts.hours, opts.seed))
            finally:
                drop_tables(engine)
                engine.dispose()
        else:
            parser.error(f"unknown backend {backend!r}")
        print(f"{backend}: {figures[-1].extra}", flush=True)
    print_report(figures, settings, opts.hours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
