"""The time range picker: `?range=1h|24h|7d|30d|month` → a span ending now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
CHOICES = (*RANGES, "month")


@dataclass(frozen=True, slots=True)
class TimeRange:
    key: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def resolution(self) -> int:
        """Rollup resolution giving 60..750 points: minutes up to 12 h, then hours."""
        return 60 if self.seconds <= 12 * 3600 else 3600


def parse_range(value: str | None, now: float, default: str = "24h") -> TimeRange:
    """An unknown value falls back to the default (links from old bookmarks still work)."""
    key = value if value in CHOICES else default
    end = now // 60 * 60 + 60
    if key == "month":
        moment = datetime.fromtimestamp(now, UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp()
        return TimeRange(key, start, end)
    return TimeRange(key, end - RANGES[key], end)
