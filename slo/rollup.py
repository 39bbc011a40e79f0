"""Turning probe events into per-SLO bucket deltas: (good, total) and latency bins.

Pure: the storage layer adds these deltas to stored rows (an upsert that sums), so
writers in several batches, threads or instances combine correctly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from slo.sketch import add_to_bins
from slo.sli import SliDefinition, is_good

MINUTE = 60


@dataclass(slots=True)
class BucketDelta:
    """What one batch adds to one SLO's bucket."""

    good: int = 0
    total: int = 0
    bins: dict[int, int] = field(default_factory=dict)


class Event(Protocol):
    """What rollups need of a probe result."""

    @property
    def target(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def latency(self) -> float: ...


def bucket_start(timestamp: float, resolution: int = MINUTE) -> int:
    """Start of the bucket holding `timestamp`."""
    return int(timestamp // resolution) * resolution


def rollup_deltas(
    events: Iterable[Event],
    slos_by_target: Mapping[str, Sequence[SliDefinition]],
    resolution: int = MINUTE,
) -> dict[tuple[str, int], BucketDelta]:
    """Classify each event for every SLO of its target and sum per (SLO, bucket).

    Latency bins hold successful probes only: a failed probe's duration is a timeout or
    an error, not a response time.
    """
    deltas: dict[tuple[str, int], BucketDelta] = {}
    for event in events:
        definitions = slos_by_target.get(event.target)
        if not definitions:
            continue
        ok, latency = event.ok, event.latency
        start = bucket_start(event.started_at, resolution)
        for definition in definitions:
            key = (definition.name, start)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = BucketDelta()
            delta.total += 1
            if is_good(definition, ok, latency):
                delta.good += 1
            if ok:
                add_to_bins(delta.bins, latency)
    return deltas
