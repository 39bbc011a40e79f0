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
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import mixed
import peer
import report
from measure import (
    Recorder,
    by_kind,
    lag_outside,
    measure_window,
    status_mb,
    summarize,
    timeline,
)
from procs import spawn, stop, stop_all
from profiling import MODES as PROFILE_MODES
from profiling import WindowProfiler, begin_process
from targets import HOST, die_with_parent, pin_to_cpu

HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "RESULT "
CHILD_SIDES = ("primewatch", "baseline")
T = TypeVar("T")


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


async def freeze_gc_later(delay: float) -> None:
    """`--gc-freeze`: what-if experiment for a change primewatch does not have (yet).

    Once every target has run once (its metric children exist), move everything alive
    into the permanent generation, so full collections stop walking it.
    """
    import gc

    await asyncio.sleep(delay)
    gc.collect()
    gc.freeze()


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
        began = time.time()
        await runtime.start()
        freezer = asyncio.create_task(freeze_gc_later(interval + 1.0)) \
            if opts.gc_freeze else None
        try:
            stem = report.RESULTS_DIR / (f"profile-{opts.targets}t-{opts.rate:g}r"
                                         f"{'-mixed' if opts.mixed else ''}")
            start, end, backlog, profile = await measure_window(
                opts.warmup, opts.duration, loop_tid, lambda: runtime.sink.pending,
                WindowProfiler(opts.profile, stem, opts.duration) if opts.profile else None)
        finally:
            if freezer is not None:
                freezer.cancel()
            await runtime.stop()  # in-flight probes are cancelled, the sink flushes
        produced = runtime.scheduler.runs
        result = summarize(recorder, start, end, interval)
        result.update(lag_outside(recorder, start, end, evaluations))
        result["timeline"] = timeline(recorder, began, evaluations)
        result["window_starts_at_s"] = round(start.wall - began, 2)
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
    if opts.gc_freeze and kind == "primewatch":
        cmd.append("--gc-freeze")
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
                        help="before each side, wait until the 1-minute load average is "
                             "below LOAD (checked every 20 s, at most --wait-max minutes; "
                             "then runs anyway and says so in the output and the JSON)")
    parser.add_argument("--wait-max", type=float, default=25.0,
                        help="minutes --wait-quiet waits at most")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="what-if: gc.freeze() in the primewatch child once every "
                             "target has run (not something primewatch does itself)")
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
    env = report.environment()
    # The target server's hard time limit: every side's run plus its wait for quiet.
    wait = 60 * opts.wait_max + 30 if opts.wait_quiet is not None else 0
    bound = opts.repeat * len(sides) * (opts.warmup + opts.duration + 200 + wait) + 60
    with target_server(opts.target_cpu, bound) as server:
        for repeat in range(opts.repeat):
            order = sides if repeat % 2 == 0 else sides[::-1]
            for side in order:
                quiet = wait_quiet(opts.wait_quiet, opts.wait_max)
                progress(f"[{repeat + 1}/{opts.repeat}] {side}: "
                         f"{opts.warmup:g}s warm-up + {opts.duration:g}s window ...")
                runs[side].append({**run_side(side, server, opts), "wait_quiet": quiet})
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
    for side, side_runs in result["runs"].items():
        for run in side_runs:
            quiet = run["wait_quiet"]
            if quiet.get("waited"):
                lines.append(
                    f"{side}: 1-minute load {quiet['load_1m']:.2f} at start after waiting "
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
