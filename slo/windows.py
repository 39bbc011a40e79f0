"""SLO windows: rolling (the last N seconds) and calendar (this quarter, month or week, in
a zone).

Pure date arithmetic over epoch seconds. Every bound is a whole minute because the
finest stored rollup is a minute; calendar bounds are local midnights converted to UTC
with ``zoneinfo``, so they follow DST changes and 30/45-minute offsets (Asia/Kolkata,
Australia/Lord_Howe) instead of assuming days of 86400 s or hour-aligned starts.

``split_by_resolution`` then covers a window with the fewest stored buckets: whole UTC
days in the middle, hours next to them and minutes only at the ragged edges, so a 30-day
window reads under 200 rows instead of 43,200.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

__all__ = [
    "CALENDAR_UNITS",
    "MINUTE",
    "RESOLUTIONS",
    "CalendarUnit",
    "WindowSpec",
    "period_bounds",
    "period_seconds",
    "split_by_resolution",
    "window_bounds",
]

MINUTE = 60
RESOLUTIONS: tuple[int, ...] = (86400, 3600, 60)
"""Stored rollup resolutions (day, hour, minute), coarsest first."""

CalendarUnit = Literal["quarter", "month", "week"]
CALENDAR_UNITS: tuple[CalendarUnit, ...] = ("quarter", "month", "week")
"""Every calendar unit, longest first."""

_CALENDAR_UNITS: dict[str, CalendarUnit] = {
    "quarter": "quarter",
    "calendar_quarter": "quarter",
    "month": "month",
    "calendar_month": "month",
    "week": "week",
    "calendar_week": "week",
}
_QUARTER_MONTHS = 3
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def _zone(name: str) -> zoneinfo.ZoneInfo:
    """Load an IANA zone, turning zoneinfo's KeyError/ValueError into one clear ValueError."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


def _rolling_seconds(window: str | float) -> int:
    """Parse a rolling length (seconds, or ``30d``-style text) into whole minutes."""
    if isinstance(window, bool):  # bool is an int: reject rather than read True as 1 s
        raise ValueError(f"invalid SLO window {window!r}")
    if isinstance(window, str):
        match = _DURATION.match(window.lower())
        if match is None:
            raise ValueError(
                f"invalid SLO window {window!r}: expected month, quarter, week or a "
                "duration (30d)"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        seconds = float(window)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"an SLO window must be a positive duration, got {window!r}")
    if seconds % MINUTE:
        # Rollups are per minute: a window of 3601 s cannot be read exactly.
        raise ValueError(f"a rolling SLO window must be whole minutes, got {seconds:g} s")
    return int(seconds)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How far back an SLO looks: a rolling length, or the current calendar
    quarter, month or week."""

    kind: Literal["rolling", "calendar"]
    seconds: int = 0
    unit: CalendarUnit | None = None
    timezone: str = "UTC"
    week_start: int = 0

    def __post_init__(self) -> None:
        _zone(self.timezone)  # fail at config load, not at the first evaluation
        if self.kind == "rolling":
            if self.seconds <= 0 or self.seconds % MINUTE or self.unit is not None:
                raise ValueError(
                    "a rolling window needs seconds > 0 in whole minutes and no unit, "
                    f"got seconds={self.seconds!r}, unit={self.unit!r}"
                )
        elif self.kind == "calendar":
            if self.unit not in CALENDAR_UNITS:
                raise ValueError("a calendar window needs unit quarter, month or week, "
                                 f"got {self.unit!r}")
        else:
            raise ValueError(f"window kind must be rolling or calendar, got {self.kind!r}")
        if self.week_start not in range(7):
            raise ValueError(
                f"week_start must be 0 (Monday) .. 6 (Sunday), got {self.week_start!r}"
            )

    @classmethod
    def parse(cls, window: str | float, timezone: str = "UTC", *,
              week_start: int = 0) -> WindowSpec:
        """Read a config value: ``quarter``/``month``/``week`` (calendar, also spelled
        ``calendar_quarter`` ...) or a duration (rolling)."""
        if isinstance(window, str) and window.strip().lower() in _CALENDAR_UNITS:
            unit = _CALENDAR_UNITS[window.strip().lower()]
            return cls("calendar", unit=unit, timezone=timezone, week_start=week_start)
        return cls("rolling", seconds=_rolling_seconds(window), timezone=timezone,
                   week_start=week_start)


def _local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> float:
    """Epoch seconds of the first instant of ``day`` in ``zone``.

    ``fold=0`` reads a skipped midnight (DST starting at 00:00) with the offset before
    the change, which lands exactly on the transition: still the day's first instant.
    """
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def _months_later(first: date, months: int) -> date:
    """The 1st of the month ``months`` after ``first`` (itself a 1st), across year ends."""
    index = first.month - 1 + months
    return first.replace(year=first.year + index // 12, month=index % 12 + 1)


def _calendar_days(spec: WindowSpec, today: date) -> tuple[date, date]:
    """First day of the quarter, month or week holding ``today``, and of the next one.

    Quarters are fixed to the calendar year (Jan, Apr, Jul, Oct), not to a fiscal year.
    """
    if spec.unit == "week":
        first = today - timedelta(days=(today.weekday() - spec.week_start) % 7)
        return first, first + timedelta(days=7)
    months = _QUARTER_MONTHS if spec.unit == "quarter" else 1
    first = today.replace(month=today.month - (today.month - 1) % months, day=1)
    return first, _months_later(first, months)


def period_bounds(spec: WindowSpec, now: float) -> tuple[float, float]:
    """Return the whole period holding ``now``: ``[start, end)`` of the quarter, month or
    week, from local midnight to local midnight in the spec's zone.

    A rolling window's period is the ``seconds`` before the end of the current minute.
    """
    if spec.kind == "rolling":
        end = _minute_end(now)
        return float(end - spec.seconds), float(end)
    zone = _zone(spec.timezone)
    first, following = _calendar_days(spec, datetime.fromtimestamp(now, zone).date())
    return _local_midnight(first, zone), _local_midnight(following, zone)


def _minute_end(now: float) -> int:
    """End of the minute holding ``now``: the current minute's events count."""
    return (int(now // MINUTE) + 1) * MINUTE


def window_bounds(spec: WindowSpec, now: float) -> tuple[int, int]:
    """Return ``[start, end)`` to read now: both whole minutes, ``end`` closes this minute."""
    end = _minute_end(now)
    if spec.kind == "rolling":
        return end - spec.seconds, end
    start = math.floor(period_bounds(spec, now)[0])
    # Modern offsets are whole minutes; flooring only matters for pre-1970s LMT offsets
    # with seconds, where reading one extra partial minute beats missing one.
    return start - start % MINUTE, end


def period_seconds(spec: WindowSpec, now: float) -> int:
    """Return the SLO period length: what budgets and burn thresholds are scaled to.

    Rolling: the window length. Calendar: the whole current quarter, month or week in its
    zone, e.g. 31 days minus an hour for March in New York, 90 days minus an hour for the
    first quarter of 2026 in Berlin.
    """
    if spec.kind == "rolling":
        return spec.seconds
    start, end = period_bounds(spec, now)
    return round(end - start)


def split_by_resolution(
    start: int, end: int, resolutions: Sequence[int] = RESOLUTIONS
) -> list[tuple[int, int, int]]:
    """Cover ``[start, end)`` exactly with ``(resolution, first_start, end)`` ranges.

    Uses the coarsest UTC-aligned buckets that fit: the middle in whole days, then hours,
    minutes only at the edges. Ranges come back sorted by start and never overlap.
    """
    levels = list(resolutions)
    if not levels or any(r <= 0 for r in levels) or levels != sorted(set(levels), reverse=True):
        raise ValueError(f"resolutions must be positive and strictly decreasing, got {levels}")
    finest = levels[-1]
    if any(r % finest for r in levels):
        # Otherwise an edge left by a coarse level could not be covered by the finest one.
        raise ValueError(f"every resolution must be a multiple of the finest, got {levels}")
    if start % finest or end % finest:
        raise ValueError(f"bounds must be multiples of {finest} s, got [{start}, {end})")
    if start > end:
        raise ValueError(f"window start {start} is after its end {end}")
    return _split(start, end, levels)


def _split(start: int, end: int, levels: list[int]) -> list[tuple[int, int, int]]:
    """Take the aligned middle at the coarsest level, recurse on the two edges."""
    if start == end:
        return []
    resolution, finer = levels[0], levels[1:]
    first = -(-start // resolution) * resolution
    last = end // resolution * resolution
    if first >= last:
        return _split(start, end, finer)
    return [*_split(start, first, finer), (resolution, first, last), *_split(last, end, finer)]
