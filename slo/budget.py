"""Error budgets and burn rates, as pure functions over good/total counts.

Follows the Google SRE Workbook, "Alerting on SLOs":

- SLI = good / total; error budget = 1 - objective.
- burn rate over a window = error ratio over the window / (1 - objective).
- budget remaining = 1 - bad / (total * (1 - objective)); negative once overspent.

A window with no events (``total == 0``) has no SLI: every function returns ``None`` for
it, never 100%, so callers must show "no data" as its own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = [
    "BURN_WINDOWS",
    "DEFAULT_BURN_RULES",
    "MIN_BURN_THRESHOLD",
    "BurnRule",
    "BurnThreshold",
    "Severity",
    "WindowCounts",
    "budget_consumed",
    "budget_remaining",
    "burn_rate",
    "burn_rules_for_period",
    "error_ratio",
    "scale_burn_factor",
    "scaled_burn_threshold",
    "sli",
]

Severity = Literal["page", "ticket"]

BURN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("5m", 300),
    ("30m", 1800),
    ("1h", 3600),
    ("2h", 7200),
    ("6h", 21600),
    ("1d", 86400),
    ("3d", 259200),
)
"""Every (label, seconds) window the default burn rules read, shortest first."""


def _check_counts(good: float, total: float) -> None:
    """Reject counts no window can have, so a storage bug is loud rather than a bad SLI."""
    if total < 0 or good < 0:
        raise ValueError(f"counts must be >= 0, got good={good}, total={total}")
    if good > total:
        raise ValueError(f"good ({good}) cannot exceed total ({total})")


def _error_budget(objective: float) -> float:
    """Return the error budget ``1 - objective``, validating the objective."""
    if not 0.0 < objective < 1.0:  # also rejects NaN
        raise ValueError(f"objective must be a ratio in (0, 1), e.g. 0.999; got {objective!r}")
    return 1.0 - objective


def sli(good: float, total: float) -> float | None:
    """Return the fraction of good events, or None when there were no events."""
    _check_counts(good, total)
    if total == 0:
        return None
    return good / total


def error_ratio(good: float, total: float) -> float | None:
    """Return the fraction of bad events, or None when there were no events."""
    _check_counts(good, total)
    if total == 0:
        return None
    # (total - good) / total rather than 1 - sli: exact for small error ratios.
    return (total - good) / total


def burn_rate(good: float, total: float, objective: float) -> float | None:
    """Return how fast the budget burns: 1.0 spends it exactly over the SLO period."""
    budget = _error_budget(objective)
    ratio = error_ratio(good, total)
    return None if ratio is None else ratio / budget


def budget_consumed(good: float, total: float, objective: float) -> float | None:
    """Return the fraction of the error budget spent; above 1.0 once overspent."""
    return burn_rate(good, total, objective)  # bad / (total * budget) is the same ratio


def budget_remaining(good: float, total: float, objective: float) -> float | None:
    """Return the fraction of the error budget left; negative (not clamped) once overspent."""
    consumed = budget_consumed(good, total, objective)
    return None if consumed is None else 1.0 - consumed


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Good and total events over one window; add two to combine adjacent windows."""

    good: float
    total: float

    def __post_init__(self) -> None:
        _check_counts(self.good, self.total)

    @property
    def bad(self) -> float:
        """Events that missed the SLI threshold."""
        return self.total - self.good

    @property
    def sli(self) -> float | None:
        """Fraction of good events, or None when the window has no events."""
        return sli(self.good, self.total)

    def __add__(self, other: WindowCounts) -> WindowCounts:
        """Combine the counts of two windows (e.g. minute rollups into an hour)."""
        if not isinstance(other, WindowCounts):
            return NotImplemented
        return WindowCounts(self.good + other.good, self.total + other.total)


class BurnRule(NamedTuple):
    """A multiwindow alert: fire when both windows spend budget faster than the share allows."""

    severity: Severity
    long_window_s: int
    short_window_s: int
    budget_share: float


class BurnThreshold(NamedTuple):
    """A BurnRule scaled to one SLO period: fire when burn > threshold over both windows."""

    severity: Severity
    long_window_s: int
    short_window_s: int
    threshold: float


DEFAULT_BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page", 3600, 300, 0.02),
    BurnRule("page", 21600, 1800, 0.05),
    BurnRule("ticket", 86400, 7200, 0.10),
    BurnRule("ticket", 259200, 21600, 0.10),
)
"""The Workbook's recommended tiers, fastest first (which is the suppression order)."""


def scale_burn_factor(
    budget_share: float, slo_period_seconds: float, long_window_seconds: float
) -> float:
    """Return the burn rate that spends ``budget_share`` of the budget in the long window."""
    if not 0.0 < budget_share <= 1.0:
        raise ValueError(f"budget_share must be in (0, 1], got {budget_share!r}")
    if not slo_period_seconds > 0 or not long_window_seconds > 0:
        raise ValueError(
            "SLO period and window must be > 0 seconds, got "
            f"period={slo_period_seconds!r}, window={long_window_seconds!r}"
        )
    # Divide the durations first: period/window is usually a whole number (720 for 1h of
    # 30d), so a 30-day SLO gets exactly 14.4, 6, 3 and 1.
    return budget_share * (slo_period_seconds / long_window_seconds)


MIN_BURN_THRESHOLD = 1.0
"""No tier alerts below this burn: a burn under 1 finishes the SLO period under budget."""


def scaled_burn_threshold(
    budget_share: float, slo_period_seconds: float, long_window_seconds: float
) -> float:
    """Return ``scale_burn_factor``, raised to 1 when it falls below 1.

    A share scaled to a short period can ask for a burn under 1 (10% of a 7-day budget
    in 3 days is 0.23), which alerts on an SLO on track to be met. At 1 the tier waits
    until the burn would spend the whole budget: it lets more than its share go first,
    but it never alerts on an SLO that will finish under budget.
    """
    return max(
        MIN_BURN_THRESHOLD,
        scale_burn_factor(budget_share, slo_period_seconds, long_window_seconds),
    )


def burn_rules_for_period(
    period_seconds: float, rules: Sequence[BurnRule] = DEFAULT_BURN_RULES
) -> tuple[BurnThreshold, ...]:
    """Return ``rules`` scaled to an SLO period, none of them alerting below a burn of 1.

    1. Scale: threshold = budget share x period / long window. 30 days give the
       Workbook's 14.4, 6, 3 and 1 exactly; 90 days 43.2, 18, 9 and 3.
    2. Drop a tier whose long window is longer than the period: it would judge events
       the SLO no longer counts (a 3-day burn for a 1-day SLO stays high for two days
       after the window is back under budget).
    3. Raise a threshold below 1 to 1 (``scaled_burn_threshold``): a burn below 1
       finishes the period under budget, so nothing may alert on it; keeping the tier
       at 1 still catches every burn that would overspend.
    4. Drop a tier left at 1 when a tier of the same severity with a shorter long window
       is at 1 too: both fire on the same burn, and the shorter one sees it first, so
       the longer would only hold the same alert open longer (7 days: the 3d/6h ticket
       goes, the 1d/2h ticket at 1 stays).

    The 1h/5m page is never dropped for a period of 1h or more (the shortest a config
    allows): its window fits every such period and it is the fastest page. A total
    outage pages once the hour's burn reaches its threshold, after threshold x (1 -
    objective) hours: 52 s for 99.9% over 30 days, 2.6 min over 90 days.
    """
    fitting = [rule for rule in rules if rule.long_window_s <= period_seconds]
    scaled = [
        BurnThreshold(
            rule.severity,
            rule.long_window_s,
            rule.short_window_s,
            scaled_burn_threshold(rule.budget_share, period_seconds, rule.long_window_s),
        )
        for rule in fitting
    ]
    return tuple(
        tier for index, tier in enumerate(scaled) if not _shadowed(index, tier, scaled)
    )


def _shadowed(index: int, tier: BurnThreshold, tiers: Sequence[BurnThreshold]) -> bool:
    """True when ``tier`` is at 1 and an earlier-firing tier of its severity is at 1 too."""
    if tier.threshold != MIN_BURN_THRESHOLD:
        return False
    return any(
        other.severity == tier.severity
        and other.threshold == MIN_BURN_THRESHOLD
        and (other.long_window_s, position) < (tier.long_window_s, index)
        for position, other in enumerate(tiers)
    )
