"""`primewatch slo test`: alert rules checked against synthetic series on a simulated
clock, in the spirit of `promtool test rules`.

A test file gives an SLO (the same keys as config.yaml), a traffic rate, a series of
phases ("99.95% good for 2 days, then 0% for 10 minutes") and the alerts expected at
given times. The runner builds per-minute counts in memory, evaluates the real alert
state machine every `evaluate_every`, and reports each expectation with a diff and the
time each severity first fired.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from monitor.config_slo import SloConfig
from monitor.slo_engine import alert_tiers
from monitor.units import Duration, Percent, format_duration
from probes.base import StrictModel
from slo.alerting import BurnRateAlerter

MINUTE = 60


class SeriesPhase(StrictModel):
    """`good` percent of events are good for `for` (a duration)."""

    duration: Duration = Field(alias="for")
    good: Percent | float
    events_per_minute: float | None = Field(default=None, gt=0)


class Expectation(StrictModel):
    at: Duration
    alerts: list[str] = Field(default_factory=list)


class SloTestFile(StrictModel):
    name: str = ""
    slo: dict[str, Any]
    events_per_minute: float = Field(default=6.0, gt=0)
    evaluate_every: Duration = 60.0
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
    if not isinstance(slo.window, float):
        raise ValueError("slo test supports rolling windows (e.g. window: 30d)")
    outcome = TestOutcome(test.name or slo.name)
    tiers = alert_tiers(slo, int(slo.window))
    alerter = BurnRateAlerter(tiers, min_events=slo.alerts.min_events,
                              no_data_after=slo.alerts.no_data)
    minutes = minute_counts(test.series, test.events_per_minute)
    prefix_good = [0, *itertools.accumulate(g for g, _ in minutes)]
    prefix_total = [0, *itertools.accumulate(t for _, t in minutes)]
    windows = alerter.required_windows
    expectations = sorted(test.expect, key=lambda e: e.at)
    end = min(expectations[-1].at, len(minutes) * MINUTE)
    now = 0.0
    firing: list[str] = []
    pending = list(expectations)
    while now <= end + 1e-9:
        done = int(now // MINUTE)  # whole minutes of data available at `now`
        counts = {w: _sum(prefix_good, prefix_total, max(0, done - w // MINUTE), done)
                  for w in windows}
        decision = alerter.evaluate(now, counts, slo.objective)
        firing = [decision.severity] if decision.severity else []
        if decision.severity and decision.severity not in outcome.first_fired:
            outcome.first_fired[decision.severity] = now
        while pending and pending[0].at <= now + 1e-9:
            expected = pending.pop(0)
            if sorted(expected.alerts) != sorted(firing):
                outcome.failures.append(
                    f"at {format_duration(expected.at)}: expected {expected.alerts or 'none'}, "
                    f"got {firing or 'none'}" + (f" ({decision.reason})" if decision.reason
                                                  else ""))
        now += test.evaluate_every
    for expected in pending:
        outcome.failures.append(f"at {format_duration(expected.at)}: beyond the series")
    return outcome


def _sum(good: list[int], total: list[int], first: int, last: int) -> tuple[int, int]:
    return good[last] - good[first], total[last] - total[first]


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
