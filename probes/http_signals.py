"""What an HTTP response says beyond its status: CDN cache status and cold starts.

Both become event streams (`counts`) that ratio SLOs and triggers use: "cache hit rate
> 70%" at the edge, and "zero cold starts" for a backend that sleeps when idle.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping

CDN_HEADERS = ("cf-cache-status", "x-vercel-cache", "x-cache", "x-cache-status", "age")
_HIT_WORDS = ("hit", "stale", "revalidated", "updating")
_MISS_WORDS = ("miss", "expired", "bypass", "dynamic", "prerender", "refresh", "none")


def cdn_cache_status(headers: Mapping[str, str]) -> tuple[str, bool] | None:
    """(raw header text, hit?) from the first CDN cache header present, else None.

    `Age` alone (no vendor header) means a cache served it when it is above zero.
    """
    for name in CDN_HEADERS[:-1]:
        value = headers.get(name)
        if value:
            lowered = value.lower()
            if any(word in lowered for word in _HIT_WORDS):
                return f"{name}: {value}", True
            if any(word in lowered for word in _MISS_WORDS):
                return f"{name}: {value}", False
    age = headers.get("age", "").strip()
    if age.isdigit():
        return f"age: {age}", int(age) > 0
    return None


class ColdStartDetector:
    """Flags a probe as a cold start: after the target sat idle, it answered much slower
    than usual (`factor` × the median of recent warm latencies) or slower than an
    absolute `min_latency`.

    "Idle" is measured between this probe's own requests, so set the target's interval
    at or beyond the platform's sleep delay (Render's free tier: 15 minutes) or leave
    `idle_after` at 0 to judge every probe.
    """

    def __init__(self, *, idle_after: float, factor: float, min_latency: float | None,
                 history: int) -> None:
        self.idle_after = idle_after
        self.factor = factor
        self.min_latency = min_latency
        self._recent: deque[float] = deque(maxlen=history)
        self._last_request: float | None = None

    def observe(self, started_at: float, latency: float, ok: bool) -> bool:
        """Record one probe; True when it was a cold start."""
        idle = (self._last_request is None
                or started_at - self._last_request >= self.idle_after)
        self._last_request = started_at
        if not ok:
            return False
        cold = idle and (self._over_absolute(latency) or self._over_usual(latency))
        if not cold:
            self._recent.append(latency)
        return cold

    def _over_absolute(self, latency: float) -> bool:
        return self.min_latency is not None and latency >= self.min_latency

    def _over_usual(self, latency: float) -> bool:
        if len(self._recent) < 3:
            return False
        return latency > self.factor * statistics.median(self._recent)
