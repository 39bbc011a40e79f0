"""The error budget over time: when it runs out at the current burn, and where it went.

A burn rate of 1 spends the whole budget in one SLO period, so at burn ``b`` a remaining
fraction ``r`` lasts ``r * period / b`` seconds. This is a straight-line projection: it
says "at this pace", not "this will happen", and a rolling window also regains budget
as old bad minutes age out, which it ignores on purpose (it errs towards warning early).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from slo.budget import error_ratio

__all__ = ["budget_consumed_by_day", "projected_exhaustion", "time_to_exhaustion"]


def time_to_exhaustion(
    remaining: float | None, burn_rate: float | None, period_seconds: float
) -> float | None:
    """Return seconds until the budget is gone at ``burn_rate``.

    ``0.0`` when it is already spent; ``None`` when there is no data or the budget is not
    burning (a projection to infinity would only be noise on a dashboard).
    """
    if not (math.isfinite(period_seconds) and period_seconds > 0):
        raise ValueError(f"period_seconds must be > 0, got {period_seconds!r}")
    if remaining is None:
        return None
    if remaining <= 0:
        return 0.0
    if burn_rate is None or not burn_rate > 0:
        return None
    return remaining * period_seconds / burn_rate


def projected_exhaustion(
    now: float, remaining: float | None, burn_rate: float | None, period_seconds: float
) -> float | None:
    """Return the epoch second at which the budget runs out at this burn, or None."""
    seconds = time_to_exhaustion(remaining, burn_rate, period_seconds)
    return None if seconds is None else now + seconds


def budget_consumed_by_day(
    days: Iterable[tuple[int, int, int]], *, objective: float, window_total: int
) -> list[tuple[int, float]]:
    """Return ``(day_start, share of the window's budget that day spent)``, in input order.

    The budget is ``window_total * (1 - objective)`` bad events, so the shares add up to
    the window's budget consumed and a day above 1.0 overspent the budget on its own.
    """
    if not 0.0 < objective < 1.0:
        raise ValueError(f"objective must be a ratio in (0, 1), e.g. 0.999; got {objective!r}")
    if window_total < 0:
        raise ValueError(f"window_total must be >= 0, got {window_total}")
    if window_total == 0:
        return []  # no events, no budget: a share of nothing is undefined
    allowed_bad = window_total * (1.0 - objective)
    consumed: list[tuple[int, float]] = []
    for day_start, good, total in days:
        error_ratio(good, total)  # validates the counts
        consumed.append((day_start, (total - good) / allowed_bad))
    return consumed
