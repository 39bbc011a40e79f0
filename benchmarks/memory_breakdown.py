"""Where primewatch's resident memory goes at N targets, step by step, without probing.

Why: `probe_throughput.py` gives the peak RSS under load, one number. To decide what to
change, the lead needs it split: interpreter and imports, the validated config, the
runtime objects, APScheduler's jobs, the per-target metric children, the SLO statuses
and their gauges. Those are all built here exactly as `Runtime` builds them, for N http
targets with one availability SLO each, and each step's RSS delta is printed (steady
state: every target has one stored result and its metric children, every SLO one
status). No network, no load: the numbers do not depend on what else the machine runs.

    python benchmarks/memory_breakdown.py --targets 5000 [--tracemalloc]

`--tracemalloc` adds the Python-heap size of each step (slower, and it inflates RSS).
In-flight probe state (open sockets, httpx request/response objects, tasks) is not
here: it is what `probe_throughput.py`'s peak RSS adds on top.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from procs import proc_status_mb  # noqa: E402

IMPORTS = ("uvloop", "pydantic", "sqlalchemy", "httpx", "prometheus_client",
           "apscheduler.schedulers.asyncio", "probes", "alembic", "monitor.storage.repository",
           "monitor.runtime")


class Steps:
    """Records RSS (and optionally the traced Python heap) after each named step."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.rows: list[dict[str, Any]] = []
        self.exposition: dict[str, float] = {}
        self.gc: dict[str, float] = {}
        self._rss = proc_status_mb("self", "VmRSS")
        self._traced = 0.0
        self.mark("interpreter")

    def mark(self, name: str) -> None:
        gc.collect()
        rss = proc_status_mb("self", "VmRSS")
        traced = tracemalloc.get_traced_memory()[0] / 2**20 if self.trace else 0.0
        self.rows.append({"step": name, "rss_mb": round(rss, 1),
                          "rss_delta_mb": round(rss - self._rss, 1) if self.rows else None,
                          "traced_delta_mb": round(traced - self._traced, 1)
                          if self.trace else None})
        self._rss, self._traced = rss, traced


async def build(opts: argparse.Namespace, steps: Steps) -> None:
    """Build the runtime step by step, as `Runtime.__init__`/`start` do."""
    import probe_throughput as pt

    from monitor.clock import SystemClock
    from monitor.ingest import ResultWriter
    from monitor.metrics import Metrics
    from monitor.runtime import Runtime
    from monitor.storage.engine import make_engine, upgrade
    from probes.base import ProbeResult

    tmp = Path(tempfile.mkdtemp(prefix="primewatch-mem-"))
    engine = make_engine(f"sqlite:///{tmp / 'mem.db'}")
    upgrade(engine)
    steps.mark("SQLite engine + migrations")
    interval = opts.targets / 400.0
    settings = pt.build_settings(18080, ["http"] * opts.targets, interval, 4.0,
                                 tmp / "mem.db", None, tmp / "unused.sqlite")
    steps.mark(f"Settings: {opts.targets} targets + {opts.targets} SLOs")
    metrics = Metrics()
    runtime = Runtime(settings, engine, SystemClock(), metrics)
    steps.mark("Runtime (probes, client pool, sink, scheduler object)")
    runtime.scheduler.start()
    runtime.scheduler._scheduler.pause()  # jobs exist, none runs: memory only
    steps.mark("APScheduler: one job per target")
    now = time.time()
    results = [ProbeResult(target=t.name, started_at=now, ok=True, latency=0.0012,
                           status_code=200, response_bytes=35) for t in settings.targets]
    for result in results:
        metrics.observe_probe(result)
    steps.mark("metric children: one probe observed per target")
    ResultWriter(engine, settings.slos)(results)
    steps.mark("one stored result per target (SQLite page cache)")
    statuses = await runtime.evaluate_once()
    steps.mark(f"SLO evaluation: {len(statuses)} statuses + their gauges")
    steps.exposition = exposition_cost(metrics.registry)
    steps.mark("one /metrics exposition rendered (and dropped)")
    steps.gc = gc_cost()
    del results
    runtime.scheduler.shutdown()
    await runtime.clients.aclose()
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    with_trim = _malloc_trim()
    steps.mark("after malloc_trim (freed but unreturned heap)" if with_trim
               else "malloc_trim unavailable")


def gc_cost() -> dict[str, float]:
    """How long a full (generation 2) collection takes with everything built.

    Why: CPython runs one whenever enough allocations survive; it walks every tracked
    object with the GIL held, so its duration is a stall of the event loop — a lag spike
    that grows with the number of targets. `gc.freeze()` after start-up moves the
    long-lived objects out of its reach; the second figure shows the effect.
    """
    tracked = len(gc.get_objects())
    begun = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - begun
    gc.freeze()
    begun = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - begun
    gc.unfreeze()
    return {"objects": tracked, "full_ms": round(1000 * full, 1),
            "after_freeze_ms": round(1000 * frozen, 1)}


def exposition_cost(registry: Any) -> dict[str, float]:
    """What one /metrics scrape costs: `monitor/api.py` renders it on the event loop."""
    from prometheus_client import generate_latest

    begun = time.process_time()
    body = generate_latest(registry)
    return {"cpu_s": round(time.process_time() - begun, 3),
            "bytes": len(body), "lines": body.count(b"\n")}


def _malloc_trim() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the traced Python heap per step")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    opts = parser.parse_args(argv)
    if opts.tracemalloc:
        tracemalloc.start(1)
    steps = Steps(opts.tracemalloc)
    for name in IMPORTS:
        importlib.import_module(name)
        steps.mark(f"import {name}")
    import uvloop

    uvloop.run(build(opts, steps))
    steps.rows.append({"step": "peak (VmHWM)", "rss_mb": round(proc_status_mb("self", "VmHWM"), 1),
                       "rss_delta_mb": None, "traced_delta_mb": None})
    if opts.json:
        print(json.dumps({"steps": steps.rows, "exposition": steps.exposition,
                          "gc": steps.gc}, indent=1))
        return 0
    print(f"memory_breakdown: {opts.targets} http targets, one availability SLO each")
    print(f"{'step':<58}{'RSS MB':>8}{'Δ RSS':>8}" + (f"{'Δ heap':>8}" if opts.tracemalloc
                                                     else ""))
    for row in steps.rows:
        delta = "" if row["rss_delta_mb"] is None else f"{row['rss_delta_mb']:+.1f}"
        traced = "" if row["traced_delta_mb"] is None else f"{row['traced_delta_mb']:+.1f}"
        print(f"{row['step']:<58}{row['rss_mb']:>8.1f}{delta:>8}"
              + (f"{traced:>8}" if opts.tracemalloc else ""))
    e = steps.exposition
    print(f"one /metrics exposition: {e['bytes'] / 2**20:.1f} MB, {e['lines']:.0f} lines, "
          f"{e['cpu_s']:.2f} s CPU (rendered on the event loop by monitor/api.py)")
    g = steps.gc
    print(f"full gc.collect(): {g['full_ms']:.0f} ms over {g['objects']:.0f} tracked objects "
          f"(a stall of the event loop each time CPython runs one); after gc.freeze(): "
          f"{g['after_freeze_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
