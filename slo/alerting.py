"""Multiwindow, multi-burn-rate alerting (SRE Workbook, "Alerting on SLOs"), one per SLO.

Each tier pairs a long window (is this significant?) with a short one (is it still
happening?) and fires when the burn rate over BOTH is above its threshold. The
fastest firing tier wins: a page already says everything a ticket would.

``BurnRateAlerter`` adds the state a stateless rule lacks:

- hysteresis: a firing tier stays open until its short-window burn drops below its
  threshold, so an alert does not flap while the long window is still draining;
- a low-traffic guard (``min_events`` in the long window), so 1 failure out of 3 probes
  does not page anyone;
- no data: a silent target is reported once as ``no_data`` (never as good, never as a
  burn), and once more as ``data_back``; longer windows that still hold the events from
  before the silence keep being judged on those real events;
- suppression (maintenance, silences): the rules keep being evaluated but nothing is
  reported. Transitions compare with what was last *reported*, so an alert that fired
  before a maintenance window and recovered during it still gets its "resolved".

A short window with no events is no evidence of recovery: it keeps a firing tier open.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from slo.budget import DEFAULT_BURN_RULES, BurnRule, BurnThreshold, burn_rate, burn_rules_for_period

__all__ = [
    "AlertDecision",
    "AlertState",
    "BurnRateAlerter",
    "Transition",
    "scale_rules",
]

Transition = Literal["fired", "escalated", "deescalated", "resolved", "no_data", "data_back"]


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """What one evaluation concluded, and what changed since the last one."""

    severity: Literal["page", "ticket"] | None
    tier: int | None
    reason: str
    burn_long: float | None
    burn_short: float | None
    no_data: bool
    transition: Transition | None
    since: float | None

    @property
    def firing(self) -> bool:
        """True while a tier fires (and is not suppressed)."""
        return self.tier is not None


class AlertState(NamedTuple):
    """The firing tier and when firing began: what to persist across restarts."""

    tier: int | None
    since: float | None


def scale_rules(
    period_seconds: float, overrides: Sequence[BurnRule] | None = None
) -> tuple[BurnThreshold, ...]:
    """Return the tiers for an SLO period: the Workbook's, or ``overrides``, scaled."""
    return burn_rules_for_period(
        period_seconds, DEFAULT_BURN_RULES if overrides is None else overrides
    )


def _window(seconds: int) -> str:
    """Format a window like the Workbook does: 5m, 1h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _burn(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


class _Tier(NamedTuple):
    """One tier's burns at this evaluation."""

    rule: BurnThreshold
    long: float | None
    short: float | None
    long_events: int

    def over(self) -> bool:
        """Both windows above the threshold: the Workbook's AND. Strictly above: a burn
        of exactly 1 ends the period exactly at its objective, which meets the SLO."""
        threshold = self.rule.threshold
        return (self.long is not None and self.short is not None
                and self.long > threshold and self.short > threshold)

    def describe(self, relation: str) -> str:
        return (f"burn {_burn(self.long)} over {_window(self.rule.long_window_s)} and "
                f"{_burn(self.short)} over {_window(self.rule.short_window_s)} "
                f"{relation} {self.rule.threshold:g}")


class BurnRateAlerter:
    """Turns window counts into page/ticket decisions for one SLO, with memory."""

    def __init__(
        self,
        tiers: Sequence[BurnThreshold],
        *,
        min_events: int = 0,
        no_data_after: float | None = None,
    ) -> None:
        self._tiers = tuple(tiers)
        for index, tier in enumerate(self._tiers):
            if tier.long_window_s <= 0 or tier.short_window_s <= 0:
                raise ValueError(f"tier {index}: windows must be > 0 seconds, got {tier}")
            if not (math.isfinite(tier.threshold) and tier.threshold > 0):
                raise ValueError(f"tier {index}: threshold must be > 0, got {tier.threshold!r}")
        if min_events < 0:
            raise ValueError(f"min_events must be >= 0, got {min_events}")
        if no_data_after is not None and not no_data_after >= 1:
            raise ValueError(f"no_data_after must be at least 1 s, got {no_data_after!r}")
        self._min_events = min_events
        self._no_data_key = None if no_data_after is None else int(no_data_after)
        self._tier: int | None = None
        self._since: float | None = None
        # What the last unsuppressed decision reported: transitions are diffs against it.
        self._reported_tier: int | None = None
        self._reported_no_data = False

    @property
    def tiers(self) -> tuple[BurnThreshold, ...]:
        return self._tiers

    @property
    def required_windows(self) -> frozenset[int]:
        """Every window (seconds) that ``evaluate`` needs in ``counts``."""
        keys = {t.long_window_s for t in self._tiers} | {t.short_window_s for t in self._tiers}
        if self._no_data_key is not None:
            keys.add(self._no_data_key)
        return frozenset(keys)

    @property
    def state(self) -> AlertState:
        return AlertState(self._tier, self._since)

    def restore(self, tier: int | None, since: float | None) -> None:
        """Resume a persisted state, as already reported: no second "fired" after a restart."""
        if tier is not None and tier not in range(len(self._tiers)):
            raise ValueError(f"tier {tier} is out of range for {len(self._tiers)} tiers")
        if (tier is None) != (since is None):
            raise ValueError(f"tier and since must both be set or both None, got {tier}, {since}")
        self._tier = self._reported_tier = tier
        self._since = since

    def evaluate(
        self,
        now: float,
        counts: Mapping[int, tuple[int, int]],
        objective: float,
        *,
        suppressed: bool = False,
        observed_events: Mapping[int, int] | None = None,
    ) -> AlertDecision:
        """Decide from ``counts`` (window seconds -> (good, total)) and update the state.

        ``observed_events`` (window seconds -> events really measured) is for counts that
        include events assumed rather than seen (a young SLO's unmeasured part, counted
        as good): the low-traffic guard must count only what was measured.
        """
        missing = self.required_windows - counts.keys()
        if missing:
            raise ValueError(f"counts lack the windows {sorted(missing)} (seconds)")
        seen = observed_events or {}
        tiers = [
            _Tier(rule, burn_rate(*counts[rule.long_window_s], objective),
                  burn_rate(*counts[rule.short_window_s], objective),
                  seen.get(rule.long_window_s, counts[rule.long_window_s][1]))
            for rule in self._tiers
        ]
        no_data = self._no_data_key is not None and counts[self._no_data_key][1] == 0

        tier = self._next_tier(tiers)
        if tier is None:
            self._since = None
        elif self._tier is None:
            self._since = now
        self._tier = tier  # since is kept across escalations: it is when the incident began

        reason = self._reason(tiers, tier, no_data)
        shown = tiers[tier] if tier is not None else self._closest(tiers)
        burns = (shown.long, shown.short) if shown is not None else (None, None)
        if suppressed:
            return AlertDecision(None, None, f"suppressed: {reason}", *burns, no_data, None, None)

        transition = _tier_transition(self._reported_tier, tier)
        self._reported_tier = tier
        if transition is None and no_data != self._reported_no_data:
            # One transition per decision: a no-data change waits behind a firing change.
            transition = "no_data" if no_data else "data_back"
            self._reported_no_data = no_data
        severity = None if tier is None else self._tiers[tier].severity
        return AlertDecision(severity, tier, reason, *burns, no_data, transition, self._since)

    def _next_tier(self, tiers: Sequence[_Tier]) -> int | None:
        """The fastest tier that fires anew, or the current one held by hysteresis."""
        candidates = [
            index for index, tier in enumerate(tiers)
            if tier.over() and tier.long_events >= self._min_events
        ]
        if self._tier is not None and self._holds(tiers[self._tier]):
            candidates.append(self._tier)
        return min(candidates, default=None)

    @staticmethod
    def _holds(tier: _Tier) -> bool:
        """A firing tier stays open until its short window is back under the threshold."""
        return tier.short is None or tier.short >= tier.rule.threshold

    def _reason(self, tiers: Sequence[_Tier], tier: int | None, no_data: bool) -> str:
        parts: list[str] = []
        if tier is not None:
            current = tiers[tier]
            if current.over():
                parts.append(current.describe(">"))
            elif current.short is None:
                parts.append(f"holding: no events over {_window(current.rule.short_window_s)} "
                             f"to show recovery ({current.describe('vs')})")
            else:
                parts.append(f"holding until the short window recovers: {current.describe('≥')}")
        else:
            closest = self._closest(tiers)
            if closest is None:
                parts.append("no events in any alerting window")
            elif closest.over():
                parts.append(f"only {closest.long_events} events over "
                             f"{_window(closest.rule.long_window_s)} (min_events "
                             f"{self._min_events}): {closest.describe('>')}")
            else:
                parts.append(f"ok: {closest.describe('≤')}")
        if no_data and self._no_data_key is not None:
            parts.append(f"no events in the last {_window(self._no_data_key)}")
        return "; ".join(parts)

    @staticmethod
    def _closest(tiers: Sequence[_Tier]) -> _Tier | None:
        """What to show when nothing fires: the fastest tier held back by ``min_events``,
        else the tier nearest to firing (highest weaker-window burn / threshold)."""
        blocked = [t for t in tiers if t.over()]
        if blocked:
            return blocked[0]
        scored = [
            (min(t.long, t.short) / t.rule.threshold, -index, t)
            for index, t in enumerate(tiers)
            if t.long is not None and t.short is not None
        ]
        return max(scored, key=lambda item: item[:2])[2] if scored else None


def _tier_transition(before: int | None, after: int | None) -> Transition | None:
    """Name the change between two reported tiers (a lower index is a faster tier)."""
    if before == after:
        return None
    if before is None:
        return "fired"
    if after is None:
        return "resolved"
    return "escalated" if after < before else "deescalated"
