"""Probe throughput: primewatch's real runtime against its peer and a bare httpx loop.

Why this shape: the question is what the whole service costs per probe (scheduler,
httpx, metrics, the result sink and SQLite storage with SLO rollups, the SLO evaluator),
whether it holds a schedule, and how that compares with what people run instead. So in
one run, against the same target server, at the same rate and on the same pinned CPU:

  * primewatch — the real `Runtime` built from `Settings` (`--mixed`: with the other
    probe kinds in proportion, see `mixed.py`);
  * peer — Prometheus + blackbox_exporter, Prometheus scraping blackbox's `/probe` for
    every target at the same interval and storing the result (see `peer.py`);
  * baseline — a bare httpx loop (one shared AsyncClient, keep-alive off, no storage):
    the floor primewatch can reach without changing HTTP clients.

Layout (all loopback, every process bounded in time and killed at the end, also on
Ctrl-C — see `procs.py`):
  * target server (`benchmarks/targets.py`), pinned to --target-cpu;
  * one measured side at a time, pinned to --prober-cpu: a fresh Python child per run
    (its own interpreter and peak RSS), or the peer's two Go processes.

Each side is measured only over the window after --warmup: completed probes, CPU time
(Python: `getrusage(RUSAGE_SELF)`, so the sink's writer thread and the SLO evaluator's
thread are counted, the event-loop thread's share reported from /proc; peer: utime+stime
of both processes), schedule lag (actual − planned start, raw samples; the peer has none),
interval jitter between consecutive probes of one target (all sides), failures and peak
RSS. The target server's counters check that every probe reached it.

    python benchmarks/probe_throughput.py --targets 2000 --rate 400 --sides primewatch,peer,baseline

Prints a side-by-side table (medians over --repeat runs, primewatch/peer and
primewatch/baseline ratios) and the goal verdict, and writes JSON to
benchmarks/results/probe_throughput-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import mixed
import peer
import report
from procs import spawn, stop, stop_all
from profiling import MODES as PROFILE_MODES
from profiling import WindowProfiler, begin_process
from targets import HOST, die_with_parent, pin_to_cpu

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "RESULT "
CHILD_SIDES = ("primewatch", "baseline")
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


def preempted(tid: int) -> int:
    """Involuntary context switches of one thread of this process (0 if gone).

    Why: the prober CPU is not reserved; other processes the kernel runs on it take the
    CPU from the event loop, which shows up as lag. A high count in a window says the
    lag was (partly) the machine, not primewatch.
    """
    try:
        status = Path(f"/proc/self/task/{tid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


@dataclass(slots=True)
class Snapshot:
    """The counters a window is the difference of."""

    wall: float
    cpu: float
    loop_cpu: float
    loop_preempted: int

    @classmethod
    def take(cls, loop_tid: int) -> Snapshot:
        return cls(time.time(), process_cpu(), thread_cpu(loop_tid), preempted(loop_tid))


@dataclass
class Recorder:
    """Raw samples, stamped with wall time so only the measured window is counted.

    Appending a tuple costs well under a microsecond; these appends (and timing each SLO
    gauge publish) are all the benchmark adds to the measured code path.
    """

    lags: list[tuple[float, float]] = field(default_factory=list)
    # (completed at, latency, ok, error class, target, started at)
    probes: list[tuple[float, float, bool, str | None, str, float]] = field(
        default_factory=list)
    slo_publish_s: float = 0.0  # time spent in Metrics.observe_slo, on the event loop

    def lag(self, seconds: float) -> None:
        self.lags.append((time.time(), seconds))

    def probe(self, latency: float, ok: bool, error_class: str | None, target: str,
              started_at: float) -> None:
        self.probes.append((time.time(), latency, ok, error_class, target, started_at))


async def measure_window(warmup: float, duration: float, loop_tid: int,
                         sample: Callable[[], float] | None = None,
                         profiler: WindowProfiler | None = None
                         ) -> tuple[Snapshot, Snapshot, float, dict[str, Any]]:
    """Wait out the warm-up, then snapshot both ends of the window.

    `sample` (e.g. the sink's backlog) is polled every 0.5 s and its maximum returned;
    `profiler` runs over the window only, and its summary is returned.
    """
    await asyncio.sleep(warmup)
    start = Snapshot.take(loop_tid)
    if profiler is not None:
        profiler.start()
    deadline = time.monotonic() + duration
    peak = 0.0
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.5, left))
        if sample is not None:
            peak = max(peak, sample())
    end = Snapshot.take(loop_tid)
    profile = profiler.stop() if profiler is not None else {}
    return start, end, peak, profile


def interval_jitter(probes: list[tuple[float, float, bool, str | None, str, float]],
                    start: float, end: float, interval: float) -> dict[str, Any]:
    """Spread of the actual interval between consecutive starts of one target.

    The same figure Prometheus reports for its scrapes
    (`prometheus_target_interval_length_seconds`), so the sides compare like with like:
    jitter = max(p99 − nominal, nominal − p1) over every consecutive pair in the window.
    """
    starts: dict[str, list[float]] = defaultdict(list)
    for p in probes:
        if start <= p[5] < end:
            starts[p[4]].append(p[5])
    intervals: list[float] = []
    for times in starts.values():
        times.sort()
        intervals += [b - a for a, b in pairwise(times)]
    p1, p50, p99 = (percentile(intervals, q) for q in (1, 50, 99))
    return {
        "interval_samples": len(intervals),
        "interval_p1_s": round(p1, 4), "interval_p50_s": round(p50, 4),
        "interval_p99_s": round(p99, 4),
        "interval_jitter_ms": round(1000 * max(p99 - interval, interval - p1), 3),
    }


def by_kind(inside: list[tuple[float, float, bool, str | None, str, float]],
            kind_of: dict[str, str], window: float) -> dict[str, dict[str, Any]]:
    """Per probe kind (`--mixed`): targets, probes, failures and latency in the window."""
    groups: dict[str, list[tuple[float, float, bool, str | None, str, float]]] = \
        defaultdict(list)
    for p in inside:
        groups[kind_of.get(p[4], "?")].append(p)
    targets = Counter(kind_of.values())
    out = {}
    for kind in sorted(targets, key=lambda k: -targets[k]):
        rows = groups.get(kind, [])
        latencies = [p[1] for p in rows if p[2]]
        failures = Counter(p[3] or "error" for p in rows if not p[2])
        out[kind] = {
            "targets": targets[kind], "probes": len(rows), "rate": round(len(rows) / window, 2),
            "failures": sum(failures.values()), "failure_classes": dict(failures),
            "latency_p50_ms": round(1000 * percentile(latencies, 50), 3),
            "latency_p99_ms": round(1000 * percentile(latencies, 99), 3),
        }
    return out


def summarize(recorder: Recorder, start: Snapshot, end: Snapshot,
              interval: float) -> dict[str, Any]:
    """The figures both Python sides report, computed the same way for both."""
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
        "loop_preempted": end.loop_preempted - start.loop_preempted,
        "lag_samples": len(lags),
        "lag_p50_ms": round(1000 * percentile(lags, 50), 3),
        "lag_p99_ms": round(1000 * percentile(lags, 99), 3),
        "schedule_p99_ms": round(1000 * percentile(lags, 99), 3),
        "lag_max_ms": round(1000 * max(lags, default=math.nan), 3),
        "lag_max_at_s": round(max(window_lags, key=lambda x: x[1])[0] - start.wall, 2)
        if window_lags else None,
        "latency_p50_ms": round(1000 * percentile(latencies, 50), 3),
        "latency_p99_ms": round(1000 * percentile(latencies, 99), 3),
        "started_total": len(recorder.lags),
        "completed_total": len(recorder.probes),
        "rss_end_mb": round(status_mb("VmRSS"), 1),
        "thread_count_end": threading.active_count(),
        **interval_jitter(recorder.probes, start.wall, end.wall, interval),
    }


def target_urls(port: int, count: int) -> list[str]:
    """N distinct target URLs on the one target server."""
    return [f"http://{HOST}:{port}/t/{i}" for i in range(count)]


# --------------------------------------------------------------------------- primewatch


def build_settings(port: int, kinds: list[str], interval: float, timeout: float,
                   db_path: Path, evaluate_every: float | None, sqlite_target: Path) -> Any:
    """Settings as config.yaml would give them: one target per entry of `kinds` (all
    `http` unless `--mixed`), one availability SLO each.

    One SLO per target means every result also becomes an SLO rollup upsert, as in a
    real deployment.
    """
    from monitor.config import Settings

    names = [f"t{i:05d}" for i in range(len(kinds))]
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{db_path}"},
        "targets": [mixed.target_config(kind, name, i, port, interval, timeout, sqlite_target)
                    for i, (name, kind) in enumerate(zip(names, kinds, strict=True))],
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
            recorder.probe(result.latency, result.ok, result.error_class, result.target,
                           result.started_at)
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


async def target_kinds(opts: argparse.Namespace, tmp: Path) -> tuple[list[str], list[str]]:
    """The kind of every target (all `http` unless --mixed) and notes on skipped kinds.

    Must run before `monitor.config` is imported: see `mixed.register`.
    """
    if not opts.mixed:
        return ["http"] * opts.targets, []
    usable, notes = await mixed.usable_kinds(opts.port, opts.timeout, tmp / "target.sqlite")
    notes += mixed.register(usable)
    per_kind = mixed.counts(opts.targets, opts.targets / opts.rate, list(usable))
    for note in notes:
        print(f"--mixed: {note}", file=sys.stderr, flush=True)
    return mixed.interleave(per_kind), notes


async def run_primewatch(opts: argparse.Namespace) -> dict[str, Any]:
    """The real Runtime (scheduler, probes, sink, SQLite storage, metrics, evaluator)."""
    loop_tid = threading.get_native_id()
    tmp = Path(tempfile.mkdtemp(prefix="primewatch-bench-"))
    try:
        mixed.make_sqlite(tmp / "target.sqlite")
        kinds, notes = await target_kinds(opts, tmp)

        from monitor.clock import SystemClock
        from monitor.runtime import Runtime
        from monitor.storage.engine import make_engine, upgrade
        from monitor.storage.repository import count_results

        engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
        upgrade(engine)
        interval = opts.targets / opts.rate
        settings = build_settings(opts.port, kinds, interval, opts.timeout,
                                  tmp / "bench.db", opts.evaluate_every, tmp / "target.sqlite")
        recorder = Recorder()
        metrics = recording_metrics(recorder)
        runtime = Runtime(settings, engine, SystemClock(), metrics)
        evaluations: list[tuple[float, float, float]] = []
        timed_evaluations(runtime, recorder, evaluations)
        await runtime.start()
        try:
            stem = report.RESULTS_DIR / (f"profile-{opts.targets}t-{opts.rate:g}r"
                                         f"{'-mixed' if opts.mixed else ''}")
            start, end, backlog, profile = await measure_window(
                opts.warmup, opts.duration, loop_tid, lambda: runtime.sink.pending,
                WindowProfiler(opts.profile, stem, opts.duration) if opts.profile else None)
        finally:
            await runtime.stop()  # in-flight probes are cancelled, the sink flushes
        produced = runtime.scheduler.runs
        result = summarize(recorder, start, end, interval)
        if profile:
            result["profile"] = profile
        if opts.mixed:
            inside = [p for p in recorder.probes if start.wall <= p[0] < end.wall]
            kind_of = {f"t{i:05d}": kind for i, kind in enumerate(kinds)}
            result["by_kind"] = by_kind(inside, kind_of, end.wall - start.wall)
            result["mixed_notes"] = notes
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
        begun, wall = time.perf_counter(), time.time()
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
        recorder.probe(time.perf_counter() - begun, error is None, error, url, wall)

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
        start, end, _, _ = await measure_window(opts.warmup, opts.duration, loop_tid)
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        if in_flight:
            await asyncio.wait(in_flight, timeout=opts.timeout + 1)
        await client.aclose()
    return summarize(recorder, start, end, opts.targets / opts.rate)


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
    begin_process(opts.profile)
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
    if opts.mixed and kind == "primewatch":
        cmd.append("--mixed")
    if opts.profile and kind == "primewatch":
        cmd += ["--profile", opts.profile]
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


def run_side(side: str, server: TargetServer, opts: argparse.Namespace) -> dict[str, Any]:
    """One measured run of one side."""
    load = os.getloadavg()[0]
    result = run_child(side, server, opts) if side != "peer" else run_peer(server, opts)
    result["loadavg_1m_at_start"] = round(load, 2)
    return result


def run_peer(server: TargetServer, opts: argparse.Namespace) -> dict[str, Any]:
    return peer.run_peer(target_urls(server.port, opts.targets), opts.targets / opts.rate,
                         warmup=opts.warmup, duration_s=opts.duration, timeout=opts.timeout,
                         cpu=opts.prober_cpu, server_stats=server.stats, progress=progress)


# --------------------------------------------------------------------------- main


def parse_sides(text: str) -> list[str]:
    sides = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sides if s not in report.SIDES]
    if unknown or not sides:
        raise argparse.ArgumentTypeError(
            f"sides are a comma-separated subset of {','.join(report.SIDES)}")
    return list(dict.fromkeys(sides))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sustained probes/s, CPU ms per probe, p99 schedule lag, interval "
                    "jitter and peak RSS of primewatch's runtime, Prometheus + "
                    "blackbox_exporter and a bare httpx loop, each on one core, loopback "
                    "only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000,
                        help="number of distinct targets (each its own job and SLO)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="probes per second to sustain; each target's interval is "
                             "targets/rate seconds")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="length of the measured window, seconds (max 300)")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds run before the window opens (start-up, first cycle; "
                             "the peer's count from when it has scraped every target once)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each side, alternating order; the table shows medians")
    parser.add_argument("--timeout", type=float, default=4.0,
                        help="per-probe timeout, seconds")
    parser.add_argument("--evaluate-every", type=float, default=None,
                        help="SLO evaluation period in the primewatch run, seconds "
                             "(None: primewatch's own default, 30 s)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop for the Python sides (uvicorn uses uvloop)")
    parser.add_argument("--prober-cpu", type=int, default=0,
                        help="CPU every measured prober (Python child or peer) is pinned to")
    parser.add_argument("--target-cpu", type=int, default=1,
                        help="CPU the target server is pinned to")
    parser.add_argument("--sides", type=parse_sides, default=["primewatch", "baseline"],
                        help="which sides to run, comma-separated: "
                             + ",".join(report.SIDES))
    parser.add_argument("--only", choices=report.SIDES, default=None,
                        help="shorthand for --sides with one side (e.g. while profiling)")
    parser.add_argument("--mixed", action="store_true",
                        help="primewatch probes a mix of kinds (http, prometheus, page, "
                             "redis, sql; see benchmarks/mixed.py); the peer and the "
                             "baseline stay http-only")
    parser.add_argument("--profile", choices=PROFILE_MODES, default=None,
                        help="profile the primewatch child over the window (cprofile: "
                             "event-loop thread CPU; tracemalloc: Python heap by site; "
                             "py-spy: all threads, sampled, py-spy must be on PATH); files "
                             "go to benchmarks/results/; not a measurement run")
    parser.add_argument("--wait-quiet", type=float, default=None, metavar="LOAD",
                        help="before starting, wait until the 1-minute load average is "
                             "below LOAD (checked every 20 s, at most --wait-max minutes; "
                             "then runs anyway and says so in the output and the JSON)")
    parser.add_argument("--wait-max", type=float, default=25.0,
                        help="minutes --wait-quiet waits at most")
    parser.add_argument("--tag", default="",
                        help="suffix for the JSON file name (e.g. the run's purpose)")
    parser.add_argument("--child", choices=CHILD_SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.only:
        opts.sides = [opts.only]
    if opts.targets < 1 or opts.rate <= 0 or not 0 < opts.duration <= 300 \
            or not 0 <= opts.warmup <= 120 or not 1 <= opts.repeat <= 10:
        parser.error("need targets ≥ 1, rate > 0, 0 < duration ≤ 300, 0 ≤ warmup ≤ 120, "
                     "1 ≤ repeat ≤ 10")
    if opts.rate > 5000:
        parser.error("rate is capped at 5000 probes/s")
    if opts.mixed and opts.targets < 100:
        parser.error("--mixed needs at least 100 targets (the kinds come in shares)")
    if "peer" in opts.sides and not opts.child and (why := peer.available()):
        parser.error(f"the peer side cannot run: {why}")
    if opts.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            opts.loop = "asyncio"
    return opts


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_quiet(limit: float | None, max_minutes: float) -> dict[str, Any]:
    """Wait for a quiet machine: other work on the prober CPU shows up as lag and CPU.

    Returns what happened, for the JSON and the printed output.
    """
    if limit is None:
        return {"waited": False}
    begun = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - begun
        if load < limit:
            return {"waited": True, "quiet": True, "load_1m": load,
                    "waited_s": round(waited)}
        if waited >= 60 * max_minutes:
            progress(f"machine still busy after {waited / 60:.0f} min (load {load:.2f} ≥ "
                     f"{limit:g}); running anyway")
            return {"waited": True, "quiet": False, "load_1m": load,
                    "waited_s": round(waited)}
        progress(f"waiting for a quiet machine: 1-minute load {load:.2f} ≥ {limit:g} "
                 f"({waited / 60:.1f} min so far)")
        time.sleep(20)


def run_benchmark(opts: argparse.Namespace) -> dict[str, Any]:
    """All runs against one target server; returns the full report."""
    if (os.cpu_count() or 1) < 2:
        progress("warning: one CPU only; prober and target server share it")
    if opts.mixed and set(opts.sides) - {"primewatch"}:
        progress("note: --mixed applies to primewatch; the peer and the baseline probe "
                 "http only")
    sides = list(opts.sides)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    quiet = wait_quiet(opts.wait_quiet, opts.wait_max)
    env = report.environment()
    env["wait_quiet"] = quiet
    bound = opts.repeat * len(sides) * (opts.warmup + opts.duration + 200) + 60
    with target_server(opts.target_cpu, bound) as server:
        for repeat in range(opts.repeat):
            order = sides if repeat % 2 == 0 else sides[::-1]
            for side in order:
                progress(f"[{repeat + 1}/{opts.repeat}] {side}: "
                         f"{opts.warmup:g}s warm-up + {opts.duration:g}s window ...")
                runs[side].append(run_side(side, server, opts))
    summary = {side: report.medians(results) for side, results in runs.items()}
    result: dict[str, Any] = {
        "benchmark": "probe_throughput",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: v for k, v in vars(opts).items() if k not in ("child", "port")},
        "environment": env, "runs": runs, "median": summary,
        "ratios": report.ratios(summary),
    }
    if "primewatch" in summary:
        result["verdict"] = report.verdict(summary, opts)
    return result


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.child:
        child_main(opts)
        return 0
    # SIGTERM takes the same path as Ctrl-C, so `finally` kills every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run_benchmark(opts)
    except KeyboardInterrupt:
        progress("interrupted; children stopped")
        return 130
    finally:
        stop_all()
    table = report.render_table(result["median"], opts)
    lines = [table]
    quiet = result["environment"]["wait_quiet"]
    if quiet.get("waited"):
        lines.append(f"machine load before the run: {quiet['load_1m']:.2f} after waiting "
                     f"{quiet['waited_s']} s" + ("" if quiet["quiet"] else
                                                  " — NOT quiet: waited the maximum, ran anyway"))
    if "verdict" in result:
        lines.append(report.verdict_line(result["verdict"], opts))
    result["printed"] = "\n".join(lines)
    print(result["printed"])
    print(f"JSON: {report.write_json(result, opts.tag)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
