"""Measuring a Python prober's window: counters, raw samples and the figures from them.

Why a module of its own: the primewatch child and the baseline child must compute every
figure the same way (window bounds, CPU, lag and interval-jitter percentiles), and the
child entry points in `probe_throughput.py` should read as "run this, measure that".
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from procs import cpu_busy_s
from profiling import WindowProfiler


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
    cpu_busy: float  # the whole prober CPU, every process

    @classmethod
    def take(cls, loop_tid: int) -> Snapshot:
        cpus = os.sched_getaffinity(0)
        busy = cpu_busy_s(next(iter(cpus))) if len(cpus) == 1 else math.nan
        return cls(time.time(), process_cpu(), thread_cpu(loop_tid), preempted(loop_tid),
                   busy)


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
        # Other processes' share of the prober CPU in the window (0 on a quiet machine).
        "foreign_cpu_util": round(max(0.0, end.cpu_busy - start.cpu_busy - cpu) / window, 3),
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


def lag_outside(recorder: Recorder, start: Snapshot, end: Snapshot,
                evaluations: list[tuple[float, float, float]]) -> dict[str, Any]:
    """Lag p99 of the probes that did not start during an SLO evaluation (+0.5 s).

    Why: an evaluation competes with the event loop for the GIL for up to seconds; this
    separates "the scheduler/probe path is slow" from "the evaluation stalls it".
    """
    spans = [(t, t + d + 0.5) for t, d, _ in evaluations]
    inside = [lag for t, lag in recorder.lags if start.wall <= t < end.wall]
    outside = [lag for t, lag in recorder.lags if start.wall <= t < end.wall
               and not any(a <= t < b for a, b in spans)]
    return {"lag_p99_outside_evaluations_ms": round(1000 * percentile(outside, 99), 3),
            "lag_samples_during_evaluations": len(inside) - len(outside)}


def timeline(recorder: Recorder, began: float, evaluations: list[tuple[float, float, float]]
             ) -> list[list[float]]:
    """Per second since the runtime started: [s, probes started, max lag ms, completed,
    failed, evaluating (0/1)].

    Why: when the schedule falls behind, the window's figures say *that* it did; this
    says *when* it started (start-up, first evaluation, a GC pause...) and whether it
    recovered.
    """
    seconds = int(max([t for t, _ in recorder.lags] + [began]) - began) + 1
    rows = [[float(i), 0.0, 0.0, 0.0, 0.0, 0.0] for i in range(seconds)]
    for t, lag in recorder.lags:
        row = rows[min(seconds - 1, max(0, int(t - began)))]
        row[1] += 1
        row[2] = max(row[2], round(1000 * lag, 1))
    for p in recorder.probes:
        row = rows[min(seconds - 1, max(0, int(p[0] - began)))]
        row[3] += 1
        row[4] += 0 if p[2] else 1
    for t, d, _ in evaluations:
        for i in range(max(0, int(t - began)), min(seconds, int(t + d - began) + 1)):
            rows[i][5] = 1.0
    return rows
