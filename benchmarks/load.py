"""Dashboard and API under load while primewatch probes 500 targets a second.

A real `primewatch run` (SQLite; `--cpu N` pins it) probes `--targets` loopback targets
every `--interval` seconds, while a closed-loop generator (wrk-style: `--connections`
keep-alive connections, each sending its next request when the last one answers) sends
`--requests` requests over the dashboard pages, the JSON API and /metrics. Reported:
p50/p95/p99 latency per route and overall, errors (any non-2xx or transport error), and
the probe rate actually held during the load window.

Baseline, measured in the same run: the same load against the same database with
probing idle (intervals of an hour); the ratio is what 500 probes/s costs the readers.
The strategy document's goal for responses is p95 < 200 ms; the verdict checks that
and 0 errors.

    python benchmarks/load.py                       # 250 targets @0.5 s = 500/s, 4000 requests
    python benchmarks/load.py --requests 1000       # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from probe_throughput import target_server
from procs import free_port, spawn, stop, stop_all

HERE = Path(__file__).resolve().parent
SLO_TARGETS = 10  # targets with SLOs, so pages have budgets, charts and histograms


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=250)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="probe interval in seconds (targets / interval = probes/s)")
    parser.add_argument("--requests", type=int, default=4000,
                        help="requests per phase (bounded; also --max-seconds)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin primewatch to this CPU (default: unpinned, as deployed)")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="seconds of probing before the load starts")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="a phase's load stops after this long whatever happens")
    return parser.parse_args(argv)


def write_config(path: Path, db: Path, port: int, target_port: int, targets: int,
                 interval: float) -> None:
    lines = ["service: {name: load}",
             f"server: {{port: {port}, rate_limit: {{requests_per_second: 0}}}}",
             f'storage: {{url: "sqlite:///{db}"}}', "targets:"]
    lines += [f'  - {{name: t{i}, type: http, url: "http://127.0.0.1:{target_port}/health", '
              f"interval: {interval}s, timeout: 2s}}" for i in range(targets)]
    lines.append("slos:")
    for i in range(min(SLO_TARGETS, targets)):
        lines.append(f"  - {{name: t{i}-availability, target: t{i}, sli: availability, "
                     "objective: 99.9, window: 30d}")
        lines.append(f"  - {{name: t{i}-latency, target: t{i}, sli: latency, "
                     "threshold: 200ms, objective: 99, window: 30d}")
    lines.append("alerting: {evaluate_every: 10s}")
    path.write_text("\n".join(lines) + "\n")


def routes() -> list[str]:
    return ["/", "/slos/t0-availability", "/slos/t3-latency", "/targets", "/incidents",
            "/status", "/phases", "/api/v1/slos", "/api/v1/slos/t1-availability",
            "/api/v1/targets", "/api/v1/targets/t2/results?limit=100",
            "/api/v1/incidents", "/api/v1/cluster", "/metrics"]


async def closed_loop(base: str, count: int, connections: int, max_seconds: float
                      ) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """`count` requests over `connections` keep-alive connections; returns per-route
    latencies (ms), errors by kind, and the elapsed seconds."""
    paths = routes()
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    issued = 0
    deadline = time.monotonic() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < count and time.monotonic() < deadline:
            path = paths[issued % len(paths)]
            issued += 1
            started = time.perf_counter()
            try:
                response = await client.get(path)
                await response.aread()
                if response.status_code >= 400:
                    errors[f"{path} → {response.status_code}"] += 1
            except httpx.HTTPError as exc:
                errors[f"{path} → {type(exc).__name__}"] += 1
                continue
            latencies[path].append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return latencies, errors, time.monotonic() - began


def probes_total(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in
               re.finditer(r"^primewatch_probes_total\{[^}]*\} (\S+)$", text, re.M))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def phase(name: str, workdir: Path, db: Path, target_port: int, opts: argparse.Namespace,
          interval: float) -> dict[str, Any]:
    port = free_port()
    config = workdir / f"{name}.yaml"
    write_config(config, db, port, target_port, opts.targets, interval)
    base = f"http://127.0.0.1:{port}"
    subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(config),
                    "db", "upgrade"], check=True, cwd=workdir, capture_output=True)
    log = (workdir / f"{name}.log").open("w")
    process = spawn([sys.executable, "-m", "monitor.cli", "--config", str(config), "run"],
                    cpu=opts.cpu, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"primewatch did not start; see {workdir / name}.log")
            time.sleep(0.2)
        print(f"[{name}] serving; warming up {opts.warmup:g} s", flush=True)
        time.sleep(opts.warmup)
        probes_before, t0 = probes_total(base), time.monotonic()
        latencies, errors, elapsed = asyncio.run(
            closed_loop(base, opts.requests, opts.connections, opts.max_seconds))
        probe_rate = (probes_total(base) - probes_before) / (time.monotonic() - t0)
    finally:
        stop(process, grace=10)
        log.close()
    every = [v for values in latencies.values() for v in values]
    return {"name": name, "latencies": latencies, "errors": dict(errors),
            "requests": len(every) + sum(errors.values()), "elapsed": elapsed,
            "p50": statistics.median(every), "p95": pct(every, 0.95), "p99": pct(every, 0.99),
            "probe_rate": probe_rate}


def report(loaded: dict[str, Any], idle: dict[str, Any], opts: argparse.Namespace) -> bool:
    print(f"\n{'route':<40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
          f" {'idle p95':>9}")
    for path in routes():
        values = loaded["latencies"].get(path, [])
        base = idle["latencies"].get(path, [])
        print(f"{path:<40} {len(values):>5} {statistics.median(values) if values else 0:>8.1f}"
              f" {pct(values, 0.95):>8.1f} {pct(values, 0.99):>8.1f} {pct(base, 0.95):>9.1f}")
    for side in (loaded, idle):
        print(f"\n[{side['name']}] {side['requests']} requests in {side['elapsed']:.1f} s "
              f"({side['requests'] / side['elapsed']:.0f} req/s, {opts.connections} "
              f"connections); p50 {side['p50']:.1f} ms, p95 {side['p95']:.1f} ms, "
              f"p99 {side['p99']:.1f} ms; errors {sum(side['errors'].values())}"
              f"{' ' + json.dumps(side['errors']) if side['errors'] else ''}; "
              f"probes held {side['probe_rate']:.0f}/s")
    target = opts.targets / opts.interval
    print(f"\nratio p95 probing/idle: {loaded['p95'] / idle['p95']:.2f}x")
    checks = {"p95 < 200 ms": loaded["p95"] < 200,
              "0 errors": not loaded["errors"],
              f"probe rate >= 95% of {target:.0f}/s": loaded["probe_rate"] >= 0.95 * target}
    failed = [name for name, ok in checks.items() if not ok]
    print("PASS" if not failed else f"FAIL: {', '.join(failed)}")
    return not failed


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pw-load-") as tmp:
        workdir = Path(tmp)
        db = workdir / "load.db"
        bound = opts.warmup + opts.max_seconds * 2 + 120
        try:
            with target_server(1, bound) as server:
                loaded = phase("probing", workdir, db, server.port, opts, opts.interval)
                idle = phase("idle", workdir, db, server.port, opts, 3600.0)
        finally:
            stop_all()
    return 0 if report(loaded, idle, opts) else 1


if __name__ == "__main__":
    sys.exit(main())
