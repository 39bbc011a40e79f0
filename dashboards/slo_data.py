"""Reads behind one SLO's page: counts and latency bins per time bucket, the budget
burn-down over the SLO window, and the incidents that touched the SLO.

Bounded by construction: a span is cut into at most ~750 buckets (`step_for`), the
aligned middle is read from the coarsest rollup tier that fits the bucket and only the
ragged edges from minute rows, so a 30-day chart costs ~720 hour rows, not 43,200
minutes. Budgets use the SLO's own budgeting (events or timeslices), so the last point
of the burn-down equals the SLI and budget the API reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from alerts.store import Incident, incidents_of_slo
from monitor.config_slo import SloConfig
from monitor.storage import rollups
from monitor.storage.models import LatencyBin
from slo.allowance import budget_left
from slo.timeslices import slice_counts
from slo.windows import split_by_resolution

MINUTE, HOUR, DAY = rollups.MINUTE, rollups.HOUR, rollups.DAY
MAX_POINTS = 750
STEPS = (MINUTE, 5 * MINUTE, HOUR, DAY)
"""Bucket sizes a chart may use, finest first; 5 minutes keeps a day under 750 points."""

Counts = tuple[float, float]
Point = tuple[float, float | None]


def step_for(seconds: float) -> int:
    """The finest bucket giving at most MAX_POINTS buckets over `seconds`."""
    for step in STEPS:
        if seconds / step <= MAX_POINTS:
            return step
    days = -(-int(seconds) // (DAY * MAX_POINTS))  # windows longer than two years
    return DAY * days


def _tier(step: int) -> int:
    """The coarsest stored resolution that divides `step`."""
    return next(r for r in (DAY, HOUR, MINUTE) if step % r == 0)


def pieces(start: int, end: int, step: int) -> list[tuple[int, int, int]]:
    """(tier, first, end) ranges covering the minute-aligned [start, end): the
    step-aligned middle from the step's tier, minute rows only at the edges."""
    inner_start = -(-start // step) * step
    inner_end = end // step * step
    if inner_start >= inner_end or _tier(step) == MINUTE:
        return [(MINUTE, start, end)] if start < end else []
    out = [(MINUTE, start, inner_start)] if start < inner_start else []
    out.append((_tier(step), inner_start, inner_end))
    if inner_end < end:
        out.append((MINUTE, inner_end, end))
    return out


def bucket_keys(start: int, end: int, step: int) -> list[int]:
    """Every bucket start touching [start, end), so empty buckets become gaps."""
    return list(range(start // step * step, end, step))


def bucket_counts(engine: Engine, slo: SloConfig, start: int, end: int, step: int
                  ) -> dict[int, Counts]:
    """(good, total) per bucket in the SLO's budgeting: events, good slices of slices,
    or the sum of slice ratios of slices. Buckets without events are left out."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if slo.budgeting == "occurrences":
        for tier, first, last in pieces(start, end, step):
            for bucket, good, total in rollups.series(engine, [slo.name], tier, first,
                                                      last)[slo.name]:
                into = sums[bucket - bucket % step]
                into[0] += good
                into[1] += total
        return {key: (good, total) for key, (good, total) in sorted(sums.items())}
    minutes = rollups.series(engine, [slo.name], MINUTE, start, end)[slo.name]
    slices = slice_counts(minutes, start=start, end=end, slice_seconds=int(slo.timeslice))
    for slice_start, (good, total) in slices.items():
        into = sums[max(slice_start, start) // step * step]
        if slo.budgeting == "timeslices":
            into[0] += 1.0 if good / total >= slo.timeslice_target else 0.0
        else:
            into[0] += good / total
        into[1] += 1.0
    return {key: (good, total) for key, (good, total) in sorted(sums.items())}


def bucket_bins(engine: Engine, name: str, start: int, end: int, step: int
                ) -> dict[int, dict[int, int]]:
    """Latency histogram per bucket (merged from stored bins), for p50/p95/p99."""
    found: dict[int, dict[int, int]] = defaultdict(dict)
    with engine.connect() as connection:
        for tier, first, last in pieces(start, end, step):
            query = (select(LatencyBin.bucket_start, LatencyBin.bin, LatencyBin.count)
                     .where(LatencyBin.slo == name, LatencyBin.resolution == tier,
                            LatencyBin.bucket_start >= first, LatencyBin.bucket_start < last))
            for bucket, bin_index, count in connection.execute(query):
                into = found[int(bucket) - int(bucket) % step]
                into[int(bin_index)] = into.get(int(bin_index), 0) + int(count)
    return dict(found)


def burndown(counts: dict[int, Counts], *, step: int, end: int, objective: float,
             expected_events: float) -> list[Point]:
    """Budget left at the end of each bucket, counted from the window start, of the one
    budget (`slo/allowance.py`: the events the whole window is expected to hold), so the
    last point is the status's figure. Before the first event there is no budget to
    speak of (a gap, not 100%); after it, a bucket without events keeps the budget."""
    good = total = 0.0
    points: list[Point] = []
    for key in sorted(counts):
        good += counts[key][0]
        total += counts[key][1]
        points.append((float(min(key + step, end)),
                       budget_left(good, total, objective, expected_events)))
    return points


@dataclass(frozen=True, slots=True)
class IncidentImpact:
    """An incident of the SLO and the share of the error budget spent while it ran."""

    incident: Incident
    budget_spent: float | None


def incidents_touching(engine: Engine, slo: SloConfig, since: float, limit: int = 50
                       ) -> list[Incident]:
    """Incidents that include this SLO (or an outage of its target), open at some time
    since `since`: an incident grouped on the same target for another SLO is not one."""
    return incidents_of_slo(engine, slo.name, slo.target, since, limit)


def incident_impacts(engine: Engine, slo: SloConfig, incidents: Sequence[Incident], *,
                     window: tuple[int, int], expected_events: float, now: float
                     ) -> list[IncidentImpact]:
    """Budget spent during each incident (clipped to the window), as a share of the
    whole window's budget, so the shares add up with "budget left". Only for event
    budgeting: a timeslice cut by an incident edge has no share to give."""
    if slo.budgeting != "occurrences" or expected_events <= 0:
        return [IncidentImpact(i, None) for i in incidents]
    spans: list[list[tuple[int, int, int]]] = []
    for incident in incidents:
        began = incident.impact_started_at or incident.opened_at
        ended = incident.resolved_at or incident.cleared_at or now
        first = max(int(began) // MINUTE * MINUTE, window[0])
        last = min(-(-int(ended) // MINUTE) * MINUTE, window[1])
        spans.append(split_by_resolution(first, last) if first < last else [])
    sums = rollups.sum_counts_many(engine, [([slo.name], ranges) for ranges in spans])
    budget_events = expected_events * (1.0 - slo.objective)
    out = []
    for incident, found in zip(incidents, sums, strict=True):
        good, total = found[slo.name]
        out.append(IncidentImpact(incident, (total - good) / budget_events))
    return out


@dataclass(frozen=True, slots=True)
class SloSeries:
    """Everything the SLO page draws, read in one go (and cached as one entry)."""

    window_step: int
    burndown: list[Point]
    range_step: int
    range_keys: list[int]
    range_counts: dict[int, Counts]
    range_bins: dict[int, dict[int, int]]
    incidents: list[IncidentImpact]


def read_series(engine: Engine, slo: SloConfig, *, window: tuple[int, int],
                expected_events: float, span: tuple[int, int], now: float) -> SloSeries:
    """The burn-down over the SLO window, buckets over the picked span, incidents."""
    window_step = HOUR if window[1] - window[0] <= MAX_POINTS * HOUR else DAY
    window_counts = bucket_counts(engine, slo, window[0], window[1], window_step)
    start, end = span
    step = step_for(end - start)
    bins = bucket_bins(engine, slo.name, start, end, step) if slo.sli == "latency" else {}
    touching = incidents_touching(engine, slo, window[0])
    return SloSeries(
        window_step=window_step,
        burndown=burndown(window_counts, step=window_step, end=window[1],
                          objective=slo.objective, expected_events=expected_events),
        range_step=step, range_keys=bucket_keys(start, end, step),
        range_counts=bucket_counts(engine, slo, start, end, step), range_bins=bins,
        incidents=incident_impacts(engine, slo, touching, window=window,
                                   expected_events=expected_events, now=now))
