"""The status of one SLO at one instant, computed from window counts (pure).

States: `ok` (SLI meets the objective), `breaching` (it does not: budget overspent) and
`no_data` (no valid events in the SLO window), which is never shown as 100% good.
Counts are events (occurrences budgeting) or slices (timeslices); ratio-timeslices pass
the sum of slice ratios as `good`, so every formula stays good / total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from slo.budget import BURN_WINDOWS, budget_remaining, burn_rate, sli
from slo.sketch import quantile

State = Literal["ok", "breaching", "no_data"]
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
Counts = tuple[float, float]


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """SLI and burn rate over one alerting window (5m ... 3d)."""

    window: str
    seconds: int
    good: float
    total: float
    sli: float | None
    burn_rate: float | None


@dataclass(frozen=True, slots=True)
class AlertView:
    """The alert rule's verdict for the SLO at evaluation time."""

    severity: str | None = None
    tier: int | None = None
    reason: str = ""
    since: float | None = None
    no_data: bool = False
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class SloStatus:
    """Everything the API, CLI, dashboards and /metrics show for one SLO."""

    name: str
    target: str
    sli_kind: str
    objective: float
    window_seconds: int
    evaluated_at: float
    good: float
    total: float
    sli: float | None
    budget_remaining: float | None
    state: State
    windows: tuple[WindowStatus, ...]
    threshold: float | None = None
    latency: dict[str, float | None] = field(default_factory=dict)
    window_start: int = 0
    period_seconds: int = 0
    budgeting: str = "occurrences"
    exhaustion_seconds: float | None = None
    exhausted_at: float | None = None
    alert: AlertView = field(default_factory=AlertView)
    in_maintenance: bool = False
    expected_events: float | None = None
    """Events (or slices) the whole window is expected to hold: the budget's base
    (`slo/allowance.py`); None where the status was built without it (pure tests)."""
    budget_estimated: bool = False
    """The expected events extrapolate an observed rate (counter SLIs)."""
    collecting_since: float | None = None
    """When the SLO's data begins inside its window; None without data."""
    window_coverage: float = 1.0
    """Share of the window that has data behind it: below 1 for a young SLO."""

    @property
    def burn_rates(self) -> dict[str, float | None]:
        return {w.window: w.burn_rate for w in self.windows}


def window_statuses(counts: Mapping[int, Counts], objective: float
                    ) -> tuple[WindowStatus, ...]:
    """SLI and burn rate for every standard alerting window present in `counts`."""
    return tuple(
        WindowStatus(label, seconds, *counts[seconds], sli(*counts[seconds]),
                     burn_rate(*counts[seconds], objective))
        for label, seconds in BURN_WINDOWS if seconds in counts
    )


def state_of(good: float, total: float, objective: float) -> State:
    remaining = budget_remaining(good, total, objective)
    if total == 0:
        return "no_data"
    return "breaching" if remaining is not None and remaining < 0 else "ok"


def percentiles(bins: Mapping[int, int]) -> dict[str, float | None]:
    return {label: quantile(bins, q) for label, q in PERCENTILES} if bins else {}


def build_status(*, name: str, target: str, sli_kind: str, objective: float,
                 window_seconds: int, threshold: float | None, evaluated_at: float,
                 counts: Mapping[int, Counts], bins: Mapping[int, int]) -> SloStatus:
    """A rolling-window status from counts keyed by window seconds (the SLO window and
    every window of `BURN_WINDOWS`)."""
    good, total = counts[window_seconds]
    return SloStatus(
        name=name, target=target, sli_kind=sli_kind, objective=objective,
        window_seconds=window_seconds, evaluated_at=evaluated_at, good=good, total=total,
        sli=sli(good, total), budget_remaining=budget_remaining(good, total, objective),
        state=state_of(good, total, objective), windows=window_statuses(counts, objective),
        threshold=threshold, latency=percentiles(bins), period_seconds=window_seconds,
    )
