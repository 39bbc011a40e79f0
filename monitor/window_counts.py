"""(good, total) of one SLO over any minute-aligned span, in the SLO's own budgeting.

The evaluation tick reads windows that end now (`monitor/slo_engine.py`); deciding
whether a firing tier is explained by events already handled needs a span that starts
at an arbitrary time (the handled-until mark) instead. Same units as the tick's:
events for occurrences budgeting, slices for timeslices, summed slice ratios for
ratio timeslices, so a burn rate computed from these is comparable with a tier's.
"""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.storage import rollups
from slo.timeslices import ratio_timeslices, timeslices
from slo.windows import split_by_resolution

MINUTE = rollups.MINUTE


def align_up(at: float) -> int:
    """The start of the first whole minute at or after `at`."""
    return -int(-at // MINUTE) * MINUTE


def counts_between(engine: Engine, slo: SloConfig, start: int, end: int
                   ) -> tuple[float, float]:
    """The SLO's (good, total) in [start, end), both minute-aligned; (0, 0) when empty."""
    if end <= start:
        return 0.0, 0.0
    if slo.budgeting == "occurrences":
        good, total = rollups.sum_counts(engine, [slo.name],
                                         split_by_resolution(start, end))[slo.name]
        return float(good), float(total)
    slice_seconds = int(slo.timeslice)
    first = start - start % slice_seconds
    minutes = rollups.series(engine, [slo.name], rollups.MINUTE, first, end)[slo.name]
    if slo.budgeting == "timeslices":
        good_slices, slices = timeslices(minutes, start=start, end=end,
                                         slice_seconds=slice_seconds,
                                         target=slo.timeslice_target)
        return float(good_slices), float(slices)
    ratio_sum, count = ratio_timeslices(minutes, start=start, end=end,
                                        slice_seconds=slice_seconds)
    return ratio_sum, float(count)
