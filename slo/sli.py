"""SLI classification: is one probe event good for one SLO?

Classification happens once, at ingest, so every window's SLI is a sum of rollups.
"""

from __future__ import annotations

from typing import Protocol


class SliDefinition(Protocol):
    """The parts of an SLO definition that classification needs."""

    @property
    def name(self) -> str: ...
    @property
    def sli(self) -> str: ...
    @property
    def threshold(self) -> float | None: ...


def is_good(definition: SliDefinition, ok: bool, latency: float) -> bool:
    """Availability: the probe succeeded. Latency: it succeeded within the threshold.

    A failed probe is bad for a latency SLO too: a timeout or refused connection is
    certainly not a fast answer, and excluding it would make outages look fast.
    """
    if definition.sli == "availability":
        return ok
    if definition.sli == "latency":
        threshold = definition.threshold
        return ok and threshold is not None and latency <= threshold
    raise ValueError(f"unknown SLI kind {definition.sli!r}")
