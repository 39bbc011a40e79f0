"""Tables, ratios, goal verdicts and the JSON file of `probe_throughput.py`.

Why separate: the measuring code should read as measuring; how the figures are laid out
side by side (primewatch | peer | baseline, with primewatch/other ratios) and judged
against the issue's goals changes for different reasons.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
SIDES = ("primewatch", "peer", "baseline")

# The goals.
GOAL_RATE = 400.0  # probes/s on one core, storage and metrics included
GOAL_LAG_P99_MS = 20.0
GOAL_RSS_MB = 150.0
GOAL_RSS_TARGETS = 5000  # the RSS goal is stated at 5,000 targets
GOAL_CPU_VS_PEER = 1.0
# When the peer did not run in this run: peerbench's figure (2000 targets @5s, 400/s).
PEER_REFERENCE_CPU_MS = 1.91

# (label, key, format). `schedule_p99_ms` is each side's own precision figure: lag p99
# for the Python sides, interval jitter for the peer (it has no planned start); the
# like-for-like row is `interval_jitter_ms`, computed the same way for every side.
TABLE_ROWS: list[tuple[str, str, str]] = [
    ("achieved probes/s", "achieved_rate", "{:.1f}"),
    ("probes in window", "probes", "{:.0f}"),
    ("failures", "failures", "{:.0f}"),
    ("CPU ms / probe", "cpu_ms_per_probe", "{:.3f}"),
    ("core utilisation", "core_util", "{:.3f}"),
    ("schedule p99 ms (lag|jitter)*", "schedule_p99_ms", "{:.2f}"),
    ("  lag p50 ms", "lag_p50_ms", "{:.2f}"),
    ("  lag p99 ms", "lag_p99_ms", "{:.2f}"),
    ("  lag max ms", "lag_max_ms", "{:.2f}"),
    ("  lag p99 ms outside SLO evals", "lag_p99_outside_evaluations_ms", "{:.2f}"),
    ("  interval jitter ± ms", "interval_jitter_ms", "{:.2f}"),
    ("probe latency p50 ms", "latency_p50_ms", "{:.2f}"),
    ("probe latency p99 ms", "latency_p99_ms", "{:.2f}"),
    ("peak RSS MB", "maxrss_mb", "{:.1f}"),
    ("loop thread preempted (count)", "loop_preempted", "{:.0f}"),
    ("other processes on prober CPU", "foreign_cpu_util", "{:.3f}"),
    ("server conns / request", "server_connections_per_request", "{:.3f}"),
    ("server CPU ms / request", "server_cpu_ms_per_request", "{:.3f}"),
]
RATIO_KEYS = ("achieved_rate", "cpu_ms_per_probe", "core_util", "schedule_p99_ms",
              "interval_jitter_ms", "maxrss_mb")


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over the repeats; other fields from the first run."""
    def numeric(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    merged = dict(runs[0])
    for key in runs[0]:
        values: list[Any] = [r.get(key) for r in runs]
        if all(numeric(v) for v in values):
            merged[key] = statistics.median(values)
    return merged


def fmt(value: Any, pattern: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b \
            and not (math.isnan(a) or math.isnan(b)):
        return round(a / b, 3)
    return None


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """primewatch / peer and primewatch / baseline for the headline figures."""
    pw = summary.get("primewatch")
    if pw is None:
        return {}
    return {f"primewatch/{other}": {key: ratio(pw.get(key), summary[other].get(key))
                                    for key in RATIO_KEYS}
            for other in ("peer", "baseline") if other in summary}


def headline(opts: argparse.Namespace) -> str:
    mix = ", MIXED kinds (primewatch)" if opts.mixed else ""
    return (f"probe_throughput: {opts.targets} targets @ {opts.targets / opts.rate:g}s = "
            f"{opts.rate:g} probes/s{mix}, window {opts.duration:g}s after "
            f"{opts.warmup:g}s warm-up, {opts.loop}, prober CPU {opts.prober_cpu} / target "
            f"CPU {opts.target_cpu}, medians of {opts.repeat} run(s)")


def render_table(summary: dict[str, dict[str, Any]], opts: argparse.Namespace) -> str:
    """The side-by-side table plus the per-side detail lines."""
    sides = [s for s in SIDES if s in summary]
    others = [s for s in ("peer", "baseline") if s in summary] if "primewatch" in summary \
        else []
    width = 31 + 12 * len(sides) + 10 * len(others)
    lines = [headline(opts),
             f"{'figure':<31}" + "".join(f"{s:>12}" for s in sides)
             + "".join(f"{'pw/' + o[:4]:>10}" for o in others),
             "-" * width]
    for label, key, pattern in TABLE_ROWS:
        cells = "".join(f"{fmt(summary[s].get(key), pattern):>12}" for s in sides)
        cells += "".join(
            f"{fmt(ratio(summary['primewatch'].get(key), summary[o].get(key)), '{:.2f}'):>10}"
            for o in others)
        lines.append(f"{label:<31}{cells}")
    lines.append("-" * width)
    lines.append("* lag = actual − planned start (Python sides); the peer has no planned "
                 "start, so its figure is interval jitter (max |interval p1|p99 − nominal|); "
                 "'interval jitter' is the like-for-like row.")
    if "primewatch" in summary:
        lines += primewatch_lines(summary["primewatch"])
    if "peer" in summary:
        lines += peer_lines(summary["peer"])
    if "baseline" in summary:
        b = summary["baseline"]
        lines.append(f"baseline: started {b['started_total']:.0f}, completed "
                     f"{b['completed_total']:.0f}; target server saw "
                     f"{b['server_requests']:.0f} requests in the whole run")
    return "\n".join(lines)


def primewatch_lines(pw: dict[str, Any]) -> list[str]:
    lines = [
        f"primewatch: produced {pw['produced']:.0f}, written {pw['written']:.0f}, rows in "
        f"DB {pw['rows_in_db']:.0f}, dropped {pw['dropped']:.0f}, lost {pw['lost']:.0f}; "
        f"skipped runs {pw['skipped']:.0f}; sink backlog max {pw['sink_backlog_max']:.0f}; "
        f"loop thread {pw['loop_thread_cpu_s']:.2f} s + other threads "
        f"{pw['other_threads_cpu_s']:.2f} s CPU",
        f"primewatch SLO evaluations in window [at s, took s, blocked loop s]: "
        f"{pw['evaluations_in_window']}; largest lag at {pw['lag_max_at_s']} s into the "
        f"window",
    ]
    behind = [row for row in pw.get("timeline") or [] if row[2] > 100]
    if behind:
        first = behind[0]
        during = " during an SLO evaluation" if first[5] else ""
        lines.append(
            f"primewatch first fell >100 ms behind {first[0]:.0f} s after start (window "
            f"opens at {pw['window_starts_at_s']:.0f} s){during}; "
            f"{len(behind)} s of the run had a lag >100 ms")
    for kind, k in (pw.get("by_kind") or {}).items():
        lines.append(f"  {kind:<11} {k['targets']:>5} targets, {k['probes']:>6} probes "
                     f"({k['rate']:.1f}/s), failures {k['failures']} {k['failure_classes']}, "
                     f"latency p50/p99 {fmt(k['latency_p50_ms'], '{:.2f}')}/"
                     f"{fmt(k['latency_p99_ms'], '{:.2f}')} ms")
    lines += [f"  note: {note}" for note in pw.get("mixed_notes") or []]
    return lines


def peer_lines(peer: dict[str, Any]) -> list[str]:
    q = peer.get("interval_quantiles_s") or {}
    return [
        f"peer: CPU ms/probe prom {peer['cpu_ms_per_probe_prom']:.3f} + bb "
        f"{peer['cpu_ms_per_probe_bb']:.3f}; peak RSS prom {peer['maxrss_mb_prom']:.1f} + "
        f"bb {peer['maxrss_mb_bb']:.1f} MB; scrapes in window {peer['scrapes_in_window']} "
        f"(expected {peer['scrapes_expected']}); targets up {fmt(peer['targets_up'], '{:.0f}')}"
        f"/{peer['targets_total']}; scrape duration p99 "
        f"{fmt(peer['scrape_duration_p99_ms'], '{:.1f}')} ms; head series "
        f"{fmt(peer['tsdb_head_series'], '{:.0f}')}",
        "peer interval quantiles (s, Prometheus' own summary, last 10 min): "
        + ", ".join(f"p{float(k) * 100:g}={v:.4f}" for k, v in sorted(q.items(),
                                                                        key=lambda x: float(x[0]))),
    ]


def verdict(summary: dict[str, dict[str, Any]], opts: argparse.Namespace) -> dict[str, Any]:
    """Did primewatch meet the issue's goals in this run?"""
    pw = summary["primewatch"]
    peer = summary.get("peer")
    peer_cpu = peer["cpu_ms_per_probe"] if peer else PEER_REFERENCE_CPU_MS
    checks = {
        "rate_held": pw["achieved_rate"] >= 0.99 * opts.rate,
        "cpu_per_probe_le_peer": pw["cpu_ms_per_probe"] <= GOAL_CPU_VS_PEER * peer_cpu,
        "lag_p99_le_20ms": pw["lag_p99_ms"] <= GOAL_LAG_P99_MS,
        "peak_rss_under_150mb": pw["maxrss_mb"] < GOAL_RSS_MB,
        "no_failures": pw["failures"] == 0,
        "nothing_lost_or_dropped": pw["lost"] == 0 and pw["dropped"] == 0,
    }
    return {
        "goal": f"{GOAL_RATE:g} probes/s on one core with storage and metrics, CPU/probe ≤ "
                f"{GOAL_CPU_VS_PEER:g}× the peer's, p99 lag ≤ {GOAL_LAG_P99_MS:g} ms, peak RSS "
                f"< {GOAL_RSS_MB:g} MB at {GOAL_RSS_TARGETS} targets",
        "peer_cpu_ms_per_probe": peer_cpu,
        "peer_cpu_source": "this run" if peer else
        f"peerbench reference {PEER_REFERENCE_CPU_MS} (peer not run)",
        "cpu_vs_peer": ratio(pw["cpu_ms_per_probe"], peer_cpu),
        "rate_is_goal_rate": opts.rate >= GOAL_RATE,
        "targets_is_rss_goal": opts.targets >= GOAL_RSS_TARGETS,
        "checks": checks, "passed": all(checks.values()),
    }


def verdict_line(v: dict[str, Any], opts: argparse.Namespace) -> str:
    failed = [name for name, ok in v["checks"].items() if not ok]
    caveats = []
    if not v["rate_is_goal_rate"]:
        caveats.append(f"at {opts.rate:g}/s, not the goal rate")
    if not v["targets_is_rss_goal"]:
        caveats.append(f"RSS at {opts.targets} targets, the goal is at {GOAL_RSS_TARGETS}")
    return (f"goal ({v['goal']}): {'PASS' if v['passed'] else 'FAIL: ' + ', '.join(failed)}"
            f"; CPU vs peer {fmt(v['cpu_vs_peer'], '{:.2f}')}× ({v['peer_cpu_source']})"
            + (f" [{'; '.join(caveats)}]" if caveats else ""))


def environment() -> dict[str, Any]:
    """What a reader needs to compare two result files."""
    versions: dict[str, str | None] = {}
    for name in ("httpx", "httpcore", "anyio", "sniffio", "uvloop", "APScheduler",
                 "SQLAlchemy", "prometheus_client", "pydantic", "redis"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    for binary in ("prometheus", "prometheus-blackbox-exporter"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([f"/usr/bin/{binary}", "--version"], capture_output=True,
                                 text=True, timeout=10)
            versions[binary] = (out.stdout or out.stderr).splitlines()[0][:120]
    git = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        git = {"commit": head, "dirty": bool(dirty)}
    if not git.get("commit") and os.environ.get("BENCH_GIT_COMMIT"):
        # Run from an exported tree (`git archive`), which has no .git of its own.
        git = {"commit": os.environ["BENCH_GIT_COMMIT"], "dirty": False, "exported": True}
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
            "versions": versions, "git": git}


def write_json(report: dict[str, Any], tag: str = "") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"probe_throughput-{stamp}{'-' + tag if tag else ''}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path
