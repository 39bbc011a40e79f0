"""/metrics under parallel scrapers: does scraping stall the probes?

The question (security issue, item 2): `/metrics` is unauthenticated and exempt from rate
limits; rendered on the event loop (4.3 MB, ~0.5 s at 2,000 targets), a few parallel
scrapers stalled the probes until almost all of them timed out. This runs a real
primewatch (uvicorn on loopback, SQLite in a temp dir) probing N http targets on
`benchmarks/targets.py` (its own process), lets the schedule settle, then runs
`--scrapers` scrapers (their own process, like Prometheus) for `--duration` seconds and
prints: one rendering's time, scrape p50/p95/max, probes run and probe timeouts in the
window, and how many renderings served all the scrapes.

    python benchmarks/metrics_scrape.py                 # snapshot, then --inline baseline
    python benchmarks/metrics_scrape.py --modes snapshot --targets 500 --duration 10
    python benchmarks/metrics_scrape.py --modes none,snapshot,inline   # + no scrapers

Modes: `snapshot` is today's code (monitor/metrics_snapshot.py); `inline` renders on
the event loop per request, as /metrics did before; `none` runs no scrapers (the floor).
Each mode gets a fresh primewatch in this process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from in_process import serve_in_thread

from monitor.app import create_app
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade

ROOT = Path(__file__).resolve().parent
SCRAPER = """
import json, sys, threading, time
import httpx
url, seconds, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
out, lock = {"latencies": [], "answers": {}}, threading.Lock()
until = time.monotonic() + seconds
def scrape():
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                response = client.get("/metrics")
                answer = f"{response.status_code} {response.headers['content-type']}"
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            with lock:
                out["latencies"].append(time.perf_counter() - t0)
                out["answers"][answer] = out["answers"].get(answer, 0) + 1
threads = [threading.Thread(target=scrape) for _ in range(count)]
for thread in threads: thread.start()
for thread in threads: thread.join()
time.sleep(max(0.0, until - time.monotonic()))
print(json.dumps(out))
"""


def settings_for(target_url: str, targets: int, interval: float, timeout: float) -> Settings:
    return Settings.model_validate({"targets": [
        {"name": f"t{i}", "type": "http", "url": f"{target_url}/t/{i}",
         "interval": f"{interval:g}s", "timeout": f"{timeout:g}s"} for i in range(targets)],
        "slos": []})


def outcomes(metrics: Metrics) -> dict[str, float]:
    """Probes run so far, by outcome ("ok" or an error class), over every target."""
    totals: dict[str, float] = {}
    for family in metrics.registry.collect():
        if family.name == "primewatch_probes":
            for sample in family.samples:
                if sample.name == "primewatch_probes_total":
                    outcome = sample.labels["outcome"]
                    totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals


def run_mode(mode: str, target_url: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'primewatch.db'}")
        upgrade(engine)
        metrics = Metrics(CollectorRegistry())
        app = create_app(settings_for(target_url, args.targets, args.interval, args.timeout),
                         engine, metrics=metrics)
        runtime = app.state.runtime
        if mode == "inline":
            async def on_the_loop() -> bytes:  # what /metrics did before the snapshot
                return generate_latest(metrics.registry)
            runtime.exposition.get = on_the_loop
        try:
            with serve_in_thread(app) as url:
                time.sleep(args.warmup)  # first runs are spread over one interval
                before, runs_before = outcomes(metrics), runtime.scheduler.runs
                done = subprocess.run(
                    [sys.executable, "-c", SCRAPER, url,
                     str(args.duration), str(0 if mode == "none" else args.scrapers)],
                    capture_output=True, text=True, timeout=args.duration + 300, check=True)
                after, runs_after = outcomes(metrics), runtime.scheduler.runs
        finally:
            engine.dispose()
    scraped = json.loads(done.stdout)
    latencies = sorted(scraped["latencies"])
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return {
        "mode": mode, "scrapes": len(latencies), "answers": scraped["answers"],
        "scrape_p50_s": statistics.median(latencies) if latencies else None,
        "scrape_p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "scrape_max_s": latencies[-1] if latencies else None,
        "probes_started": runs_after - runs_before,
        "probes_done": sum(delta.values()),
        "probe_timeouts": delta.get("timeout", 0.0),
        "probe_failures": sum(v for k, v in delta.items() if k != "ok"),
        "renders": None if mode == "inline" else runtime.exposition.renders,
    }


def render_seconds(target_url: str, targets: int) -> tuple[float, int]:
    """One rendering of a registry populated like a busy service's: every target with
    a probe observed (its histogram, gauges and counter series)."""
    from probes.base import ProbeResult

    metrics = Metrics(CollectorRegistry())
    for i in range(targets):
        metrics.observe_probe(ProbeResult(f"t{i}", time.time(), True, 0.004, status_code=200))
    started = time.perf_counter()
    body = generate_latest(metrics.registry)
    return time.perf_counter() - started, len(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout, seconds")
    parser.add_argument("--scrapers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds scraped")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before scraping (default: one interval)")
    parser.add_argument("--modes", default="snapshot,inline",
                        help="comma-separated: none, snapshot, inline")
    args = parser.parse_args(argv)
    args.warmup = args.interval if args.warmup is None else args.warmup
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    targets = subprocess.Popen([sys.executable, str(ROOT / "targets.py"), "--max-seconds",
                                "3600", "--die-with-parent"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert targets.stdout is not None
        port = json.loads(targets.stdout.readline())["port"]
        target_url = f"http://127.0.0.1:{port}"
        seconds, size = render_seconds(target_url, args.targets)
        print(f"{args.targets} targets every {args.interval:g}s (timeout {args.timeout:g}s), "
              f"{args.scrapers} scrapers for {args.duration:g}s after {args.warmup:g}s")
        print(f"one rendering: {seconds * 1000:.0f} ms, {size / 1e6:.1f} MB")
        for mode in args.modes.split(","):
            row = run_mode(mode.strip(), target_url, args)
            print(json.dumps(row), flush=True)
    finally:
        targets.terminate()
        targets.wait(10)


if __name__ == "__main__":
    main()
