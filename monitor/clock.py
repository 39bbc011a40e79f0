"""Time as a dependency: the system clock in production, a settable clock in tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class MonotonicClock:
    """Seconds that only move forward, not epoch seconds: for measuring intervals
    (the rate limiters' default), immune to the wall clock being set back."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand, so simulated weeks take milliseconds."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, timestamp: float) -> None:
        self._now = timestamp
