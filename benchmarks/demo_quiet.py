"""Is the demo quiet? The shipped config.yaml for N minutes on a machine kept busy.

`make run` once paged by itself: two health checks slowed by a busy machine (569 and
297 ms against a 15 ms median) counted as cold starts and burnt the 99.9 % "no cold
starts" budget. This runs what `make run` runs — `primewatch demo-target` and
`primewatch run` with the shipped config.yaml, as subprocesses — on a fresh SQLite
database in a temporary working directory, with one busy-loop process per CPU (`--hogs`)
started first and killed at the end, and reports:

* incidents opened (`GET /api/v1/incidents`) with their titles: the goal is 0;
* probes run per target and outcome, cold starts counted, and how many slow health
  checks were judged and not counted, with the reason the probe recorded;
* how late the scheduler started probes (`primewatch_scheduler_lag_seconds`) and the CPU
  the hogs really took, so a quiet result can be told from an idle machine;
* whether the session's write token is accepted (the `make run` story).

A measurement, not a test: it exits 0 whatever it finds (1 only when primewatch does not
start). All traffic stays on 127.0.0.1 (ports chosen free; channel credentials, proxies
and every PRIMETRADE_/PRIMEWATCH_ setting of the caller are dropped), every child is
bounded by `--minutes` plus start-up and stopped at the end, also on Ctrl-C or SIGTERM.

    python benchmarks/demo_quiet.py                 # 10 minutes, one hog per CPU
    python benchmarks/demo_quiet.py --minutes 3     # quick look
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from procs import ROOT, free_port, proc_cpu_s, spawn, stop, stop_all

HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # seconds for primewatch to answer /healthz under the hogs
PROGRESS_EVERY = 30.0
COLD_TARGET = "api-health"  # the target with `cold_start` in config.yaml
SLOWEST = 3  # its slowest results are shown with what they recorded about cold starts
DROPPED_ENV = ("PRIMEWATCH_", "PRIMETRADE_", "SLACK_", "PAGERDUTY_", "SENTRY_", "SMTP_")
PROXIES = ("http_proxy", "https_proxy", "all_proxy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="how long primewatch runs once it answers (default 10)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2,
                        help="busy-loop processes to start (default: one per CPU)")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    opts = parser.parse_args(argv)
    if opts.minutes <= 0 or opts.hogs < 0:
        parser.error("--minutes must be positive and --hogs at least 0")
    return opts


def child_env(workdir: Path, port: int, demo_port: int, token: str) -> dict[str, str]:
    """The caller's environment minus anything that could reach off the machine, plus the
    demo's settings: what `make run` would see on a fresh checkout."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(DROPPED_ENV) and key.lower() not in PROXIES
           and key != "REDIS_URL"}
    demo = f"http://{HOST}:{demo_port}"
    db = f"sqlite:///{workdir / 'primewatch.db'}"
    env.update({
        "PRIMEWATCH_HOST": HOST, "PRIMEWATCH_PORT": str(port),
        "PRIMEWATCH_PUBLIC_URL": f"http://{HOST}:{port}",
        "PRIMEWATCH_DATABASE_URL": db, "PRIMETRADE_DATABASE_URL": db,
        "PRIMETRADE_API_URL": demo, "PRIMETRADE_FRONTEND_URL": demo,
        "PRIMEWATCH_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of `name` in a Prometheus text exposition."""
    samples = []
    for match in re.finditer(rf"^{re.escape(name)}(?:\{{(.*?)\}})? (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        samples.append((labels, float(match.group(2))))
    return samples


def lag_quantile(text: str, q: float) -> str:
    """The histogram bucket holding quantile `q` of the scheduler's start lag."""
    buckets = sorted((float(labels["le"]), count) for labels, count in
                     metric_samples(text, "primewatch_scheduler_lag_seconds_bucket"))
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= q * total:
            return "> 5 s" if bound == float("inf") else f"<= {bound * 1000:g} ms"
    return "n/a"


def cold_start_results(client: httpx.Client) -> list[dict[str, Any]]:
    """Every stored result of the cold-start target."""
    results: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/targets/{COLD_TARGET}/results", params=params).json()
        results += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return results


def token_check(client: httpx.Client, token: str) -> str:
    """Ack a missing incident with and without the token: 404 means the write got past
    authentication, 401/403 that it did not."""
    path = "/api/v1/incidents/999999/ack"
    with_token = client.post(path, headers={"Authorization": f"Bearer {token}"}).status_code
    without = client.post(path).status_code
    verdict = "accepted" if with_token == 404 else "REFUSED"
    return f"{verdict} (ack of a missing incident: {with_token} with it, {without} without)"


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if client.get("/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"primewatch did not answer /healthz within {START_TIMEOUT:g} s:\n{tail}")


def progress(client: httpx.Client, began: float) -> tuple[str, float]:
    metrics = client.get("/metrics").text
    probes = sum(v for _, v in metric_samples(metrics, "primewatch_probes_total"))
    colds = sum(v for _, v in metric_samples(metrics, "primewatch_probe_cold_starts_total"))
    incidents = client.get("/api/v1/incidents", params={"limit": 1}).json()["total"]
    return (f"  {(time.monotonic() - began) / 60:4.1f} min: {probes:.0f} probes, "
            f"{colds:.0f} cold starts, {incidents} incidents", probes)


def report(client: httpx.Client, opts: argparse.Namespace, token: str, began: float,
           began_epoch: float, hog_cpu: float) -> None:
    metrics = client.get("/metrics").text
    elapsed = time.monotonic() - began
    per_target: dict[str, Counter[str]] = defaultdict(Counter)
    for labels, value in metric_samples(metrics, "primewatch_probes_total"):
        per_target[labels["target"]][labels["outcome"]] += int(value)
    colds = {labels["target"]: value for labels, value in
             metric_samples(metrics, "primewatch_probe_cold_starts_total")}
    results = cold_start_results(client)
    ordered = sorted(r["latency_ms"] for r in results) or [float("nan")]
    skipped = Counter(re.sub(r"\d+", "N", r["details"]["cold_start_skipped"])
                      for r in results if "cold_start_skipped" in r["details"])
    incidents = client.get("/api/v1/incidents", params={"limit": 500}).json()

    started = time.strftime("%H:%M:%SZ", time.gmtime(began_epoch))
    print(f"\n=== demo_quiet: {elapsed / 60:.1f} min of the shipped config from {started}, "
          f"{opts.hogs} CPU hogs on {os.cpu_count()} CPUs ===")
    print(f"hogs' CPU            : {hog_cpu:.0f} CPU-s = {hog_cpu / elapsed:.2f} cores busy; "
          f"load average now {os.getloadavg()[0]:.2f}")
    print(f"scheduler start lag  : p50 {lag_quantile(metrics, 0.5)}, "
          f"p99 {lag_quantile(metrics, 0.99)}")
    total = sum(sum(c.values()) for c in per_target.values())
    print(f"probes run           : {total}")
    for target, outcomes in sorted(per_target.items()):
        shown = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        print(f"  {target:<18} {sum(outcomes.values()):>5}  ({shown})")
    print(f"cold starts counted  : {sum(colds.values()):.0f}  ({COLD_TARGET}: "
          f"{len(results)} results stored, latency median {ordered[len(ordered) // 2]:.0f} "
          f"ms, max {ordered[-1]:.0f} ms)")
    for reason, count in skipped.most_common():
        print(f"  not counted, {count:>3} x  {reason}")
    for r in sorted(results, key=lambda r: -r["latency_ms"])[:SLOWEST]:
        details = {k: v for k, v in r["details"].items()
                   if k.startswith(("cold_start", "prober_lag"))}
        print(f"  slow: {r['latency_ms']:6.0f} ms at {r['started_at'][11:19]}Z  {details or ''}")
    print(f"write token          : {token_check(client, token)}")
    print(f"incidents opened     : {incidents['total']}  (goal 0)")
    for item in incidents["items"]:
        print(f"  #{item['id']} {item['severity']:<6} {item['status']:<12} "
              f"+{(item['opened_at'] - began_epoch) / 60:4.1f} min  {item['title']}")
        print(f"      {item['summary'][:200]}")


def run(opts: argparse.Namespace, workdir: Path) -> int:
    port, demo_port = free_port(), free_port()
    token = "pw_" + secrets.token_urlsafe(32)
    env = child_env(workdir, port, demo_port, token)
    # procs.spawn hands children a copy of os.environ: make it theirs. This process only
    # talks to loopback with trust_env=False, so its own environment no longer matters.
    os.environ.clear()
    os.environ.update(env)
    cli = [sys.executable, "-m", "monitor.cli", "--config", str(opts.config.resolve())]
    hogs = [spawn([sys.executable, "-c", "while True: pass"]) for _ in range(opts.hogs)]
    print(f"{len(hogs)} CPU hogs started; working directory {workdir}", flush=True)
    subprocess.run([*cli, "db", "upgrade"], check=True, cwd=workdir, capture_output=True,
                   timeout=120)
    logs = {name: workdir / f"{name}.log" for name in ("demo-target", "primewatch")}
    with logs["demo-target"].open("wb") as demo_log, logs["primewatch"].open("wb") as pw_log:
        spawn([*cli, "demo-target", "--host", HOST, "--port", str(demo_port)], cwd=workdir,
              stdout=demo_log, stderr=subprocess.STDOUT)
        primewatch = spawn([*cli, "run"], cwd=workdir, stdout=pw_log,
                           stderr=subprocess.STDOUT)
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30, trust_env=False) \
                as client:
            try:
                wait_ready(client, primewatch, logs["primewatch"])
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"primewatch answers on http://{HOST}:{port}/ (demo target :{demo_port}); "
                  f"running {opts.minutes:g} min", flush=True)
            began, began_epoch = time.monotonic(), time.time()
            hog_cpu_before = sum(proc_cpu_s(h.pid) for h in hogs)
            end = began + opts.minutes * 60
            while (now := time.monotonic()) < end and primewatch.poll() is None:
                time.sleep(min(PROGRESS_EVERY, end - now))
                if primewatch.poll() is None:
                    print(progress(client, began)[0], flush=True)
            if primewatch.poll() is not None:
                print(f"primewatch exited early ({primewatch.returncode}); see "
                      f"{logs['primewatch']}", file=sys.stderr)
                return 1
            hog_cpu = sum(proc_cpu_s(h.pid) for h in hogs) - hog_cpu_before
            for hog in hogs:  # the report's own requests need not wait behind them
                stop(hog, grace=1)
            report(client, opts, token, began, began_epoch, hog_cpu)
        stop(primewatch, grace=15)
    warnings = [line for line in logs["primewatch"].read_text(errors="replace").splitlines()
                if " WARNING " in line or " ERROR " in line]
    print(f"primewatch log       : {len(warnings)} warning/error lines"
          + "".join(f"\n  {line[:160]}" for line in warnings[-5:]))
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` below
    with tempfile.TemporaryDirectory(prefix="pw-demo-quiet-") as tmp:
        try:
            return run(opts, Path(tmp))
        finally:
            stop_all()


if __name__ == "__main__":
    sys.exit(main())
