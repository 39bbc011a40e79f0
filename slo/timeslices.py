"""Timeslice budgeting from per-minute rollups (OpenSLO Timeslices and RatioTimeslices).

Occurrence budgeting weighs every event equally, so a busy minute outweighs a quiet
hour. Timeslice budgeting asks instead "how many slices (minutes, 5-minute blocks ...)
were good?", which is what "99.9% of minutes were good" means to users:

- ``timeslices``: a slice is good when its good/total ratio meets ``target``; the SLI is
  good slices / slices with data.
- ``ratio_timeslices``: the SLI is the mean of the slice ratios (every slice weighs the
  same, however many events it saw).

A slice without events has no data: it is neither good nor bad and is not counted, so
an idle target never reads as 100% good.
"""

from __future__ import annotations

from collections.abc import Iterable

from slo.budget import sli

__all__ = ["check_slice_seconds", "ratio_timeslices", "slice_counts", "timeslices"]

DAY = 86400
MINUTE = 60


def check_slice_seconds(slice_seconds: int) -> None:
    """Reject slices that would split a minute rollup or straddle a UTC day boundary."""
    if slice_seconds < MINUTE or slice_seconds % MINUTE or DAY % slice_seconds:
        raise ValueError(
            "a timeslice must be whole minutes that divide a day (1m, 5m, 15m, 1h ...), "
            f"got {slice_seconds!r} s"
        )


def slice_counts(
    minutes: Iterable[tuple[int, int, int]], *, start: int, end: int, slice_seconds: int
) -> dict[int, tuple[int, int]]:
    """Sum the minutes inside ``[start, end)`` per slice: ``{slice_start: (good, total)}``.

    Slices are aligned to ``slice_seconds`` from the epoch; a slice cut by a window edge
    keeps only its minutes inside the window. Slices without events are left out.
    """
    check_slice_seconds(slice_seconds)
    sums: dict[int, list[int]] = {}
    for bucket, good, total in minutes:
        sli(good, total)  # validates the counts: a storage bug should be loud
        if not start <= bucket < end or total == 0:
            continue
        key = bucket - bucket % slice_seconds
        counts = sums.setdefault(key, [0, 0])
        counts[0] += good
        counts[1] += total
    return {key: (good, total) for key, (good, total) in sorted(sums.items())}


def timeslices(
    minutes: Iterable[tuple[int, int, int]],
    *,
    start: int,
    end: int,
    slice_seconds: int,
    target: float,
) -> tuple[int, int]:
    """Return ``(good slices, slices with data)``: a slice is good when good/total ≥ target."""
    if not 0.0 < target <= 1.0:  # also rejects NaN
        raise ValueError(f"timeslice target must be a ratio in (0, 1], got {target!r}")
    slices = slice_counts(minutes, start=start, end=end, slice_seconds=slice_seconds)
    # Divide rather than compare good >= target * total: division is correctly rounded,
    # so 19/20 equals the literal 0.95 exactly, while 0.95 * 20 may not equal 19.
    good_slices = sum(1 for good, total in slices.values() if good / total >= target)
    return good_slices, len(slices)


def ratio_timeslices(
    minutes: Iterable[tuple[int, int, int]], *, start: int, end: int, slice_seconds: int
) -> tuple[float, int]:
    """Return ``(sum of slice ratios, slices with data)``; the SLI is their quotient."""
    slices = slice_counts(minutes, start=start, end=end, slice_seconds=slice_seconds)
    return sum(good / total for good, total in slices.values()), len(slices)
