"""The status of one SLO at one instant, computed from window counts (pure).

States: `ok` (SLI meets the objective), `breaching` (it does not: budget overspent) and
`no_data` (no valid events in the SLO window), which is never shown as 100% good.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from slo.budget import BURN_WINDOWS, budget_remaining, burn_rate, sli
from slo.sketch import quantile

State = Literal["ok", "breaching", "no_data"]
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """SLI and burn rate over one alerting window (5m ... 3d)."""

    window: str
    seconds: int
    good: int
    total: int
    sli: float | None
    burn_rate: float | None


@dataclass(frozen=True, slots=True)
class SloStatus:
    """Everything the API, CLI, dashboards and /metrics show for one SLO."""

    name: str
    target: str
    sli_kind: str
    objective: float
    window_seconds: int
    evaluated_at: float
    good: int
    total: int
    sli: float | None
    budget_remaining: float | None
    state: State
    windows: tuple[WindowStatus, ...]
    threshold: float | None = None
    latency: dict[str, float | None] = field(default_factory=dict)

    @property
    def burn_rates(self) -> dict[str, float | None]:
        return {w.window: w.burn_rate for w in self.windows}


def build_status(*, name: str, target: str, sli_kind: str, objective: float,
                 window_seconds: int, threshold: float | None, evaluated_at: float,
                 counts: Mapping[int, tuple[int, int]],
                 bins: Mapping[int, int]) -> SloStatus:
    """Combine the per-window counts (keyed by seconds) into a status.

    `counts` must hold the SLO window and every window of `BURN_WINDOWS`.
    """
    good, total = counts[window_seconds]
    windows = tuple(
        WindowStatus(label, seconds, *counts[seconds], sli(*counts[seconds]),
                     burn_rate(*counts[seconds], objective))
        for label, seconds in BURN_WINDOWS
    )
    remaining = budget_remaining(good, total, objective)
    state: State
    if total == 0:
        state = "no_data"
    elif remaining is not None and remaining < 0:
        state = "breaching"
    else:
        state = "ok"
    latency = {label: quantile(bins, q) for label, q in PERCENTILES} if bins else {}
    return SloStatus(
        name=name, target=target, sli_kind=sli_kind, objective=objective,
        window_seconds=window_seconds, evaluated_at=evaluated_at, good=good, total=total,
        sli=sli(good, total), budget_remaining=remaining, state=state, windows=windows,
        threshold=threshold, latency=latency,
    )
