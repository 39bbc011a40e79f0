"""How an incident names its causes: one short phrase per firing member, joined.

Why the title is rebuilt from the members on every tick rather than kept from the
opening alert: alerts are grouped per target, so an incident opened for a slow ticket
may later hold an outage of the same target. Named after its first member it would
call a hard outage "SLO no-cold-starts is burning its error budget"; named after its
members as they are now it says "api-health is down · api-availability burning 307×
(page) · no-cold-starts burning 2.1× (ticket)", and changes when they do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

TITLE_MAX = 300
SUMMARY_MAX = 2000
SEPARATOR = " · "


class Cause(Protocol):
    """What naming needs of a firing alert or a stored member."""

    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def slo(self) -> str | None: ...
    @property
    def target(self) -> str | None: ...
    @property
    def burn_rate(self) -> float | None: ...


def member_rank(cause: Cause) -> tuple[bool, bool, str]:
    """Pages first, outages first among them, then by key: the order of the title."""
    return cause.severity != "page", cause.kind != "down", cause.key


def times(burn: float) -> str:
    """A burn rate as people read it: "307×", "20×", "14.4×", "0.52×"."""
    return f"{burn:.0f}×" if burn >= 100 else f"{burn:.3g}×"


def phrase(cause: Cause) -> str:
    """One cause in a few words: "api is down", "api-availability burning 307× (page)"."""
    if cause.kind == "down" and cause.target:
        return f"{cause.target} is down"
    if cause.kind == "burn_rate" and cause.slo:
        burn = f" {times(cause.burn_rate)}" if cause.burn_rate is not None else ""
        return f"{cause.slo} burning{burn} ({cause.severity})"
    if cause.kind == "no_data" and cause.slo:
        return f"no data for {cause.slo}"
    return cause.title


def label(cause: Cause) -> str:
    """What a member is about, to label its part of a summary."""
    return cause.slo or cause.target or cause.key


def compose_title(causes: Sequence[Cause]) -> str:
    """The incident's title: the one alert's own title, else every cause's phrase."""
    if len(causes) == 1:
        return causes[0].title[:TITLE_MAX]
    text = SEPARATOR.join(phrase(c) for c in sorted(causes, key=member_rank))
    return text if len(text) <= TITLE_MAX else text[:TITLE_MAX - 1] + "…"


def compose_summary(causes: Sequence[Cause]) -> str:
    """The rules' own words, each labelled with what it is about (one alert: as is)."""
    if len(causes) == 1:
        return causes[0].summary[:SUMMARY_MAX]
    parts = [f"{label(c)}: {c.summary}" for c in sorted(causes, key=member_rank)]
    return "; ".join(parts)[:SUMMARY_MAX]
