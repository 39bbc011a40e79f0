"""Optional profiling of the primewatch child over the measured window (`--profile`).

Why in the benchmark: when a goal is missed the next question is where the CPU or the
memory goes, under exactly the load that missed it. Both profilers cost time, so a
profiled run's own figures are not the measurement; run it separately.

  * `cprofile` — deterministic profile of the event-loop thread (where probes, metrics
    and scheduling run) over the window, in thread CPU time; worker threads (SQLite
    writes, SLO evaluation) are not in it. Writes `<stem>.pstats` and a top-40 text file.
    Its overhead is large (2–3×): profile at a rate the child still holds, or the profile
    shows an overloaded process (timeouts, backlog) instead of the steady state.
  * `py-spy` — samples every thread of the child (100 Hz, non-blocking) over the window
    with py-spy, if on PATH; cheap enough to profile at the measured rate. Writes the
    collapsed stacks and a summary: top functions by own time and by inclusive time,
    per thread kind, and the share of each component (httpx, APScheduler, metrics...).
  * `tracemalloc` — traces every allocation from the child's start; at the window's end
    writes the top allocation sites by line and by file (the live Python heap, which is
    a part of RSS: interpreter, shared libraries, SQLite's page cache and allocator
    slack are not Python objects).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

MODES = ("cprofile", "tracemalloc", "py-spy")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def begin_process(mode: str | None) -> None:
    """Call first thing in the child: tracemalloc must see the imports too."""
    if mode == "tracemalloc":
        tracemalloc.start(1)


class WindowProfiler:
    """Turns the chosen profiler on at the window's start and reports at its end."""

    def __init__(self, mode: str | None, stem: Path, duration: float = 0.0) -> None:
        self.mode = mode
        self.stem = stem
        self.duration = duration
        self._profile: cProfile.Profile | None = None
        self._sampler: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.mode == "py-spy":
            binary = shutil.which("py-spy")
            if binary is None:
                raise RuntimeError("--profile py-spy: no py-spy on PATH")
            self.stem.parent.mkdir(parents=True, exist_ok=True)
            self._sampler = subprocess.Popen(
                [binary, "record", "-p", str(os.getpid()), "-d", str(max(1, int(self.duration))),
                 "-r", "100", "--nonblocking", "--threads", "--full-filenames", "-f", "raw",
                 "-o", f"{self.stem}-pyspy.raw"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.mode == "cprofile":
            # Thread CPU time, not wall time: time the kernel gave to other processes on
            # a shared CPU must not be charged to whatever function was running.
            self._profile = cProfile.Profile(time.thread_time)
            self._profile.enable()

    def stop(self) -> dict[str, Any]:
        """Stop and write the files; returns a small summary for the result JSON."""
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        if self.mode == "py-spy" and self._sampler is not None:
            try:
                self._sampler.wait(30)
            except subprocess.TimeoutExpired:
                self._sampler.kill()
                self._sampler.wait()
            raw = Path(f"{self.stem}-pyspy.raw")
            text, summary = summarize_collapsed(raw.read_text() if raw.exists() else "")
            Path(f"{self.stem}-pyspy.txt").write_text(text)
            return {"profile": "py-spy", **summary,
                    "files": [str(raw), f"{self.stem}-pyspy.txt"]}
        if self.mode == "cprofile" and self._profile is not None:
            self._profile.disable()
            self._profile.dump_stats(f"{self.stem}.pstats")
            out = io.StringIO()
            stats = pstats.Stats(self._profile, stream=out)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(40)
            Path(f"{self.stem}-cprofile.txt").write_text(out.getvalue())
            return {"profile": "cprofile", "files": [f"{self.stem}.pstats",
                                                     f"{self.stem}-cprofile.txt"]}
        if self.mode == "tracemalloc":
            snapshot = tracemalloc.take_snapshot()
            current, peak = tracemalloc.get_traced_memory()
            lines = [f"traced now {current / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB", "",
                     "top 40 by file:"]
            by_file = snapshot.statistics("filename")
            lines += [f"{s.size / 2**20:8.2f} MB {s.count:>9} blocks  "
                      f"{s.traceback[0].filename}" for s in by_file[:40]]
            lines += ["", "top 60 by line:"]
            lines += [f"{s.size / 2**20:8.2f} MB {s.count:>9} blocks  {s.traceback[0]}"
                      for s in snapshot.statistics("lineno")[:60]]
            Path(f"{self.stem}-tracemalloc.txt").write_text("\n".join(lines) + "\n")
            return {"profile": "tracemalloc", "traced_mb": round(current / 2**20, 1),
                    "traced_peak_mb": round(peak / 2**20, 1),
                    "top_files_mb": {s.traceback[0].filename: round(s.size / 2**20, 2)
                                     for s in by_file[:15]},
                    "files": [f"{self.stem}-tracemalloc.txt"]}
        return {}


def component(path: str) -> str:
    """Which part of the stack a source file belongs to (library, stdlib area, module)."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for root in ("monitor", "probes", "slo", "benchmarks"):
        marker = f"/{root}/"
        if marker in path:
            return f"{root}/{path.split(marker, 1)[1].removesuffix('.py')}"
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return path


def summarize_collapsed(raw: str, top: int = 40) -> tuple[str, dict[str, Any]]:
    """Own time and inclusive time from py-spy's collapsed stacks, per thread kind.

    Own time: the innermost Python frame's function and component (time in C code called
    from it counts there). Inclusive: every function/component on the stack, once.
    """
    own_fn: Counter[str] = Counter()
    own_comp: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    incl_comp: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, _, frames_text = stack.partition(";")
        thread = re.sub(r"[-_ ]?\d+.*$", "", head.split(": ", 1)[-1]) or "?"
        threads[thread] += count
        total += count
        parsed = []
        for frame in frames_text.split(";"):
            match = _FRAME.match(frame)
            if match:
                parsed.append((f"{match['func']} ({component(match['file'])}:"
                               f"{match['line']})", component(match["file"])))
        if not parsed:
            continue
        own_fn[parsed[-1][0].rsplit(":", 1)[0] + ")"] += count
        own_comp[parsed[-1][1]] += count
        for name in {f.rsplit(":", 1)[0] + ")" for f, _ in parsed}:
            incl_fn[name] += count
        for comp in {c for _, c in parsed}:
            incl_comp[comp] += count

    def table(title: str, counter: Counter[str], n: int) -> list[str]:
        rows = [f"{100 * v / max(total, 1):6.1f} %  {k}" for k, v in counter.most_common(n)]
        return ["", title, *rows]

    lines = [f"{total} samples (100 Hz, on-CPU only) over all threads"]
    lines += table("by thread:", threads, 20)
    lines += table("own time by component:", own_comp, 30)
    lines += table("inclusive time by component:", incl_comp, 30)
    lines += table("own time by function:", own_fn, top)
    lines += table("inclusive time by function:", incl_fn, top)
    summary = {"samples": total,
               "threads_pct": {k: round(100 * v / max(total, 1), 1) for k, v in threads.items()},
               "own_by_component_pct": {k: round(100 * v / max(total, 1), 1)
                                        for k, v in own_comp.most_common(15)}}
    return "\n".join(lines) + "\n", summary
