"""How late the prober's own event loop ran while a probe waited for its answer.

A probe's latency is the time between two points of our own code, so it also holds
every moment the process could not run it: a CPU-hungry neighbour, a GC pause, a slow
callback of another task. Those moments say nothing about the target. `LoopLag`
measures them with a timer that re-arms itself every `tick` seconds for as long as the
request is in flight and adds up how late each one fired; anything that delays our
coroutine's resumption delays that timer too.

The scheduler's start lag (`primewatch_scheduler_lag_seconds`) is not reused for this on
purpose: it is taken before the probe's clock starts, so it never inflates a latency.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from types import TracebackType

DEFAULT_TICK = 0.02
"""Seconds between samples: a stall is under-counted by at most one tick, and a probe of
a few seconds costs a few hundred cheap callbacks."""


class LoopLag:
    """`with LoopLag() as lag: ...` inside a running loop; afterwards `lag.seconds` is
    how long, in total, the loop ran late while the block ran.

    All blocks open on one loop share one re-arming timer (`_Monitor`): a probe in
    flight costs two reads of a running total, not a timer of its own, so thousands of
    concurrent probes add no callbacks to the loop they are measuring.
    """

    def __init__(self, tick: float = DEFAULT_TICK) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self.seconds = 0.0
        self._monitor: _Monitor | None = None
        self._start = 0.0

    def __enter__(self) -> LoopLag:
        loop = asyncio.get_running_loop()
        monitor = _MONITORS.get(loop)
        if monitor is None:
            monitor = _MONITORS[loop] = _Monitor(loop, self.tick)
        self._monitor = monitor
        self._start = monitor.join()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            self.seconds = max(0.0, monitor.leave() - self._start)


class _Monitor:
    """One timer per loop, running while any `LoopLag` block is open: it re-arms every
    `tick` seconds and adds up how late each firing was."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self._loop = loop
        self._tick = tick
        self._late = 0.0
        self._users = 0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def join(self) -> float:
        """Start (or share) the timer; the running total of lateness now."""
        self._users += 1
        if self._handle is None:
            self._arm()
        return self.total()

    def leave(self) -> float:
        """The running total now, counting a stall that has not reached the timer's
        callback yet; stops the timer when nobody is measuring."""
        total = self.total()
        self._users -= 1
        if self._users <= 0 and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._late = total  # the pending part is counted once, here
        return total

    def total(self) -> float:
        pending = max(0.0, time.perf_counter() - self._due) if self._handle else 0.0
        return self._late + pending

    def _arm(self) -> None:
        # Lateness is read on perf_counter, the clock latencies are measured with.
        self._due = time.perf_counter() + self._tick
        self._handle = self._loop.call_later(self._tick, self._fire)

    def _fire(self) -> None:
        self._late += max(0.0, time.perf_counter() - self._due)
        self._arm()


_MONITORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Monitor] = (
    weakref.WeakKeyDictionary())
