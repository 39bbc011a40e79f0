"""Probe throughput: primewatch's real runtime against a bare httpx loop, on one core.

Why this shape: the question is what the whole service costs per probe (scheduler,
httpx, metrics, the result sink and SQLite storage with SLO rollups, the SLO evaluator)
and whether it holds a schedule, so the primewatch run builds the real `Runtime` from
`Settings`. Beside it, in the same run, against the same target server at the same
rate and CPU pinning, a bare httpx loop (one shared AsyncClient, keep-alive off, no
storage) shows how much of that cost is httpx itself — the floor primewatch can reach
without changing HTTP clients.

Layout (all loopback, every process bounded in time and killed at the end):
  * target server (`benchmarks/targets.py`), pinned to --target-cpu;
  * one child process per measured run, pinned to --prober-cpu, so each run has its
    own interpreter, its own peak RSS and nothing left over from the previous run.

Each child measures only the window after --warmup: completed probes, CPU time from
`getrusage(RUSAGE_SELF)` (the sink's writer thread and the SLO evaluator's thread are
in the same process, so they are counted; the event-loop thread's share is reported
separately from /proc), schedule lag (actual start − planned start) from raw samples,
probe latency, failures, and peak RSS. The target server's request and connection
counters check that every probe really reached it and that it was never the bottleneck.

    python benchmarks/probe_throughput.py [--targets 1000 --rate 200 --duration 30 --warmup 10]

Prints a table (medians over --repeat runs, ratio primewatch/baseline) and writes JSON
to benchmarks/results/probe_throughput-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from targets import HOST, die_with_parent, pin_to_cpu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
GOAL_RATE = 200.0  # probes/s on one core, from the issue
GOAL_LAG_P99_MS = 100.0
RESULT_PREFIX = "RESULT "
KINDS = ("primewatch", "baseline")
T = TypeVar("T")


# --------------------------------------------------------------------------- measuring


def process_cpu() -> float:
    """User+system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(tid: int) -> float:
    """CPU seconds of one thread of this process (clock-tick resolution), 0 if gone."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name may contain spaces and ')'
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(key: str) -> float:
    """A memory figure of this process from /proc: VmRSS (now) or VmHWM (peak RSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values (so an empty window is visible)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Snapshot:
    """The counters a window is the difference of."""

    wall: float
    cpu: float
    loop_cpu: float

    @classmethod
    def take(cls, loop_tid: int) -> Snapshot:
        return cls(time.time(), process_cpu(), thread_cpu(loop_tid))


@dataclass
class Recorder:
    """Raw samples, stamped with wall time so only the measured window is counted.

    Appending a tuple costs well under a microsecond; these appends (and timing each SLO
    gauge publish) are all the benchmark adds to the measured code path.
    """

    lags: list[tuple[float, float]] = field(default_factory=list)
    probes: list[tuple[float, float, bool, str | None]] = field(default_factory=list)
    slo_publish_s: float = 0.0  # time spent in Metrics.observe_slo, on the event loop

    def lag(self, seconds: float) -> None:
        self.lags.append((time.time(), seconds))

    def probe(self, latency: float, ok: bool, error_class: str | None) -> None:
        self.probes.append((time.time(), latency, ok, error_class))


async def measure_window(warmup: float, duration: float, loop_tid: int,
                         sample: Callable[[], float] | None = None
                         ) -> tuple[Snapshot, Snapshot, float]:
    """Wait out the warm-up, then snapshot both ends of the window.

    `sample` (e.g. the sink's backlog) is polled every 0.5 s and its maximum returned.
    """
    await asyncio.sleep(warmup)
    start = Snapshot.take(loop_tid)
    deadline = time.monotonic() + duration
    peak = 0.0
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.5, left))
        if sample is not None:
            peak = max(peak, sample())
    return start, Snapshot.take(loop_tid), peak


def summarize(recorder: Recorder, start: Snapshot, end: Snapshot) -> dict[str, Any]:
    """The figures both kinds report, computed the same way for both."""
    window = end.wall - start.wall
    inside = [p for p in recorder.probes if start.wall <= p[0] < end.wall]
    window_lags = [(t, lag) for t, lag in recorder.lags if start.wall <= t < end.wall]
    lags = [lag for _, lag in window_lags]
    latencies = [p[1] for p in inside if p[2]]
    failures = Counter(p[3] or "error" for p in inside if not p[2])
    cpu = end.cpu - start.cpu
    loop_cpu = end.loop_cpu - start.loop_cpu
    completed = len(inside)
    return {
        "window_s": round(window, 3),
        "probes": completed,
        "achieved_rate": round(completed / window, 2),
        "failures": sum(failures.values()),
        "failure_classes": dict(failures),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_probe": round(1000 * cpu / max(completed, 1), 3),
        "core_util": round(cpu / window, 3),
        "loop_thread_cpu_s": round(loop_cpu, 2),
        # Per-thread times tick at 10 ms, getrusage at 1 µs: clamp the rounding residue.
        "other_threads_cpu_s": round(max(0.0, cpu - loop_cpu), 2),
        "lag_samples": len(lags),
        "lag_p50_ms": round(1000 * percentile(lags, 50), 3),
        "lag_p99_ms": round(1000 * percentile(lags, 99), 3),
        "lag_max_ms": round(1000 * max(lags, default=math.nan), 3),
        "lag_max_at_s": round(max(window_lags, key=lambda x: x[1])[0] - start.wall, 2)
        if window_lags else None,
        "latency_p50_ms": round(1000 * percentile(latencies, 50), 3),
        "latency_p99_ms": round(1000 * percentile(latencies, 99), 3),
        "started_total": len(recorder.lags),
        "completed_total": len(recorder.probes),
        "rss_end_mb": round(status_mb("VmRSS"), 1),
        "thread_count_end": threading.active_count(),
    }


def target_urls(port: int, count: int) -> list[str]:
    """N distinct target URLs on the one target server."""
    return [f"http://{HOST}:{port}/t/{i}" for i in range(count)]


# --------------------------------------------------------------------------- primewatch


def build_settings(port: int, targets: int, interval: float, timeout: float,
                   db_path: Path, evaluate_every: float | None) -> Any:
    """Settings as config.yaml would give them: N http targets, one availability SLO each.

    One SLO per target means every result also becomes an SLO rollup upsert, as in a
    real deployment.
    """
    from monitor.config import Settings

    names = [f"t{i:05d}" for i in range(targets)]
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{db_path}"},
        "targets": [{"type": "http", "name": name, "url": url, "interval": interval,
                     "timeout": timeout}
                    for name, url in zip(names, target_urls(port, targets), strict=True)],
        "slos": [{"name": f"{name}-availability", "target": name, "sli": "availability",
                  "objective": 99.9} for name in names],
    }
    if evaluate_every is not None:
        data["alerting"] = {"evaluate_every": evaluate_every}
    return Settings.model_validate(data)


class _LagTap:
    """Stands in for the `scheduler_lag` histogram: records each raw sample, then observes.

    A histogram's buckets cannot give a precise p99; the raw samples can.
    """

    def __init__(self, histogram: Any, recorder: Recorder) -> None:
        self._histogram = histogram
        self._recorder = recorder

    def observe(self, amount: float, exemplar: Any = None) -> None:
        self._recorder.lag(amount)
        self._histogram.observe(amount, exemplar)


def recording_metrics(recorder: Recorder) -> Any:
    """A real `Metrics` whose lag and probe observations are also recorded raw."""
    from monitor.metrics import Metrics
    from probes.base import ProbeResult
    from slo.status import SloStatus

    class RecordingMetrics(Metrics):
        def __init__(self) -> None:
            super().__init__()
            self.scheduler_lag = _LagTap(self.scheduler_lag, recorder)  # type: ignore[assignment]

        def observe_probe(self, result: ProbeResult) -> None:
            recorder.probe(result.latency, result.ok, result.error_class)
            super().observe_probe(result)

        def observe_slo(self, status: SloStatus) -> None:
            begun = time.perf_counter()
            super().observe_slo(status)
            recorder.slo_publish_s += time.perf_counter() - begun

    return RecordingMetrics()


def timed_evaluations(runtime: Any, recorder: Recorder,
                      log: list[tuple[float, float, float]]) -> None:
    """Wrap `runtime.evaluate_once` to log each SLO evaluation.

    Logged: (start, wall seconds, seconds of it spent publishing gauges on the event
    loop). The queries run in a thread; the publishing blocks the loop, so it is the part
    that shows up directly as schedule lag.
    """
    original = runtime.evaluate_once

    async def evaluate_once() -> Any:
        started, published = time.time(), recorder.slo_publish_s
        try:
            return await original()
        finally:
            log.append((started, time.time() - started,
                        recorder.slo_publish_s - published))

    runtime.evaluate_once = evaluate_once


async def run_primewatch(opts: argparse.Namespace) -> dict[str, Any]:
    """The real Runtime (scheduler, probes, sink, SQLite storage, metrics, evaluator)."""
    from monitor.clock import SystemClock
    from monitor.runtime import Runtime
    from monitor.storage.engine import make_engine, upgrade
    from monitor.storage.repository import count_results

    loop_tid = threading.get_native_id()
    tmp = Path(tempfile.mkdtemp(prefix="primewatch-bench-"))
    try:
        engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
        upgrade(engine)
        settings = build_settings(opts.port, opts.targets, opts.targets / opts.rate,
                                  opts.timeout, tmp / "bench.db", opts.evaluate_every)
        recorder = Recorder()
        metrics = recording_metrics(recorder)
        runtime = Runtime(settings, engine, SystemClock(), metrics)
        evaluations: list[tuple[float, float, float]] = []
        timed_evaluations(runtime, recorder, evaluations)
        await runtime.start()
        try:
            start, end, backlog = await measure_window(
                opts.warmup, opts.duration, loop_tid, lambda: runtime.sink.pending)
        finally:
            await runtime.stop()  # in-flight probes are cancelled, the sink flushes
        produced = runtime.scheduler.runs
        result = summarize(recorder, start, end)
        sink = runtime.sink
        skipped = sum(s.value for m in metrics.probes_skipped.collect() for s in m.samples
                      if s.name.endswith("_total"))
        result.update({
            "produced": produced, "written": sink.written, "dropped": sink.dropped,
            "lost": produced - sink.written - sink.dropped, "rows_in_db": count_results(engine),
            "skipped": int(skipped), "sink_backlog_max": int(backlog),
            # [start offset from the window's start, wall s, s blocking the loop]
            "evaluations_in_window": [[round(t - start.wall, 2), round(d, 3), round(b, 3)]
                                      for t, d, b in evaluations
                                      if start.wall <= t < end.wall],
            "evaluation_s_all": [round(d, 3) for _, d, _ in evaluations],
            "evaluation_loop_block_s_all": [round(b, 3) for _, _, b in evaluations],
        })
        engine.dispose()
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- baseline


async def run_baseline(opts: argparse.Namespace) -> dict[str, Any]:
    """A bare httpx loop: one shared client, keep-alive off, uniform schedule, no storage.

    Keep-alive off because primewatch's default is a fresh connection per probe (like
    blackbox_exporter), so both sides pay for connect + close on every probe.
    """
    import httpx

    loop_tid = threading.get_native_id()
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        timeout=httpx.Timeout(opts.timeout), trust_env=False)
    urls = target_urls(opts.port, opts.targets)
    await client.get(urls[0])  # lazy imports and first-connection costs stay out
    recorder = Recorder()
    in_flight: set[asyncio.Task[None]] = set()

    async def probe(url: str, planned: float) -> None:
        begun = time.perf_counter()
        recorder.lag(max(0.0, begun - planned))
        error: str | None = None
        try:
            response = await client.get(url)
            if response.status_code != 200:
                error = "http_status"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        recorder.probe(time.perf_counter() - begun, error is None, error)

    async def schedule() -> None:
        first = time.perf_counter() + 0.05
        for k in range(10**9):
            planned = first + k / opts.rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(probe(urls[k % len(urls)], planned))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    scheduler = asyncio.create_task(schedule())
    try:
        start, end, _ = await measure_window(opts.warmup, opts.duration, loop_tid)
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        if in_flight:
            await asyncio.wait(in_flight, timeout=opts.timeout + 1)
        await client.aclose()
    return summarize(recorder, start, end)


# --------------------------------------------------------------------------- children


def run_async(coro: Coroutine[Any, Any, T], loop: str) -> T:
    """uvloop by default, as uvicorn runs primewatch; plain asyncio on request."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def child_main(opts: argparse.Namespace) -> None:
    """Entry point of a measured child: pin, run, print one RESULT line on stdout."""
    die_with_parent()
    affinity = pin_to_cpu(opts.prober_cpu)
    runner = run_primewatch if opts.child == "primewatch" else run_baseline
    result = run_async(runner(opts), opts.loop)
    result.update({
        "kind": opts.child, "affinity": affinity, "loop": opts.loop,
        # Peak RSS over the whole child (imports and start-up included: the service pays
        # them too); VmHWM and ru_maxrss differ slightly in accounting, take the larger.
        "maxrss_mb": round(max(status_mb("VmHWM"),
                               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), 1),
    })
    print(RESULT_PREFIX + json.dumps(result), flush=True)


_children: list[subprocess.Popen[bytes]] = []


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches only us; we kill it) and track it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(cmd, start_new_session=True, env=env, **kwargs)
    _children.append(process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 3 s; always reaps."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ValueError):
        _children.remove(process)


def stop_all() -> None:
    for process in list(_children):
        stop(process)


@dataclass
class TargetServer:
    """The running target server process and how to read its counters."""

    process: subprocess.Popen[bytes]
    port: int

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}/_stats", timeout=5) as r:
            stats: dict[str, Any] = json.loads(r.read())
            return stats


@contextlib.contextmanager
def target_server(cpu: int, max_seconds: float) -> Iterator[TargetServer]:
    """Start `targets.py` pinned to `cpu`; yields once it listens; always stops it."""
    process = spawn([sys.executable, str(HERE / "targets.py"), "--port", "0",
                     "--cpu", str(cpu), "--max-seconds", str(max_seconds),
                     "--die-with-parent"], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError("the target server did not start")
        yield TargetServer(process, int(json.loads(line)["port"]))
    finally:
        stop(process)


def child_command(kind: str, port: int, opts: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
           "--port", str(port), "--targets", str(opts.targets), "--rate", str(opts.rate),
           "--duration", str(opts.duration), "--warmup", str(opts.warmup),
           "--timeout", str(opts.timeout), "--loop", opts.loop,
           "--prober-cpu", str(opts.prober_cpu)]
    if opts.evaluate_every is not None:
        cmd += ["--evaluate-every", str(opts.evaluate_every)]
    return cmd


def run_child(kind: str, server: TargetServer, opts: argparse.Namespace) -> dict[str, Any]:
    """One measured run in a fresh process, plus what the target server saw meanwhile."""
    before = server.stats()
    with tempfile.TemporaryFile() as stderr:
        process = spawn(child_command(kind, server.port, opts), stdout=subprocess.PIPE,
                        stderr=stderr)
        try:
            out, _ = process.communicate(timeout=opts.warmup + opts.duration + 120)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{kind} run did not finish in time; killed") from None
        finally:
            stop(process)
        stderr.seek(0)
        log_lines = stderr.read().decode(errors="replace").splitlines()
    lines = [ln for ln in out.decode().splitlines() if ln.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        tail = "\n".join(log_lines[-30:])
        raise RuntimeError(f"{kind} run failed (exit {process.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    after = server.stats()
    requests = after["requests"] - before["requests"]
    result.update({
        "server_requests": requests,
        "server_connections_per_request": round(
            (after["connections"] - before["connections"]) / max(requests, 1), 3),
        "server_cpu_ms_per_request": round(
            1000 * (after["cpu_s"] - before["cpu_s"]) / max(requests, 1), 3),
        "stderr_lines": len(log_lines),
        "stderr_head": log_lines[:3],
        "stderr_tail": log_lines[-3:],
    })
    return result


# --------------------------------------------------------------------------- reporting


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over the repeats; other fields from the first run."""
    def numeric(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    merged = dict(runs[0])
    for key in runs[0]:
        values = [r.get(key) for r in runs]
        if all(numeric(v) for v in values):
            merged[key] = statistics.median(values)
    return merged


# (label, key, format); ratios are primewatch / baseline.
TABLE_ROWS: list[tuple[str, str, str]] = [
    ("achieved probes/s", "achieved_rate", "{:.1f}"),
    ("probes in window", "probes", "{:.0f}"),
    ("failures", "failures", "{:.0f}"),
    ("CPU ms / probe", "cpu_ms_per_probe", "{:.3f}"),
    ("core utilisation", "core_util", "{:.3f}"),
    ("  loop-thread CPU s", "loop_thread_cpu_s", "{:.2f}"),
    ("  other-threads CPU s", "other_threads_cpu_s", "{:.2f}"),
    ("schedule lag p50 ms", "lag_p50_ms", "{:.2f}"),
    ("schedule lag p99 ms", "lag_p99_ms", "{:.2f}"),
    ("schedule lag max ms", "lag_max_ms", "{:.2f}"),
    ("probe latency p50 ms", "latency_p50_ms", "{:.2f}"),
    ("probe latency p99 ms", "latency_p99_ms", "{:.2f}"),
    ("peak RSS MB", "maxrss_mb", "{:.1f}"),
    ("server conns / request", "server_connections_per_request", "{:.3f}"),
    ("server CPU ms / request", "server_cpu_ms_per_request", "{:.3f}"),
]


def fmt(value: Any, pattern: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, 3)
    return None


def render_table(summary: dict[str, dict[str, Any]], opts: argparse.Namespace) -> str:
    pw, base = summary["primewatch"], summary["baseline"]
    lines = [
        f"probe_throughput: {opts.targets} targets @ {opts.targets / opts.rate:g}s = "
        f"{opts.rate:g} probes/s target, window {opts.duration:g}s after {opts.warmup:g}s "
        f"warm-up, {opts.loop}, prober CPU {opts.prober_cpu} / target CPU "
        f"{opts.target_cpu}, medians of {opts.repeat} run(s)",
        f"{'figure':<26}{'primewatch':>12}{'baseline':>12}{'ratio':>9}",
        "-" * 59,
    ]
    for label, key, pattern in TABLE_ROWS:
        r = ratio(pw.get(key), base.get(key))
        lines.append(f"{label:<26}{fmt(pw.get(key), pattern):>12}"
                     f"{fmt(base.get(key), pattern):>12}{fmt(r, '{:.2f}'):>9}")
    lines += [
        "-" * 59,
        f"primewatch results: produced {pw['produced']:.0f}, written {pw['written']:.0f}, "
        f"rows in DB {pw['rows_in_db']:.0f}, dropped {pw['dropped']:.0f}, "
        f"lost {pw['lost']:.0f}; skipped runs {pw['skipped']:.0f}; "
        f"sink backlog max {pw['sink_backlog_max']:.0f}",
        f"primewatch SLO evaluations: in window [at s, took s, blocked loop s] "
        f"{pw['evaluations_in_window']}; all took {pw['evaluation_s_all']} s, blocking "
        f"the loop {pw['evaluation_loop_block_s_all']} s; largest lag at "
        f"{pw['lag_max_at_s']} s into the window",
        f"target server saw {pw['server_requests']:.0f} requests during the primewatch run "
        f"(started {pw['started_total']:.0f}, completed {pw['completed_total']:.0f}) and "
        f"{base['server_requests']:.0f} during the baseline run "
        f"(started {base['started_total']:.0f}, completed {base['completed_total']:.0f})",
    ]
    return "\n".join(lines)


def verdict(pw: dict[str, Any], rate: float) -> dict[str, Any]:
    """Did primewatch meet the issue's goal at the rate asked for?"""
    checks = {
        "rate_held": pw["achieved_rate"] >= 0.99 * rate,
        "lag_p99_under_100ms": pw["lag_p99_ms"] < GOAL_LAG_P99_MS,
        "no_failures": pw["failures"] == 0,
        "nothing_lost_or_dropped": pw["lost"] == 0 and pw["dropped"] == 0,
    }
    return {"goal": f"{GOAL_RATE:g} probes/s on one core, p99 lag < {GOAL_LAG_P99_MS:g} ms",
            "rate_is_goal_rate": rate >= GOAL_RATE, "checks": checks,
            "passed": all(checks.values())}


def environment() -> dict[str, Any]:
    """What a reader needs to compare two result files."""
    versions = {}
    for name in ("httpx", "httpcore", "anyio", "sniffio", "uvloop", "APScheduler",
                 "SQLAlchemy", "prometheus_client", "pydantic"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    git = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        git = {"commit": head, "dirty": bool(dirty)}
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
            "versions": versions, "git": git}


def write_json(report: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"probe_throughput-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sustained probes/s, CPU ms per probe, p99 schedule lag and peak RSS of "
                    "primewatch's runtime against a bare httpx loop, both on one core, "
                    "loopback only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000,
                        help="number of distinct target URLs (each its own job and SLO)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="probes per second to sustain; each target's interval is "
                             "targets/rate seconds")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="length of the measured window, seconds (max 300)")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds run before the window opens (start-up, first cycle)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each kind, alternating order; the table shows medians")
    parser.add_argument("--timeout", type=float, default=4.0,
                        help="per-probe timeout, seconds")
    parser.add_argument("--evaluate-every", type=float, default=None,
                        help="SLO evaluation period in the primewatch run, seconds "
                             "(None: primewatch's own default, 30 s)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop for both probers (uvicorn uses uvloop)")
    parser.add_argument("--prober-cpu", type=int, default=0,
                        help="CPU the measured prober processes are pinned to")
    parser.add_argument("--target-cpu", type=int, default=1,
                        help="CPU the target server is pinned to")
    parser.add_argument("--only", choices=KINDS, default=None,
                        help="run only one kind (for profiling); no ratios then")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.targets < 1 or opts.rate <= 0 or not 0 < opts.duration <= 300 \
            or not 0 <= opts.warmup <= 120 or not 1 <= opts.repeat <= 10:
        parser.error("need targets ≥ 1, rate > 0, 0 < duration ≤ 300, 0 ≤ warmup ≤ 120, "
                     "1 ≤ repeat ≤ 10")
    if opts.rate > 5000:
        parser.error("rate is capped at 5000 probes/s")
    if opts.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            opts.loop = "asyncio"
    return opts


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(opts: argparse.Namespace) -> dict[str, Any]:
    """All runs against one target server; returns the full report."""
    if (os.cpu_count() or 1) < 2:
        progress("warning: one CPU only; prober and target server share it")
    kinds = [opts.only] if opts.only else list(KINDS)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    env = environment()
    bound = opts.repeat * len(kinds) * (opts.warmup + opts.duration + 150) + 60
    with target_server(opts.target_cpu, bound) as server:
        for repeat in range(opts.repeat):
            order = kinds if repeat % 2 == 0 else kinds[::-1]
            for kind in order:
                progress(f"[{repeat + 1}/{opts.repeat}] {kind}: "
                         f"{opts.warmup:g}s warm-up + {opts.duration:g}s window ...")
                runs[kind].append(run_child(kind, server, opts))
    summary = {kind: medians(results) for kind, results in runs.items()}
    report: dict[str, Any] = {
        "benchmark": "probe_throughput",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: v for k, v in vars(opts).items() if k not in ("child", "port")},
        "environment": env, "runs": runs, "median": summary,
    }
    if "primewatch" in summary:
        report["verdict"] = verdict(summary["primewatch"], opts.rate)
    if len(summary) == 2:
        report["ratios"] = {key: ratio(summary["primewatch"].get(key),
                                       summary["baseline"].get(key))
                            for _, key, _ in TABLE_ROWS}
    return report


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.child:
        child_main(opts)
        return 0
    # SIGTERM takes the same path as Ctrl-C, so `finally` kills every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run_benchmark(opts)
    except KeyboardInterrupt:
        progress("interrupted; children stopped")
        return 130
    finally:
        stop_all()
    if len(report["median"]) == 2:
        print(render_table(report["median"], opts))
    else:
        print(json.dumps(report["median"], indent=2))
    if "verdict" in report:
        v = report["verdict"]
        failed = [name for name, ok in v["checks"].items() if not ok]
        print(f"goal ({v['goal']}): {'PASS' if v['passed'] else 'FAIL: ' + ', '.join(failed)}"
              + ("" if v["rate_is_goal_rate"] else f" (at {opts.rate:g}/s, not the goal rate)"))
    print(f"JSON: {write_json(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
