"""The strategy document as configuration: scaling phases and decision triggers.

A phase is met when every one of its SLOs is `ok`; not met as soon as one breaches; else
`unknown` while any has no data.
A trigger is a statistic of one measurement over a window (from raw results) compared
with a threshold, e.g. "p95 latency of api-tasks above 500 ms over 1h".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select

from monitor.config_slo import Phase, TriggerRule
from monitor.storage.models import ProbeResultRow
from slo.status import SloStatus

PhaseState = Literal["met", "not_met", "unknown"]


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    name: str
    title: str
    state: PhaseState
    slos: tuple[tuple[str, str], ...]  # (SLO name, its state)


@dataclass(frozen=True, slots=True)
class TriggerStatus:
    name: str
    description: str
    phase: str | None
    firing: bool
    value: float | None
    threshold: float
    direction: Literal["above", "below"]
    samples: int
    since: float | None
    transition: str | None = None  # "fired" | "resolved" when it changed this evaluation
    measure: str = ""  # what was measured (`latency`, `database_size_bytes` ...): its unit
    stat: str = ""  # p95, count, rate ...: `count` and `rate` are not in the measure's unit


def phase_statuses(phases: Sequence[Phase], statuses: dict[str, SloStatus]
                   ) -> list[PhaseStatus]:
    out = []
    for phase in phases:
        states = tuple((name, statuses[name].state if name in statuses else "no_data")
                       for name in phase.slos)
        verdict: PhaseState
        if any(state == "breaching" for _, state in states):
            verdict = "not_met"  # one miss decides it, whatever the others show
        elif any(state == "no_data" for _, state in states):
            verdict = "unknown"
        else:
            verdict = "met"
        out.append(PhaseStatus(phase.name, phase.title or phase.name, verdict, states))
    return out


def measurements(engine: Engine, rule: TriggerRule, now: float) -> list[float]:
    """The samples a trigger judges, oldest first: `latency` of successful probes,
    `error` (1 for a failed probe, 0 otherwise) or a named value of the results."""
    query = (select(ProbeResultRow.ok, ProbeResultRow.latency, ProbeResultRow.values)
             .where(ProbeResultRow.target == rule.target,
                    ProbeResultRow.started_at >= now - rule.window,
                    ProbeResultRow.started_at <= now)
             .order_by(ProbeResultRow.started_at))
    samples: list[float] = []
    with engine.connect() as connection:
        for ok, latency, values in connection.execute(query):
            if rule.measure == "latency":
                if ok:
                    samples.append(float(latency))
            elif rule.measure == "error":
                samples.append(0.0 if ok else 1.0)
            elif values and rule.measure in values:
                samples.append(float(values[rule.measure]))
    return samples


def statistic(samples: Sequence[float], stat: str, window: float) -> float | None:
    if not samples:
        return None
    if stat in ("p50", "p95", "p99"):
        ordered = sorted(samples)
        rank = float(stat[1:]) / 100 * (len(ordered) - 1)
        return ordered[math.floor(rank)]
    simple = {"max": max(samples), "min": min(samples), "last": samples[-1],
              "sum": sum(samples), "count": float(len(samples)),
              "mean": sum(samples) / len(samples), "rate": sum(samples) / window}
    return simple[stat]


class TriggerTracker:
    """Evaluates triggers and remembers since when each one fires."""

    def __init__(self, rules: Sequence[TriggerRule]) -> None:
        self.rules = list(rules)
        self._since: dict[str, float] = {}
        self.last: list[TriggerStatus] = []

    def evaluate(self, engine: Engine, now: float, *, track: bool = True
                 ) -> list[TriggerStatus]:
        """Judge every trigger; only the evaluation tick tracks (`track=True`) when each
        started firing, so readers in between neither miss nor invent transitions."""
        out = []
        for rule in self.rules:
            samples = measurements(engine, rule, now)
            value = statistic(samples, rule.stat, rule.window) \
                if len(samples) >= rule.min_samples else None
            direction: Literal["above", "below"] = "above" if rule.above is not None else "below"
            threshold = rule.above if rule.above is not None else rule.below
            assert threshold is not None
            firing = value is not None and (value > threshold if direction == "above"
                                            else value < threshold)
            transition = None
            if not track:
                pass
            elif firing and rule.name not in self._since:
                self._since[rule.name] = now
                transition = "fired"
            elif not firing and rule.name in self._since:
                del self._since[rule.name]
                transition = "resolved"
            out.append(TriggerStatus(rule.name, rule.description, rule.phase, firing, value,
                                     threshold, direction, len(samples),
                                     self._since.get(rule.name), transition,
                                     rule.measure, rule.stat))
        if track:
            self.last = out
        return out
