"""Turning probe events into per-SLO bucket deltas: (good, total) and value bins.

Pure: the storage layer adds these deltas to stored rows (an upsert that sums), so
writers in several batches, threads or instances combine correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from slo.sketch import add_to_bins
from slo.sli import Event, SliDefinition, binned_value, event_counts

MINUTE = 60


@dataclass(slots=True)
class BucketDelta:
    """What one batch adds to one SLO's bucket."""

    good: int = 0
    total: int = 0
    bins: dict[int, int] = field(default_factory=dict)


def bucket_start(timestamp: float, resolution: int = MINUTE) -> int:
    """Start of the bucket holding `timestamp`."""
    return int(timestamp // resolution) * resolution


def rollup_deltas(
    events: Iterable[Event],
    slos_by_target: Mapping[str, Sequence[SliDefinition]],
    resolution: int = MINUTE,
    excluded: Callable[[str, str, float], bool] | None = None,
) -> dict[tuple[str, int], BucketDelta]:
    """Classify each event for every SLO of its target and sum per (SLO, bucket).

    Bins hold the latency of successful probes (or the measured value of a threshold
    SLO): a failed probe's duration is a timeout or an error, not a response time.
    `excluded(target, slo, timestamp)` leaves events out (maintenance windows): they
    stay in the raw results but count for no SLO.
    """
    deltas: dict[tuple[str, int], BucketDelta] = {}
    for event in events:
        definitions = slos_by_target.get(event.target)
        if not definitions:
            continue
        start = bucket_start(event.started_at, resolution)
        for definition in definitions:
            if excluded is not None and excluded(event.target, definition.name,
                                                 event.started_at):
                continue
            counted = event_counts(definition, event)
            if counted is None:
                continue
            key = (definition.name, start)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = BucketDelta()
            delta.good += counted[0]
            delta.total += counted[1]
            value = binned_value(definition, event)
            if value is not None and value >= 0:
                add_to_bins(delta.bins, value)
    return deltas
