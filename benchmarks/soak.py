"""A simulated 30-day run on a fast clock: is memory flat, does the database stop growing?

The goal from the issue: hundreds of targets for 30 simulated days, RSS at day 30 about
RSS at day 1, and the database bounded by `storage.retention` (it plateaus once the
retention horizon is reached). Retention is shortened (raw 7 d, minute 14 d, hour 21 d
by default; the service's defaults are 14, 35 and 400 d) so the plateau shows within 30
days; day rollups are kept forever and grow by one row per SLO a day.

What runs, all real and in this process, on SQLite, with a `FakeClock`:

* results of N targets (db_size.py's `Fleet`: log-normal latency, rare failures, and a
  30-minute outage of one target a day so incidents open and resolve) go through the
  real `ResultWriter` wired as the runtime wires it (maintenance calendar, the SLO
  engine's `forget`), in batches of --batch simulated minutes;
* every --evaluate-every simulated hours the real `Runtime._evaluate_and_publish`: every
  SLO evaluated (with the engine's caches), alert events, incidents, gauges, and the
  runtime's own hourly prune check. The Runtime is built from `Settings` as `primewatch
  run` builds it, but not started: no probes, scheduler or HTTP server;
* every simulated hour `monitor.retention.prune`, as the runtime schedules it.

Printed at each checkpoint (day 1, 7, 14, 21, 30): RSS after a full collection, rows per
table, pages in use and file size (main file + WAL), and the time the simulated day
took; then day-30/day-1 ratios for RSS and day-30/day-N for the database (the plateau),
the slowest prune pass, and evaluation times. "CPU s" is the CPU time the process spent
on that simulated day (measurement included), so other load on the machine does not
inflate it.

    python benchmarks/soak.py                              # 300 targets, 30 d (~5 min)
    python benchmarks/soak.py --targets 50 --days 10       # quick check (~30 s)
    python benchmarks/soak.py --interval 60 --evaluate-every 1   # full density (over 30 min)

Why the default probe interval is 300 s rather than 60 s: every result costs ~0.1 ms in
`ResultWriter` (classification, raw insert, three rollup tiers), and 300 targets at 60 s
are 13 M results, ~25 minutes. Rollup rows per SLO do not depend on the interval, raw
rows scale with it; the output says which interval ran.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db_size import T0, Fleet, fleet
from measure import status_mb
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect, text

from monitor.clock import FakeClock
from monitor.config import Retention
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.retention import prune
from monitor.runtime import Runtime
from monitor.storage.engine import make_engine, upgrade

DAY, HOUR, MINUTE = 86400, 3600, 60
SHOWN = ("probe_results", "rollups m+h", "bins m+h", "day tier", "alert_events",
         "incidents")  # m+h: minute and hour tiers, pruned; day tier: kept forever


@dataclass
class Checkpoint:
    day: int
    rss_mb: float
    rows: dict[str, int]
    in_use: int  # bytes in pages holding data
    file: int  # bytes of the main file plus the WAL
    day_cpu: float  # CPU seconds the last simulated day took (immune to other load)


@dataclass
class Timings:
    evaluations: list[float] = field(default_factory=list)
    prunes: list[float] = field(default_factory=list)
    pruned: int = 0
    transactions: int = 0
    results: int = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--interval", type=float, default=300.0,
                        help="probe interval, seconds (default 300; see the docstring)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=float, default=30.0,
                        help="simulated minutes per ResultWriter call (default 30)")
    parser.add_argument("--evaluate-every", type=float, default=12.0,
                        help="simulated hours between full evaluations (default 12; the "
                             "service's 30 s would be 86,400 evaluations)")
    parser.add_argument("--raw", type=float, default=7.0, help="raw retention, days")
    parser.add_argument("--minute", type=float, default=14.0, help="minute retention, days")
    parser.add_argument("--hour", type=float, default=21.0, help="hour retention, days")
    parser.add_argument("--latency-every", type=int, default=3,
                        help="a latency SLO on every Nth target (default 3)")
    parser.add_argument("--checkpoints", default="1,7,14,21,30")
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args(argv)
    if opts.batch <= 0 or 1440 % opts.batch:
        parser.error("--batch must divide a day (1440 minutes) so checkpoints fall on days")
    opts.checkpoint_days = sorted({int(d) for d in opts.checkpoints.split(",")
                                   if 0 < int(d) <= opts.days} | {opts.days})
    return opts


def measure_db(engine: Engine, path: Path) -> tuple[dict[str, int], int, int]:
    """Rows per kind (rollups and bins split into the pruned tiers and the day tier kept
    forever), bytes in pages holding data, and bytes on disk."""
    with engine.connect() as connection:
        def count(query: str) -> int:
            return int(connection.execute(text(query)).scalar_one())

        rows = {name: count(f'SELECT count(*) FROM "{name}"')
                for name in inspect(connection).get_table_names()}
        for table, shown in (("slo_rollups", "rollups m+h"), ("latency_bins", "bins m+h")):
            day_rows = count(f"SELECT count(*) FROM {table} WHERE resolution = {DAY}")
            rows[shown] = rows[table] - day_rows
            rows["day tier"] = rows.get("day tier", 0) + day_rows
        pages = count("PRAGMA page_count")
        free = count("PRAGMA freelist_count")
        size = count("PRAGMA page_size")
    wal = path.with_name(path.name + "-wal")
    on_disk = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return rows, (pages - free) * size, on_disk


def run(opts: argparse.Namespace, path: Path) -> tuple[list[Checkpoint], Timings]:
    retention = Retention(raw=opts.raw * DAY, minute=opts.minute * DAY, hour=opts.hour * DAY)
    settings = fleet(opts.targets, opts.interval, latency_every=opts.latency_every,
                     retention=retention)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    clock = FakeClock(T0)
    runtime = Runtime(settings, engine, clock, Metrics(CollectorRegistry()))
    service = runtime.service
    writer = ResultWriter(engine, settings.slos, service.calendar, service.slo_engine.forget)
    unlucky = [t.name for t in settings.targets]

    def outage(target: str, at: float) -> bool:  # one target down 10:00-10:30 each day
        day, second = divmod(at - T0, DAY)
        return 10 * HOUR <= second < 10.5 * HOUR and target == unlucky[int(day) % len(unlucky)]

    results = Fleet(settings, seed=opts.seed, outage=outage)
    timings = Timings()
    checkpoints: list[Checkpoint] = []
    step = opts.batch * MINUTE
    next_prune, next_eval = T0 + HOUR, T0 + opts.evaluate_every * HOUR
    at, day_started = T0, time.process_time()
    while at < T0 + opts.days * DAY:
        batch = list(results.between(at, at + step))
        writer(batch)
        timings.results += len(batch)
        at += step
        clock.set(at)
        if at >= next_prune:
            started = time.monotonic()
            report = prune(engine, retention, at)
            timings.prunes.append(time.monotonic() - started)
            timings.pruned += report.raw + report.minute + report.hour
            timings.transactions += report.transactions
            next_prune += HOUR
        if at >= next_eval:
            started = time.monotonic()
            runtime._evaluate_and_publish()
            timings.evaluations.append(time.monotonic() - started)
            next_eval += opts.evaluate_every * HOUR
        day = round((at - T0) / DAY, 6)
        if day == int(day):
            took = time.process_time() - day_started
            if int(day) in opts.checkpoint_days:
                del batch
                gc.collect()
                rows, in_use, on_disk = measure_db(engine, path)
                checkpoints.append(Checkpoint(int(day), status_mb("VmRSS"), rows, in_use,
                                              on_disk, took))
                print(_line(checkpoints[-1]), flush=True)
            day_started = time.process_time()
    engine.dispose()
    return checkpoints, timings


def _line(c: Checkpoint) -> str:
    rows = "".join(f"{c.rows.get(name, 0):>16,}" for name in SHOWN)
    return (f"{c.day:>4} |{c.rss_mb:>8.1f} |{rows} |{c.in_use / 1e6:>9.1f} |"
            f"{c.file / 1e6:>9.1f} |{c.day_cpu:>7.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alerts").setLevel(logging.ERROR)  # incident lines, one per outage
    slos = opts.targets + len(range(0, opts.targets, opts.latency_every))
    print(f"{opts.targets} targets every {opts.interval:g} s, {slos} SLOs, {opts.days} "
          f"simulated days on SQLite; writes in {opts.batch:g}-minute batches, prune every "
          f"simulated hour, full evaluation every {opts.evaluate_every:g} simulated hours "
          f"(the service evaluates every 30 s; reduced to bound the run time); retention "
          f"raw {opts.raw:g} d, minute {opts.minute:g} d, hour {opts.hour:g} d")
    header = "".join(f"{name:>16}" for name in SHOWN)
    print(f"\n day |  RSS MB |{header} | used MB |  file MB | CPU s")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="primewatch-soak-") as tmp:
        checkpoints, timings = run(opts, Path(tmp) / "soak.db")
    first, last = checkpoints[0], checkpoints[-1]
    print(f"\nRSS day {last.day} / day {first.day}: {last.rss_mb / first.rss_mb:.2f} "
          f"({first.rss_mb:.1f} -> {last.rss_mb:.1f} MB)")
    for c in checkpoints[:-1]:
        ratios = ", ".join(f"{name} {last.rows.get(name, 0) / max(c.rows.get(name, 0), 1):.2f}"
                           for name in SHOWN[:3])
        print(f"day {last.day} / day {c.day}: data in use {last.in_use / c.in_use:.2f}, "
              f"file {last.file / c.file:.2f}; rows {ratios}")
    evaluations = sorted(timings.evaluations)
    print(f"{timings.results:,} results written; pruned {timings.pruned:,} rows in "
          f"{timings.transactions:,} transactions over {len(timings.prunes)} passes "
          f"(slowest pass {max(timings.prunes, default=0) * 1e3:,.0f} ms)")
    if evaluations:
        print(f"{len(evaluations)} full evaluations: median "
              f"{statistics.median(evaluations) * 1e3:,.0f} ms, slowest "
              f"{evaluations[-1] * 1e3:,.0f} ms")
    print(f"run time {time.monotonic() - started:.0f} s, CPU {time.process_time():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
