"""SLI classification: what one probe event contributes to one SLO, as (good, total).

Classification happens once, at ingest, so every window's SLI is a sum of rollups.
Kinds:
- availability: the probe succeeded (1 event);
- latency: it succeeded within `threshold` (1 event);
- ratio: the counter deltas of a named stream, e.g. cache hits / lookups (n events);
- threshold: a measured value (`value`) is at or under (or over) `threshold` (1 event).

A latency measured while the prober itself ran late (its event loop stalled for most
of the wait: another process hogging the CPU, a GC pause) is not the target's latency:
such an event says nothing about latency SLOs and is left out, like one in maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

PROBER_LAG = "prober_lag_seconds"
"""The value probes record for their own lateness (probes.base.PROBER_LAG; slo/ imports
nothing of ours, so the name is repeated and a test keeps the two equal)."""
PROBER_LATE_SHARE = 0.5
"""An answer whose latency was at least this share the prober's lag is not measured."""


def prober_was_late(event: Event) -> bool:
    """The event's latency is mostly the prober's own lateness, not the target's."""
    lag = event.values.get(PROBER_LAG, 0.0)
    return lag > 0 and lag >= PROBER_LATE_SHARE * event.latency


class SliDefinition(Protocol):
    """The parts of an SLO definition that classification needs."""

    @property
    def name(self) -> str: ...
    @property
    def sli(self) -> str: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def stream(self) -> str | None: ...
    @property
    def value(self) -> str | None: ...
    @property
    def comparison(self) -> str: ...
    @property
    def region(self) -> str | None: ...


class Event(Protocol):
    """What classification needs of a probe result."""

    @property
    def target(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def latency(self) -> float: ...
    @property
    def region(self) -> str: ...
    @property
    def values(self) -> Mapping[str, float]: ...
    @property
    def counts(self) -> Mapping[str, tuple[float, float]]: ...


def event_counts(definition: SliDefinition, event: Event) -> tuple[int, int] | None:
    """(good, total) this event adds to the SLO, or None when it says nothing about it.

    A failed probe is bad for latency and threshold SLOs too (a timeout is not a fast
    answer; a query that failed did not meet its time). For a ratio SLO a failed probe
    measured no counters: it adds nothing, and the availability SLO sees the failure.
    """
    if definition.region is not None and event.region != definition.region:
        return None
    kind = definition.sli
    if kind == "availability":
        return (1 if event.ok else 0), 1
    if kind == "latency":
        if event.ok and prober_was_late(event):
            return None
        threshold = definition.threshold
        return (1 if event.ok and threshold is not None and event.latency <= threshold else 0), 1
    if kind == "ratio":
        stream = event.counts.get(definition.stream or "")
        if stream is None:
            return None
        good, total = round(stream[0]), round(stream[1])
        if total <= 0 or good < 0:
            return None
        return min(good, total), total
    if kind == "threshold":
        measured = event.values.get(definition.value or "")
        if measured is None:
            return (0, 1) if not event.ok else None
        return (1 if meets(measured, definition.threshold, definition.comparison) else 0), 1
    raise ValueError(f"unknown SLI kind {kind!r}")


def meets(measured: float, threshold: float | None, comparison: str) -> bool:
    """Whether a value satisfies `<= threshold` (default) or `>= threshold`."""
    if threshold is None:
        return False
    return measured >= threshold if comparison == ">=" else measured <= threshold


def binned_value(definition: SliDefinition, event: Event) -> float | None:
    """The value whose distribution (p50/p95/p99) the SLO keeps, if any."""
    if definition.sli in ("availability", "latency"):
        return event.latency if event.ok and not prober_was_late(event) else None
    if definition.sli == "threshold":
        return event.values.get(definition.value or "")
    return None
