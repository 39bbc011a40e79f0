"""Process bookkeeping for the benchmarks: start children pinned, tracked, and always killed.

Why one place: the benchmark starts Python children, a target server and two Go
binaries (the peer). Every one of them must be bounded in time and gone when the
benchmark ends — normally, on Ctrl-C, on SIGTERM, or when the benchmark itself is
killed — so all are started through `spawn`, which puts them in their own session (a
Ctrl-C reaches only us, and we stop them in order), can pin them to a CPU before
`exec`, and asks Linux to SIGKILL them when we die (PR_SET_PDEATHSIG survives `exec`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets import HOST

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1

_children: list[subprocess.Popen[bytes]] = []


def _before_exec(cpu: int | None) -> Callable[[], None]:
    """Runs in the forked child before exec: pin to `cpu`, die with the parent."""
    def setup() -> None:
        if cpu is not None and cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return setup


def spawn(cmd: list[str], *, cpu: int | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start and track a child in its own session; `cpu` pins it before exec.

    Pinning before exec matters for Go: the runtime sizes GOMAXPROCS from the affinity
    mask it finds at start-up, so the peer gets one P, like Python gets one core.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(cmd, start_new_session=True, env=env,
                               preexec_fn=_before_exec(cpu), **kwargs)
    _children.append(process)
    return process


def stop(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ValueError):
        _children.remove(process)


def stop_all() -> None:
    """Stop every child still tracked (the `finally` of the benchmark)."""
    for process in list(_children):
        stop(process)


def free_port() -> int:
    """A currently free loopback port, for binaries that cannot report the one they got.

    There is a window between closing this socket and the binary binding the port; on a
    loopback-only benchmark machine that race is theoretical, and a failed bind shows up
    as a start-up error, not as wrong numbers.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds of process `pid`, all threads (clock-tick resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the name may contain spaces and ')'
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_status_mb(pid: int | str, key: str) -> float:
    """A memory figure of a process from /proc: VmRSS (now) or VmHWM (peak RSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_busy_s(cpu: int) -> float:
    """Busy (non-idle, non-iowait) seconds of one CPU since boot, from /proc/stat.

    With the prober pinned to `cpu`, busy time minus the prober's own CPU time is what
    other processes took from it during a window: the machine's share of the figures.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return (sum(values[:8]) - idle) / TICKS
    return float("nan")


def proc_affinity(pid: int) -> list[int]:
    """The CPUs process `pid` may run on (to show the pinning really happened)."""
    return sorted(os.sched_getaffinity(pid))
