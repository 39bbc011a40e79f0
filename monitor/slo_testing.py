"""`primewatch slo test`: alert rules checked against synthetic series on a simulated
clock, in the spirit of `promtool test rules`.

A test file gives an SLO (the same keys as config.yaml), a traffic rate, a series of
phases ("99.95% good for 2 days, then 0% for 10 minutes") and the alerts expected at
given times. The runner builds per-minute counts in memory, evaluates the real alert
state machine every `evaluate_every`, and reports each expectation with a diff and the
time each severity first fired. An expectation with `until:` must hold at every
evaluation from `at` to `until` ("never alerts over the whole window").

Calendar windows (`window: month` or `week`) scale their tiers to the month or week
holding each simulated instant, as the service does; `start:` says when the series
begins (default 2024-01-01 00:00 in the SLO's time zone, a Monday and a 1st), e.g.
`start: 2026-02-01T00:00:00Z` for a 28-day month. Times in `for:` and `at:` stay
offsets from that start.
"""

from __future__ import annotations

import itertools
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from monitor.config_slo import SloConfig
from monitor.slo_engine import alert_tiers, window_spec
from monitor.units import Duration, Percent, format_duration
from probes.base import StrictModel
from slo.alerting import AlertDecision, BurnRateAlerter
from slo.allowance import allowance, budgeted_window_counts
from slo.budget import BurnThreshold
from slo.windows import period_bounds, period_seconds

MINUTE = 60
EPSILON = 1e-9  # evaluation times are sums of floats


class SeriesPhase(StrictModel):
    """`good` percent of events are good for `for` (a duration)."""

    duration: Duration = Field(alias="for")
    good: Percent | float
    events_per_minute: float | None = Field(default=None, gt=0)


class Expectation(StrictModel):
    """`alerts` firing at `at`; with `until`, at every evaluation from `at` to `until`
    (what "never alerts over the whole window" needs: a spike between two sampled
    instants would go unseen)."""

    at: Duration
    until: Duration | None = None
    alerts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Expectation:
        if self.until is not None and self.until < self.at:
            raise ValueError("`until` must not be before `at`")
        return self

    @property
    def last(self) -> float:
        return self.at if self.until is None else self.until

    def describe(self) -> str:
        if self.until is None:
            return f"at {format_duration(self.at)}"
        return f"from {format_duration(self.at)} to {format_duration(self.until)}"


class SloTestFile(StrictModel):
    name: str = ""
    slo: dict[str, Any]
    events_per_minute: float = Field(default=6.0, gt=0)
    evaluate_every: Duration = 60.0
    start: datetime | None = None  # naive: in the SLO's time zone
    series: list[SeriesPhase] = Field(min_length=1)
    expect: list[Expectation] = Field(min_length=1)


@dataclass
class TestOutcome:
    name: str
    failures: list[str] = field(default_factory=list)
    first_fired: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


def minute_counts(phases: Sequence[SeriesPhase], default_rate: float) -> list[tuple[int, int]]:
    """Per-minute (good, total); fractional bad events carry over (Bresenham), so 99.95%
    good at 6 events a minute really gives one bad event every ~5.5 hours."""
    minutes: list[tuple[int, int]] = []
    carry_total = carry_bad = 0.0
    for phase in phases:
        rate = phase.events_per_minute or default_rate
        ratio = phase.good if phase.good <= 1 else phase.good / 100
        for _ in range(math.ceil(phase.duration / MINUTE)):
            carry_total += rate
            total = int(carry_total)
            carry_total -= total
            carry_bad += total * (1 - ratio)
            bad = min(total, int(round(carry_bad, 9)))
            carry_bad -= bad
            minutes.append((total - bad, total))
    return minutes


def run_test(test: SloTestFile) -> TestOutcome:
    slo = SloConfig.model_validate({"name": "under-test", "target": "synthetic",
                                    "sli": "availability", **test.slo})
    outcome = TestOutcome(test.name or slo.name)
    clock = _TierClock(slo, _origin(test.start, slo.timezone))
    alerter = BurnRateAlerter(clock.tiers_at(0.0), min_events=slo.alerts.min_events,
                              no_data_after=slo.alerts.no_data)
    windows = sorted(alerter.required_windows)
    series = _Series(minute_counts(test.series, test.events_per_minute))
    checks = _Checks(test.expect)
    end = min(checks.last, series.seconds)
    now = 0.0
    seen: tuple[BurnRateAlerter, list[tuple[int, int]]] | None = None
    decision: AlertDecision | None = None
    while now <= end + EPSILON:
        current = _follow_period(alerter, clock.tiers_at(now), slo)
        if current is not alerter:
            alerter, windows = current, sorted(current.required_windows)
        counts = series.counts(now, windows)
        if decision is None or (alerter, counts) != seen:
            # The alerter decides from its counts and state alone, and a second look at
            # the same counts leaves both as they were: skipping it changes nothing and
            # makes a 90-day series (mostly minutes where no window changes) fast.
            decision = alerter.evaluate(
                now, _as_budgeted(windows, counts, now, test.events_per_minute / 60.0),
                slo.objective,
                observed_events={w: total for w, (_, total) in zip(windows, counts, strict=True)})
            seen = (alerter, counts)
        if decision.severity:
            outcome.first_fired.setdefault(decision.severity, now)
        outcome.failures += checks.at(now, decision)
        now += test.evaluate_every
    outcome.failures += checks.unchecked()
    return outcome


def _as_budgeted(windows: Sequence[int], counts: Sequence[tuple[int, int]], now: float,
                 events_per_second: float) -> dict[int, tuple[int, int]]:
    """The counts the service's alerter sees (`SloEngine._alert_counts`): the series is
    a fresh install whose data begins at 0."""
    return budgeted_window_counts(
        dict(zip(windows, counts, strict=True)), {w: now - w for w in windows}, 0.0,
        lambda seconds, start, total: allowance(
            source="schedule", period=seconds, window_start=start, now=now,
            first_data_at=0.0, total=total, events_per_second=events_per_second,
        ).expected_events)


class _Series:
    """Per-minute counts summed over any window ending at an instant, in O(1)."""

    def __init__(self, minutes: Sequence[tuple[int, int]]) -> None:
        self._good = [0, *itertools.accumulate(g for g, _ in minutes)]
        self._total = [0, *itertools.accumulate(t for _, t in minutes)]
        self.seconds = len(minutes) * MINUTE

    def counts(self, now: float, windows: Sequence[int]) -> list[tuple[int, int]]:
        """(good, total) per window over the whole minutes of data available at `now`."""
        done = int(now // MINUTE)
        good, total = self._good, self._total
        firsts = [max(0, done - w // MINUTE) for w in windows]
        return [(good[done] - good[f], total[done] - total[f]) for f in firsts]


class _Checks:
    """The expectations in time order: one with only `at` is checked at the first
    evaluation at or after it, one with `until` at every evaluation in between."""

    def __init__(self, expect: Sequence[Expectation]) -> None:
        self._pending = sorted(expect, key=lambda e: e.at)  # not begun yet
        self._ongoing: list[tuple[Expectation, list[str]]] = []  # begun, holding so far
        self._checked = 0.0
        self.last = max(e.last for e in expect)

    def at(self, now: float, decision: AlertDecision) -> list[str]:
        """The failures at `now`; a range reports only its first miss."""
        firing = [decision.severity] if decision.severity else []
        while self._pending and self._pending[0].at <= now + EPSILON:
            expected = self._pending.pop(0)
            self._ongoing.append((expected, sorted(expected.alerts)))
        failures: list[str] = []
        holding: list[tuple[Expectation, list[str]]] = []
        for expected, wanted in self._ongoing:
            if wanted != firing:
                where = "" if expected.until is None else f" at {format_duration(now)}"
                reason = f" ({decision.reason})" if decision.reason else ""
                failures.append(f"{expected.describe()}: expected {expected.alerts or 'none'}, "
                                f"got {firing or 'none'}{where}{reason}")
            elif expected.last > now + EPSILON:
                holding.append((expected, wanted))
        self._ongoing = holding
        self._checked = now
        return failures

    def unchecked(self) -> list[str]:
        """Expectations the series ended before."""
        left = [*(e for e, _ in self._ongoing), *self._pending]
        return [f"{e.describe()}: beyond the series" for e in left
                if e.last > self._checked + EPSILON]


class _TierClock:
    """The SLO's tiers at each simulated instant, scaled as the service scales them: to
    the rolling window, or to the week or month holding the instant. Computed once per
    period rather than per evaluation, so a 90-day series stays fast."""

    def __init__(self, slo: SloConfig, origin: float) -> None:
        self._slo = slo
        self._spec = window_spec(slo)
        self._origin = origin
        self._bounds = (0.0, 0.0)
        self._tiers: tuple[BurnThreshold, ...] | None = None

    def tiers_at(self, offset: float) -> tuple[BurnThreshold, ...]:
        instant = self._origin + offset
        if self._tiers is None or not self._bounds[0] <= instant < self._bounds[1]:
            self._bounds = ((-math.inf, math.inf) if self._spec.kind == "rolling"
                            else period_bounds(self._spec, instant))
            self._tiers = alert_tiers(self._slo, period_seconds(self._spec, instant))
        return self._tiers


def _origin(start: datetime | None, timezone: str) -> float:
    """Epoch seconds of the series' first minute; a naive `start` is in the SLO's zone."""
    moment = start or datetime(2024, 1, 1)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return moment.timestamp()


def _follow_period(alerter: BurnRateAlerter, tiers: tuple[BurnThreshold, ...],
                   slo: SloConfig) -> BurnRateAlerter:
    """A new calendar period may scale the tiers anew: like `SloEngine`, start a fresh
    alerter and keep an open alert when the number of tiers is unchanged."""
    if tiers == alerter.tiers:
        return alerter
    fresh = BurnRateAlerter(tiers, min_events=slo.alerts.min_events,
                            no_data_after=slo.alerts.no_data)
    if len(tiers) == len(alerter.tiers):
        fresh.restore(*alerter.state)
    return fresh


def load(path: str | Path) -> list[SloTestFile]:
    """One file may hold one test or a list under `tests:`."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    items = data.get("tests", [data]) if isinstance(data, dict) else data
    return [SloTestFile.model_validate(item) for item in items]


def run_files(paths: Sequence[str]) -> int:
    """CLI entry: print PASS/FAIL per test; exit 0 all passed, 1 a test failed, 2 bad file."""
    failed = 0
    for path in paths:
        try:
            tests = load(path)
        except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
            print(f"{path}: cannot load: {exc}")
            return 2
        for test in tests:
            try:
                outcome = run_test(test)
            except (ValueError, ValidationError) as exc:
                print(f"{path}: {test.name or 'test'}: invalid: {exc}")
                return 2
            fired = ", ".join(f"{sev} at {format_duration(t)}"
                              for sev, t in outcome.first_fired.items()) or "no alert"
            print(f"{'PASS' if outcome.passed else 'FAIL'} {path}: {outcome.name} ({fired})")
            for failure in outcome.failures:
                print(f"  - {failure}")
            failed += not outcome.passed
    total = sum(len(load(p)) for p in paths)
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0
