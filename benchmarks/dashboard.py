"""Dashboard speed: server time per page under a bounded concurrent load, and the
browser's page load, with 100 SLOs over 30 days of data.

The question (issue 6): is the overview's p95 server time under 50 ms, and does every
page load (Navigation Timing `loadEventEnd`) in under 1 s — twice better than the
strategy document's "page load < 2 s"? Baseline in the same run: `/healthz`, the
cheapest route through the same server, middleware and loopback.

Data: the rollups of `benchmarks/slo_eval.py`'s generator (100 targets every 10 s,
30 days, raw rows for the newest day) in a temporary SQLite file; one evaluation tick
runs before measuring, as in the service. Server time is the app's own
`Server-Timing: app;dur=` header; the client time adds HTTP on loopback.

    python benchmarks/dashboard.py                    # 100 SLOs, 30 days
    python benchmarks/dashboard.py --days 3 --requests 50 --no-browser   # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.slo_eval import DAY, build_fleet, generate_day, sqlite_backend
from monitor.app import create_app
from monitor.clock import SystemClock
from monitor.config import Settings
from monitor.metrics import Metrics

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SERVER_GOAL_MS, LOAD_GOAL_MS = 50.0, 1000.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=100, help="SLOs, one per target (100)")
    parser.add_argument("--days", type=int, default=30, help="days of data (30)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per page (200)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="requests in flight at once (4)")
    parser.add_argument("--loads", type=int, default=5, help="browser loads per page (5)")
    parser.add_argument("--no-browser", action="store_true", help="skip Chromium timings")
    return parser.parse_args(argv)


def settings_for(slos: list[Any]) -> Settings:
    targets = sorted({slo.target for slo in slos})
    return Settings.model_validate({
        "targets": [{"name": t, "type": "http", "url": f"http://127.0.0.1:9/{t}"}
                    for t in targets],
        "slos": list(slos),  # validated SloConfig instances are taken as they are
        "dashboard": {"status_page": {"components": [
            {"name": f"Component {i}", "targets": targets[i::10]} for i in range(10)]}},
    })


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def serve(app: Any) -> tuple[uvicorn.Server, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


LOAD_SCRIPT = r"""
import json, re, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import httpx
url, count, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
server_ms, client_ms, lock = [], [], threading.Lock()
def one(client):
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    match = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    with lock:
        client_ms.append(elapsed)
        if match:
            server_ms.append(float(match.group(1)))
with httpx.Client(timeout=30) as client:
    for _ in range(5):
        one(client)
    server_ms.clear(); client_ms.clear()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: one(client), range(count)))
print(json.dumps([server_ms, client_ms]))
"""


def timed_requests(url: str, count: int, concurrency: int) -> tuple[list[float], list[float]]:
    """(server ms from Server-Timing, client ms) of `count` GETs, `concurrency` at once,
    sent from a separate process: a client in the server's process would compete with
    it for the GIL and inflate the server's own timing."""
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, url, str(count),
                           str(concurrency)], capture_output=True, text=True, check=True)
    server_ms, client_ms = json.loads(done.stdout)
    return server_ms, client_ms


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def browser_loads(base: str, paths: Sequence[str], loads: int) -> dict[str, float]:
    """Median `loadEventEnd` (ms from navigation start) per page in headless Chromium."""
    from playwright.sync_api import sync_playwright
    out: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for path in paths:
            samples = []
            for _ in range(loads):
                page = browser.new_page()
                page.goto(base + path, wait_until="load")
                samples.append(page.evaluate(
                    "performance.getEntriesByType('navigation')[0].loadEventEnd"))
                page.close()
            out[path] = statistics.median(samples)
        browser.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    logging.getLogger("alerts").setLevel(logging.ERROR)  # the fleet's incidents opening
    fleet = build_fleet(opts.slos)
    anchor = int(time.time() // 60 * 60)
    rng = np.random.default_rng(1)
    with sqlite_backend() as backend:
        started = time.perf_counter()
        for day in range(opts.days):
            backend.loader.add(generate_day(rng, fleet, anchor - (day + 1) * DAY,
                                            raw=day == 0, sigma=0.25))
        backend.loader.settle()
        log(f"{opts.slos} SLOs × {opts.days} d loaded in {time.perf_counter() - started:.0f} s")
        settings = settings_for(fleet.slos)
        app = create_app(settings, backend.engine, clock=SystemClock(),
                         metrics=Metrics(CollectorRegistry()), run_background=False)
        runtime = app.state.runtime
        started = time.perf_counter()
        runtime._evaluate_and_publish()
        runtime.statuses = {s.name: s for s in runtime.service.slo_statuses()}
        log(f"first evaluation tick: {time.perf_counter() - started:.2f} s")
        server, base = serve(app)
        latency_slo = next(s.name for s in fleet.slos if s.sli == "latency")
        paths = ["/healthz", "/", f"/slos/{fleet.slos[0].name}", f"/slos/{latency_slo}",
                 "/incidents", "/targets", "/phases", "/status",
                 f"/badges/{fleet.slos[0].name}.svg"]
        rows = []
        try:
            available = [p for p in paths if httpx.get(base + p).status_code == 200]
            for path in available:
                server_ms, client_ms = timed_requests(base + path, opts.requests,
                                                      opts.concurrency)
                rows.append((path, server_ms, client_ms))
                log(f"{path}: server median {statistics.median(server_ms):.1f} ms")
            loads = {} if opts.no_browser else browser_loads(
                base, [p for p in available if not p.endswith(".svg") and p != "/healthz"],
                opts.loads)
        finally:
            server.should_exit = True
            runtime.outbox.close()
    base_median = statistics.median(rows[0][1]) if rows and rows[0][0] == "/healthz" else None
    print(f"Dashboard: {opts.slos} SLOs, {opts.days} days; {opts.requests} requests per page, "
          f"{opts.concurrency} in flight, loopback; browser: median of {opts.loads} loads")
    print(f"{'page':<28} {'server med':>10} {'server p95':>10} {'client med':>10} "
          f"{'client p95':>10} {'× /healthz':>10} {'load (ms)':>10}")
    for path, server_ms, client_ms in rows:
        ratio = statistics.median(server_ms) / base_median if base_median else float("nan")
        load = loads.get(path)
        print(f"{path:<28} {statistics.median(server_ms):>10.1f} {p95(server_ms):>10.1f} "
              f"{statistics.median(client_ms):>10.1f} {p95(client_ms):>10.1f} {ratio:>10.1f} "
              f"{'—' if load is None else f'{load:.0f}':>10}")
    missing = sorted(set(paths) - {r[0] for r in rows})
    if missing:
        print(f"not measured (not 200): {', '.join(missing)}")
    overview = next((r for r in rows if r[0] == "/"), None)
    verdict = []
    if overview is not None:
        ok = p95(overview[1]) < SERVER_GOAL_MS
        verdict.append(f"overview p95 server {p95(overview[1]):.1f} ms < {SERVER_GOAL_MS:.0f} "
                       f"ms: {'PASS' if ok else 'FAIL'}")
    if loads:
        worst = max(loads, key=lambda p: loads[p])
        passed = loads[worst] < LOAD_GOAL_MS
        verdict.append(f"slowest page load {worst} {loads[worst]:.0f} ms < "
                       f"{LOAD_GOAL_MS:.0f} ms: {'PASS' if passed else 'FAIL'}")
    print("; ".join(verdict))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
