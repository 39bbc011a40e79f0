"""SLO evaluation over stored rollups: windows, budgeting methods, budgets, alerts.

Reads are grouped and cached: every window is split into day, hour and minute ranges,
the sums over ranges that can no longer change are kept between ticks
(`monitor/settled_sums.py`), and what remains (the newest minutes, plus ranges a
window reaches for the first time) is read in one statement for all SLOs and windows.
Timeslice SLOs read their minute rows (bounded by the window, not by data volume).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.settled_sums import SettledSums, add_bins, add_counts
from monitor.storage import rollups
from slo.alerting import AlertDecision, BurnRateAlerter
from slo.budget import (
    BURN_WINDOWS,
    BurnThreshold,
    budget_remaining,
    burn_rate,
    burn_rules_for_period,
    scale_burn_factor,
    sli,
)
from slo.projection import projected_exhaustion, time_to_exhaustion
from slo.status import AlertView, Counts, SloStatus, percentiles, state_of, window_statuses
from slo.timeslices import ratio_timeslices, timeslices
from slo.windows import WindowSpec, period_seconds, window_bounds

Span = tuple[int, int]
DAY = 86400


@dataclass(frozen=True, slots=True)
class Plan:
    """What one SLO needs read: its window, and every burn/alert window ending now."""

    slo: SloConfig
    window: Span
    period: int
    tiers: tuple[BurnThreshold, ...]
    spans: dict[int, Span]  # window seconds → [start, end)


def window_spec(slo: SloConfig) -> WindowSpec:
    if isinstance(slo.window, str):
        return WindowSpec(kind="calendar", unit=slo.window, timezone=slo.timezone)
    return WindowSpec(kind="rolling", seconds=int(slo.window), timezone=slo.timezone)


def alert_tiers(slo: SloConfig, period: int) -> tuple[BurnThreshold, ...]:
    """The Workbook's tiers scaled to the SLO's period, or the SLO's own rules."""
    rules = slo.alerts.burn_rates
    if rules == "default":
        return burn_rules_for_period(period)
    tiers = []
    for rule in rules:
        threshold = rule.threshold if rule.threshold is not None else scale_burn_factor(
            rule.budget_share or 0.0, period, rule.long_window)
        tiers.append(BurnThreshold(rule.severity, int(rule.long_window),
                                   int(rule.short_window), threshold))
    return tuple(sorted(tiers, key=lambda t: (t.long_window_s, t.short_window_s)))


def plan(slo: SloConfig, now: float) -> Plan:
    spec = window_spec(slo)
    start, end = window_bounds(spec, now)
    period = period_seconds(spec, now)
    tiers = alert_tiers(slo, period)
    seconds = {s for _, s in BURN_WINDOWS}
    for tier in tiers:
        seconds |= {tier.long_window_s, tier.short_window_s}
    if slo.alerts.no_data:
        seconds.add(int(slo.alerts.no_data))
    return Plan(slo, (start, end), period, tiers, {s: (end - s, end) for s in seconds})


class SloEngine:
    """Evaluates SLOs against storage; keeps one alerter per SLO between ticks."""

    def __init__(self, engine: Engine,
                 in_maintenance: Callable[[SloConfig, float], bool] | None = None) -> None:
        self._engine = engine
        self._in_maintenance = in_maintenance or (lambda _slo, _now: False)
        self._alerters: dict[str, tuple[tuple[BurnThreshold, ...], BurnRateAlerter]] = {}
        self.last_decisions: dict[str, AlertDecision] = {}
        self._counts_cache: SettledSums[tuple[int, int]] = SettledSums(
            lambda requests: rollups.sum_counts_many(engine, [(n, [r]) for n, r in requests]),
            add_counts, lambda: (0, 0))
        self._bins_cache: SettledSums[dict[int, int]] = SettledSums(
            lambda requests: rollups.sum_bins_many(engine, [(n, [r]) for n, r in requests]),
            add_bins, dict)

    def evaluate(self, slos: Sequence[SloConfig], now: float, *,
                 alerts: bool = False) -> list[SloStatus]:
        """Statuses at `now`. Only the evaluation tick passes `alerts=True` (advancing
        each SLO's alert state machine); other readers see the last verdict."""
        plans = [plan(slo, now) for slo in slos]
        counts = self._counts(plans, now)
        bins = self._bins(plans, now)
        statuses = []
        for p in plans:
            name = p.slo.name
            statuses.append(self._status(p, counts[name], bins.get(name, {}), now, alerts))
        return statuses

    def _counts(self, plans: Sequence[Plan], now: float) -> dict[str, dict[object, Counts]]:
        """Effective (good, total) per SLO for its window (key "window") and each span."""
        out: dict[str, dict[object, Counts]] = defaultdict(dict)
        by_span: dict[Span, list[tuple[str, object]]] = defaultdict(list)
        for p in plans:
            if p.slo.budgeting != "occurrences":
                out[p.slo.name] = self._slice_counts(p)
                continue
            by_span[p.window].append((p.slo.name, "window"))
            for seconds, span in p.spans.items():
                by_span[span].append((p.slo.name, seconds))
        wanted = {span: sorted({name for name, _ in keys}) for span, keys in by_span.items()}
        sums = self._counts_cache.sums(wanted, now)
        for span, keys in by_span.items():
            for name, key in keys:
                out[name][key] = sums[span][name]
        return out

    def _slice_counts(self, p: Plan) -> dict[object, Counts]:
        spans: dict[object, Span] = {"window": p.window}
        for seconds, span in p.spans.items():
            spans[seconds] = span
        first = min(start for start, _ in spans.values())
        last = max(end for _, end in spans.values())
        minutes = rollups.series(self._engine, [p.slo.name], rollups.MINUTE, first,
                                 last)[p.slo.name]
        slice_seconds = int(p.slo.timeslice)
        result: dict[object, Counts] = {}
        for key, (start, end) in spans.items():
            if p.slo.budgeting == "timeslices":
                good, total = timeslices(minutes, start=start, end=end,
                                         slice_seconds=slice_seconds,
                                         target=p.slo.timeslice_target)
                result[key] = (float(good), float(total))
            else:
                ratio_sum, slices = ratio_timeslices(minutes, start=start, end=end,
                                                     slice_seconds=slice_seconds)
                result[key] = (ratio_sum, float(slices))
        return result

    def _bins(self, plans: Sequence[Plan], now: float) -> dict[str, dict[int, int]]:
        """Window histograms (for p50/p95/p99): ~90% of the rows an evaluation would read
        uncached, so the settled part of each window is kept between ticks."""
        by_window: dict[Span, list[str]] = defaultdict(list)
        for p in plans:
            if p.slo.sli in ("availability", "latency", "threshold"):
                by_window[p.window].append(p.slo.name)
        out: dict[str, dict[int, int]] = {}
        for per_name in self._bins_cache.sums(by_window, now).values():
            out.update(per_name)
        return out

    def forget(self, since: float | None = None) -> None:
        """Drop cached sums that writes at or after `since` may have changed (all if
        None): after a late batch, a backfill or a maintenance correction."""
        self._counts_cache.forget(since)
        self._bins_cache.forget(since)

    def _status(self, p: Plan, counts: dict[object, Counts], bins: dict[int, int],
                now: float, with_alerts: bool) -> SloStatus:
        slo = p.slo
        good, total = counts["window"]
        remaining = budget_remaining(good, total, slo.objective)
        by_seconds = {k: v for k, v in counts.items() if isinstance(k, int)}
        current_burn = _current_burn(by_seconds, slo.objective)
        maintenance = self._in_maintenance(slo, now)
        alert = AlertView(suppressed=maintenance)
        if with_alerts and slo.alerts.enabled:
            alert = self._alert(p, by_seconds, now, maintenance)
        elif slo.name in self.last_decisions:
            alert = _view(self.last_decisions[slo.name], maintenance)
        return SloStatus(
            name=slo.name, target=slo.target, sli_kind=slo.sli, objective=slo.objective,
            window_seconds=p.window[1] - p.window[0], evaluated_at=now, good=good,
            total=total, sli=sli(good, total), budget_remaining=remaining,
            state=state_of(good, total, slo.objective),
            windows=window_statuses(by_seconds, slo.objective), threshold=slo.threshold,
            latency=percentiles(bins), window_start=p.window[0], period_seconds=p.period,
            budgeting=slo.budgeting,
            exhaustion_seconds=time_to_exhaustion(remaining, current_burn, p.period),
            exhausted_at=projected_exhaustion(now, remaining, current_burn, p.period),
            alert=alert, in_maintenance=maintenance,
        )

    def _alert(self, p: Plan, counts: dict[int, Counts], now: float,
               maintenance: bool) -> AlertView:
        slo = p.slo
        known = self._alerters.get(slo.name)
        if known is None or known[0] != p.tiers:  # new SLO, or its period/rules changed
            fresh = BurnRateAlerter(p.tiers, min_events=slo.alerts.min_events,
                                    no_data_after=slo.alerts.no_data)
            if known is not None and len(known[0]) == len(p.tiers):
                fresh.restore(*known[1].state)  # a new calendar month keeps an open alert
            known = self._alerters[slo.name] = (p.tiers, fresh)
        alerter = known[1]
        int_counts = {k: (round(g), round(t)) for k, (g, t) in counts.items()}
        decision = alerter.evaluate(now, int_counts, slo.objective, suppressed=maintenance)
        self.last_decisions[slo.name] = decision
        return _view(decision, maintenance)


def _view(decision: AlertDecision, maintenance: bool) -> AlertView:
    return AlertView(severity=decision.severity, tier=decision.tier, reason=decision.reason,
                     since=decision.since, no_data=decision.no_data, suppressed=maintenance)


def _current_burn(counts: dict[int, Counts], objective: float) -> float | None:
    """The burn used for projections: the last hour's (the Workbook's page window)."""
    good, total = counts.get(3600, (0.0, 0.0))
    return burn_rate(good, total, objective)
