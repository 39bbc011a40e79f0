"""How many bad events an SLO may have in its whole window: the one budget definition.

The Workbook's `remaining = 1 − bad / (total × (1 − objective))` divides by the events
seen *so far*. On a young SLO that is a handful: two minutes of outage in the first two
hours of a 30-day SLO read as "budget left −12,720 %" although the month will end well
inside budget. Allowed bad events are instead `(1 − objective) × the events expected in
the whole window`:

- probe SLIs (one event per scheduled probe): the schedule's count over the window,
  times the number of instances the observed rate shows probing it (several regions);
- timeslice budgeting: the number of slices in the window;
- counter SLIs (ratio streams): the observed event rate extrapolated over the window,
  marked as an estimate.

So a young SLO starts at 100 % and falls as a mature one would, and a full window gives
the Workbook's figure (expected ≈ total). Burn-rate alerts judge their windows the same
way (`with_unmeasured_as_good`): ten minutes of data in a one-day window are ten minutes'
worth of that day's budget, not the whole day's, so three misses in ten cache lookups on a
fresh install are not a day-long burn of 1×. Every surface (pages, API, /metrics,
post-mortems, reports, status page) takes the budget from here. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Allowance",
    "EventSource",
    "allowance",
    "budget_left",
    "budgeted_window_counts",
    "with_unmeasured_as_good",
]

EventSource = Literal["schedule", "slices", "rate"]
MIN_ELAPSED = 60.0
"""Extrapolate from at least a minute, so the first probe does not stand for a month."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """The events a window is expected to hold and how much of it has data yet."""

    expected_events: float
    estimated: bool
    """True when `expected_events` extrapolates an observed rate (counter SLIs)."""
    collecting_since: float | None
    """When this SLO's data begins inside the window (None: no data at all)."""
    coverage: float
    """Share of the window, 0..1, that has passed since data began; 1 once it is full."""


def allowance(*, source: EventSource, period: float, window_start: float, now: float,
              first_data_at: float | None, total: float,
              events_per_second: float | None = None,
              slice_seconds: float | None = None) -> Allowance:
    """The events expected over the whole window of `period` seconds starting at
    `window_start` (a calendar window's period covers the whole month or quarter)."""
    since = None if first_data_at is None else max(first_data_at, window_start)
    if first_data_at is not None and first_data_at <= window_start:
        elapsed, coverage = period, 1.0  # data reaches back past the window: it is full
    elif since is not None:
        elapsed = min(period, max(MIN_ELAPSED, now - since))
        coverage = min(1.0, max(0.0, (now - since) / period))
    else:
        elapsed, coverage = MIN_ELAPSED, 0.0
    observed = total * period / elapsed if total > 0 else 0.0
    if source == "slices":
        expected = period / (slice_seconds or 60.0)
        return Allowance(max(expected, total), False, since, coverage)
    if source == "schedule" and events_per_second:
        scheduled = period * events_per_second
        return Allowance(max(scheduled * _probers(observed, scheduled), total), False, since,
                         coverage)
    return Allowance(max(observed, total), True, since, coverage)


def _probers(observed: float, scheduled: float) -> int:
    """How many instances run the schedule (one per region): the observed rate's
    nearest whole multiple of it. A young SLO's few probes extrapolate noisily (the
    first probe at 0 s makes 19 in 3 minutes of a 10 s schedule, 5 % over it), and
    taking that rate as is would move every budget figure from one minute to the
    next; whole instances keep it the schedule's until a second region really probes."""
    return max(1, round(observed / scheduled)) if scheduled > 0 else 1


def budget_left(good: float, total: float, objective: float, expected: float
                ) -> float | None:
    """1 − bad / ((1 − objective) × expected): 1.0 untouched, 0 spent, negative once
    overspent (shown as "exhausted"); None without events."""
    if total <= 0:
        return None
    if not 0.0 < objective < 1.0:
        raise ValueError(f"objective must be a ratio in (0, 1), got {objective!r}")
    allowed = (1.0 - objective) * max(expected, total)
    return 1.0 - (total - good) / allowed


def with_unmeasured_as_good(good: float, total: float, expected: float
                            ) -> tuple[float, float]:
    """Counts for a window that began before its SLO had data: the part not measured yet
    counts as good, up to the `expected` events, exactly as the budget treats it.

    Why: a tier's long window asks "has this window spent its share of the budget?".
    Over a young SLO the observed ratio alone answers a different question (how bad were
    the few events so far) and pages on noise; dividing by the events the window is
    expected to hold gives the mature answer, and a real outage still burns from its
    first minute as it would on a mature SLO. A window with no events stays empty: no
    events is no evidence, never padding.
    """
    if total <= 0 or expected <= total:
        return good, total
    return good + (expected - total), expected


def budgeted_window_counts(
    counts: Mapping[int, tuple[float, float]], starts: Mapping[int, float],
    first_data_at: float | None, expected: Callable[[int, float, float], float],
) -> dict[int, tuple[int, int]]:
    """Alert windows' counts (seconds -> (good, total)) as the budget sees them: each
    window starting (`starts`) before the SLO's data counts its unmeasured part as good
    up to `expected(seconds, start, total)` events (`with_unmeasured_as_good`). The
    service's alerter and `slo test` both judge through this, so a test file sees what
    the service would."""
    out = {}
    for seconds, (good, total) in counts.items():
        start = starts[seconds]
        if first_data_at is not None and first_data_at > start:
            good, total = with_unmeasured_as_good(good, total,
                                                  expected(seconds, start, total))
        out[seconds] = (round(good), round(total))
    return out
