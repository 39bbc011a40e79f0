"""Config models for objectives: SLOs, their alert rules, maintenance windows, the
strategy's scaling phases and decision triggers.

Kept apart from `monitor.config` (service, storage, targets, channels) because this is
what SRE users edit most, and it carries most of the validation.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from monitor.units import Duration, Percent, parse_duration, parse_size
from probes.base import StrictModel
from slo.windows import CalendarUnit

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
CALENDAR_WINDOWS: dict[str, CalendarUnit] = {
    "quarter": "quarter", "calendar_quarter": "quarter", "month": "month",
    "calendar_month": "month", "week": "week", "calendar_week": "week"}
"""`window:` spellings of a calendar period; the value is the unit `slo.windows` reads."""


def _window(value: Any) -> float | str:
    """A calendar unit's name, or a rolling length in seconds.

    Text that is neither names the calendar units too: `quarterly` is more likely a
    misspelt calendar window than a malformed duration.
    """
    if isinstance(value, str) and value.strip().lower() in CALENDAR_WINDOWS:
        return CALENDAR_WINDOWS[value.strip().lower()]
    try:
        return parse_duration(value)
    except ValueError:
        if not isinstance(value, str):
            raise
        raise ValueError(f"invalid SLO window {value!r}: expected month, quarter, week or a "
                         "duration (30d)") from None


def _number_duration_or_size(value: Any) -> Any:
    """Thresholds: `200ms`, `10GB` or a plain number, whatever the value measures."""
    if not isinstance(value, str):
        return value
    for parse in (parse_duration, parse_size):
        try:
            return float(parse(value))
        except ValueError:
            continue
    raise ValueError(f"invalid threshold {value!r}: expected a duration (200ms), "
                     "a size (10GB) or a number")


Window = Annotated[float | CalendarUnit, BeforeValidator(_window)]
Threshold = Annotated[float, BeforeValidator(_number_duration_or_size)]


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                         "Europe/Berlin or UTC") from None
    return value


class BurnRateRule(StrictModel):
    """One multi-window tier: fire when burn ≥ threshold over both windows.

    A `threshold` below 1 is refused here: a burn under 1 finishes the SLO period under
    budget, so such a tier alerts on an SLO that will be met. A `budget_share` cannot be
    judged here (it depends on the SLO's period, which a calendar month or quarter
    changes), so
    `alert_tiers` raises one that scales below 1 to 1 instead.
    """

    severity: Literal["page", "ticket"]
    long_window: Duration
    short_window: Duration
    budget_share: Percent | None = None
    threshold: float | None = None

    @field_validator("threshold")
    @classmethod
    def _at_least_one(cls, value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value):
            raise ValueError(f"a burn-rate `threshold` must be a finite number, got {value}")
        if value < 1:
            raise ValueError(
                f"a burn-rate `threshold` must be at least 1, got {value:g}: a burn below 1 "
                "spends less than the whole error budget by the end of the SLO window, so "
                "the SLO is met and nothing should alert")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> BurnRateRule:
        if (self.budget_share is None) == (self.threshold is None):
            raise ValueError("give either `budget_share` (percent of the budget this tier "
                             "may spend in its long window) or a burn `threshold`")
        if self.short_window >= self.long_window:
            raise ValueError("`short_window` must be shorter than `long_window`")
        return self


class SloAlerts(StrictModel):
    """How an SLO alerts: the Workbook's tiers by default, scaled to the SLO's period."""

    enabled: bool = True
    burn_rates: Literal["default"] | list[BurnRateRule] = "default"
    min_events: int = Field(default=10, ge=0)
    no_data: Duration | None = None


class SloConfig(StrictModel):
    """One service level objective over one target's events."""

    name: Name
    target: Name
    sli: Literal["availability", "latency", "ratio", "threshold"]
    objective: Percent
    window: Window = 30 * 86400.0
    timezone: Annotated[str, BeforeValidator(str)] = "UTC"
    budgeting: Literal["occurrences", "timeslices", "ratio_timeslices"] = "occurrences"
    timeslice: Duration = 60.0
    timeslice_target: Percent = 0.95
    threshold: Threshold | None = None
    stream: str | None = None
    value: str | None = None
    comparison: Literal["<=", ">="] = "<="
    region: str | None = None
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    alerts: SloAlerts = Field(default_factory=SloAlerts)
    public: bool = False

    _timezone_known = field_validator("timezone")(_check_timezone)

    @model_validator(mode="after")
    def _fields_match_sli(self) -> SloConfig:
        needs = {"latency": ("threshold",), "ratio": ("stream",),
                 "threshold": ("threshold", "value"), "availability": ()}[self.sli]
        for key in needs:
            if getattr(self, key) is None:
                example = {"threshold": "threshold: 200ms", "stream": "stream: cache",
                           "value": "value: query_seconds"}[key]
                raise ValueError(f"a {self.sli} SLO needs `{key}` (e.g. {example})")
        for key in ("threshold", "stream", "value"):
            if key not in needs and getattr(self, key) is not None:
                raise ValueError(f"`{key}` does not apply to sli: {self.sli}")
        if isinstance(self.window, float) and (self.window < 3600 or self.window % 60):
            raise ValueError("`window` must be whole minutes and at least 1h")
        slice_seconds = int(self.timeslice)
        if slice_seconds < 60 or slice_seconds % 60 or 86400 % slice_seconds:
            raise ValueError("`timeslice` must be whole minutes that divide a day "
                             "(1m, 5m, 10m, 15m, 30m, 1h ...)")
        return self

    @property
    def calendar(self) -> bool:
        return isinstance(self.window, str)


class Maintenance(StrictModel):
    """A planned window: results inside are kept but excluded from SLIs and budgets,
    and alerts are suppressed. Empty `targets` and `slos` mean everything."""

    name: Name
    start: datetime
    end: datetime
    targets: list[Name] = Field(default_factory=list)
    slos: list[Name] = Field(default_factory=list)
    comment: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Maintenance:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("`start` and `end` need a time zone, e.g. 2026-12-01T02:00:00Z")
        if self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        return self


class Phase(StrictModel):
    """A scaling phase of the strategy and the SLOs that are its targets."""

    name: Name
    title: str = ""
    description: str = ""
    slos: list[Name] = Field(min_length=1)


class TriggerRule(StrictModel):
    """A decision trigger: a statistic of one measurement over a window vs a threshold."""

    name: Name
    description: str = ""
    phase: Name | None = None
    target: Name
    measure: str = "latency"
    stat: Literal["p50", "p95", "p99", "max", "min", "mean", "last", "sum", "count",
                  "rate"] = "p95"
    above: Threshold | None = None
    below: Threshold | None = None
    window: Duration = 3600.0
    min_samples: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_bound(self) -> TriggerRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below`")
        return self
