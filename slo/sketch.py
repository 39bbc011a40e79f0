"""Mergeable latency histogram with bounded relative error (DDSketch-style log buckets).

A sketch is a plain ``dict[int, int]`` mapping a bin index to a count, so that it can be
stored as ``(bin, count)`` rows per SLO per minute and summed over any window with
``merge_bins`` (or a SQL ``SUM ... GROUP BY bin``); merging is exact, associative and
commutative because it is just addition of counts.

Bin ``i`` holds the values in ``(gamma**(i-1), gamma**i]`` and is represented by
``2 * gamma**i / (gamma + 1)``, which lies within ``ALPHA`` relative error of every value
in the bin. Hence any quantile read from the bins is within ``ALPHA`` of the exact order
statistic, whatever the distribution, for any finite value above ``MIN_VALUE``.

Values at or below ``MIN_VALUE`` (a microsecond, far below any real network latency) go to
the dedicated ``ZERO_BIN`` and are reported as ``0.0``; their absolute error is at most
``MIN_VALUE``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

__all__ = [
    "ALPHA",
    "GAMMA",
    "MIN_VALUE",
    "ZERO_BIN",
    "add_to_bins",
    "bin_index",
    "bin_value",
    "count_at_or_below",
    "merge_bins",
    "quantile",
]

ALPHA = 0.01
"""Relative accuracy: every reported quantile is within 1% of the exact value."""

GAMMA = (1 + ALPHA) / (1 - ALPHA)
"""Ratio between consecutive bin bounds."""

MIN_VALUE = 1e-6
"""Latencies (seconds) at or below this go to ``ZERO_BIN``; keeps the bin range bounded."""

ZERO_BIN = -(2**31)
"""Index of the bin for values <= MIN_VALUE: the smallest 32-bit signed int, so it fits an
INTEGER column and sorts before every real bin (which range from about -690 to +35,500)."""

_LOG_GAMMA = math.log(GAMMA)
_REPRESENTATIVE_FACTOR = 2.0 / (GAMMA + 1.0)


def bin_index(value: float) -> int:
    """Return the bin of a latency in seconds; non-decreasing in ``value``."""
    if not math.isfinite(value):
        raise ValueError(f"latency must be a finite number of seconds, got {value!r}")
    if value <= MIN_VALUE:
        return ZERO_BIN
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bin_value(index: int) -> float:
    """Return the representative latency of a bin: within ALPHA of every value in it."""
    if index == ZERO_BIN:
        return 0.0
    try:
        return _REPRESENTATIVE_FACTOR * GAMMA**index
    except OverflowError:
        # Only the top bin, cut short at the float maximum: the harmonic mean of its bounds
        # is within ALPHA of both, as the usual representative is for a full bin.
        return 2.0 / (1.0 / GAMMA ** (index - 1) + 1.0 / sys.float_info.max)


def add_to_bins(bins: dict[int, int], value: float, count: int = 1) -> None:
    """Record ``count`` observations of ``value`` in ``bins`` (in place)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count == 0:
        return  # no empty bins: equal data must give equal dicts
    key = bin_index(value)
    bins[key] = bins.get(key, 0) + count


def merge_bins(into: dict[int, int], other: Mapping[int, int]) -> None:
    """Add every count of ``other`` into ``into`` (in place); exact, order-independent."""
    for key, count in other.items():
        if count:
            into[key] = into.get(key, 0) + count


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """Return the approximate ``q``-quantile, or None when there is no data.

    Uses the lower rank ``q * (n - 1)`` like DDSketch, so the result is within ALPHA
    relative error of ``sorted(values)[floor(q * (n - 1))]``.
    """
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    total = sum(bins.values())
    if total <= 0:
        return None
    rank = q * (total - 1)
    cumulative = 0
    for key in sorted(bins):
        cumulative += bins[key]
        if cumulative > rank:
            return bin_value(key)
    return bin_value(max(bins))  # unreachable with non-negative counts; keeps mypy honest


def count_at_or_below(bins: Mapping[int, int], threshold: float) -> int:
    """Return how many recorded values are <= ``threshold``, approximately.

    Counts whole bins up to and including the one holding ``threshold``: never misses a
    value <= threshold, but may also count values up to ``threshold * GAMMA`` (about 2%
    above it). Consistent with ``quantile``: if ``quantile(bins, q) <= threshold``, the
    count includes at least ``floor(q * (n - 1)) + 1`` values.
    """
    limit = bin_index(threshold)
    return sum(count for key, count in bins.items() if key <= limit)
