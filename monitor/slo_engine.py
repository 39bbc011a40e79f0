"""SLO evaluation over stored rollups: windows, budgeting methods, budgets, alerts.

Reads are grouped and cached: every window is split into day, hour and minute ranges,
the sums over ranges that can no longer change are kept between ticks
(`monitor/settled_sums.py`), and what remains (the newest minutes, plus ranges a
window reaches for the first time) is read in one statement for all SLOs and windows.
Timeslice SLOs read their minute rows (bounded by the window, not by data volume).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config_slo import SloConfig
from monitor.settled_sums import SettledSums, add_bins, add_counts
from monitor.storage import rollups
from slo.alerting import AlertDecision, BurnRateAlerter
from slo.allowance import (
    Allowance,
    EventSource,
    allowance,
    budget_left,
    budgeted_window_counts,
)
from slo.budget import (
    BURN_WINDOWS,
    BurnThreshold,
    burn_rate,
    burn_rules_for_period,
    scaled_burn_threshold,
    sli,
)
from slo.projection import projected_exhaustion, time_to_exhaustion
from slo.status import AlertView, Counts, SloStatus, percentiles, window_statuses
from slo.timeslices import ratio_timeslices, timeslices
from slo.windows import WindowSpec, period_seconds, window_bounds

Span = tuple[int, int]
DAY = 86400
PROBE_SLIS = frozenset({"availability", "latency", "threshold"})
"""SLI kinds with one event per scheduled probe: their budget rests on the schedule."""


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
    """The Workbook's tiers scaled to the SLO's period, or the SLO's own rules.

    Own rules given as a `budget_share` are raised to a burn of 1 when the period scales
    them below (`scaled_burn_threshold`) rather than rejected: the period is not known
    where a rule is validated, and for a calendar month it changes, so a rule fine in
    January could not be refused in February. They are not dropped either: each was
    written on purpose. An explicit `threshold` below 1 is a config error instead.
    """
    rules = slo.alerts.burn_rates
    if rules == "default":
        return burn_rules_for_period(period)
    tiers = []
    for rule in rules:
        threshold = rule.threshold if rule.threshold is not None else scaled_burn_threshold(
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
                 in_maintenance: Callable[[SloConfig, float], bool] | None = None,
                 probes_per_second: Mapping[str, float] | None = None) -> None:
        """`probes_per_second` (target → 1 / interval) is the schedule a probe SLO's
        budget is based on; without it the observed event rate is extrapolated."""
        self._engine = engine
        self._in_maintenance = in_maintenance or (lambda _slo, _now: False)
        self._probes_per_second = dict(probes_per_second or {})
        self._first_data: dict[str, int] = {}
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
        self._learn_first_data([p.slo.name for p in plans])
        statuses = []
        for p in plans:
            name = p.slo.name
            statuses.append(self._status(p, counts[name], bins.get(name, {}), now, alerts))
        return statuses

    def _learn_first_data(self, names: Sequence[str]) -> None:
        """When each SLO's data begins; read once per SLO (again after `forget`), since
        only a backfill or retention moves it."""
        unknown = [name for name in names if name not in self._first_data]
        if unknown:
            self._first_data.update(rollups.first_buckets(self._engine, unknown))

    def budget_base(self, slo: SloConfig, p: Plan, total: float, now: float) -> Allowance:
        """The budget's base for `slo` now: see `slo/allowance.py`."""
        return self._allowance(slo, p.period, p.window[0], total, now)

    def _allowance(self, slo: SloConfig, period: float, window_start: float, total: float,
                   now: float) -> Allowance:
        """The events `period` seconds from `window_start` are expected to hold."""
        if slo.budgeting != "occurrences":
            source: EventSource = "slices"
        elif slo.sli in PROBE_SLIS and slo.target in self._probes_per_second:
            source = "schedule"
        else:
            source = "rate"
        return allowance(source=source, period=period, window_start=window_start, now=now,
                         first_data_at=self._first_data.get(slo.name), total=total,
                         events_per_second=self._probes_per_second.get(slo.target),
                         slice_seconds=slo.timeslice)

    def _alert_counts(self, p: Plan, counts: dict[int, Counts], now: float
                      ) -> dict[int, tuple[int, int]]:
        """Each alert window's counts as the budget sees them (`budgeted_window_counts`),
        so a young SLO's tiers fire on what a mature one's would, not on early noise."""
        return budgeted_window_counts(
            counts, {seconds: p.spans[seconds][0] for seconds in counts},
            self._first_data.get(p.slo.name),
            lambda seconds, start, total: self._allowance(
                p.slo, seconds, start, total, now).expected_events)

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
        self._first_data.clear()

    def _status(self, p: Plan, counts: dict[object, Counts], bins: dict[int, int],
                now: float, with_alerts: bool) -> SloStatus:
        slo = p.slo
        good, total = counts["window"]
        base = self.budget_base(slo, p, total, now)
        remaining = budget_left(good, total, slo.objective, base.expected_events)
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
            state="no_data" if total == 0 else (
                "breaching" if remaining is not None and remaining < 0 else "ok"),
            windows=window_statuses(by_seconds, slo.objective), threshold=slo.threshold,
            latency=percentiles(bins), window_start=p.window[0], period_seconds=p.period,
            budgeting=slo.budgeting,
            exhaustion_seconds=time_to_exhaustion(remaining, current_burn, p.period),
            exhausted_at=projected_exhaustion(now, remaining, current_burn, p.period),
            alert=alert, in_maintenance=maintenance, expected_events=base.expected_events,
            budget_estimated=base.estimated, collecting_since=base.collecting_since,
            window_coverage=base.coverage,
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
        decision = alerter.evaluate(
            now, self._alert_counts(p, counts, now), slo.objective, suppressed=maintenance,
            observed_events={seconds: round(total) for seconds, (_, total) in counts.items()})
        self.last_decisions[slo.name] = decision
        return _view(decision, maintenance)


def expected_window_events(engine: Engine, settings: Settings, slo: SloConfig, at: float
                           ) -> float | None:
    """The events `slo`'s whole window at `at` is expected to hold (the budget's base,
    as the evaluation tick computes it), for surfaces outside the tick: post-mortems
    and reports state the same budget as the pages. None without data."""
    evaluator = SloEngine(engine, probes_per_second=probe_rates(settings))
    [status] = evaluator.evaluate([slo], at)
    return status.expected_events if status.total > 0 else None


def probe_rates(settings: Settings) -> dict[str, float]:
    """Scheduled probes per second of each target: a probe SLO's budget base."""
    return {target.name: 1.0 / target.interval for target in settings.targets}


def _view(decision: AlertDecision, maintenance: bool) -> AlertView:
    return AlertView(severity=decision.severity, tier=decision.tier, reason=decision.reason,
                     since=decision.since, no_data=decision.no_data, suppressed=maintenance)


def _current_burn(counts: dict[int, Counts], objective: float) -> float | None:
    """The burn used for projections: the last hour's (the Workbook's page window)."""
    good, total = counts.get(3600, (0.0, 0.0))
    return burn_rate(good, total, objective)
