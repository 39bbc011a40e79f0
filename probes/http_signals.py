"""What an HTTP response says beyond its status: CDN cache status and cold starts.

Both become event streams (`counts`) that ratio SLOs and triggers use: "cache hit rate
> 70%" at the edge, and "zero cold starts" for a backend that sleeps when idle.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class ColdStartVerdict:
    """One probe judged: `cold`, and in `reason` why it is, or why a slow answer is not
    (kept in the result's details, so a count can be explained afterwards)."""

    cold: bool
    reason: str | None = None


class ColdStartDetector:
    """Flags a probe as a cold start: after the target sat idle (`idle_after` since this
    probe's previous request), it answered slower than `min_latency`, or `factor` × the
    median of recent warm latencies once `min_samples` of them are known.

    Three guards keep a busy machine or a noisy target from counting as cold starts,
    which page through a 99.9 % "no cold starts" SLO:

    * `min_cold_latency`: an answer faster than this floor is never cold, whatever the
      ratio. A 300 ms spike against a 15 ms median is noise; cold starts of the
      platforms this watches (Render, Lambda, Cloud Run) take seconds.
    * `min_samples`: a median of two or three probes is no baseline; until there are
      enough, only the absolute `min_latency` can call a probe cold.
    * `prober_lag`: the time our own event loop ran late while the request was in
      flight (probes/loop_lag.py) is taken off the latency before judging, so a probe
      slowed by its prober is not the target's cold start.

    "Idle" is measured between this probe's own requests: a target probed more often
    than its platform's sleep delay is kept awake by the probe itself. Either set the
    interval beyond that delay with `idle_after` just under it, or `idle_after: 0` to
    judge every probe (cold starts then seen are restarts: deploys, crashes, recycling).
    """

    def __init__(self, *, idle_after: float, factor: float, min_latency: float | None,
                 history: int, min_cold_latency: float = 0.0, min_samples: int = 5) -> None:
        """Times in seconds. No floor unless given: the quiet defaults users get are
        ColdStartOptions' (probes/http.py), which builds every detector of the service."""
        self.idle_after = idle_after
        self.factor = factor
        self.min_latency = min_latency
        self.min_cold_latency = min_cold_latency
        self.min_samples = min_samples
        self._recent: deque[float] = deque(maxlen=history)
        self._last_request: float | None = None

    def observe(self, started_at: float, latency: float, ok: bool) -> bool:
        """Record one probe; True when it was a cold start."""
        return self.judge(started_at, latency, ok).cold

    def judge(self, started_at: float, latency: float, answered: bool,
              prober_lag: float = 0.0) -> ColdStartVerdict:
        """Record one probe (times in seconds) and judge it.

        `answered`: the target gave its answer (a failure that is not one, such as a
        refused connection or a wrong body, is never a cold start and teaches nothing
        about warm latency). `prober_lag`: the part of `latency` our side caused.
        """
        gap = None if self._last_request is None else started_at - self._last_request
        self._last_request = started_at
        if not answered:
            return ColdStartVerdict(False)
        idle = gap is None or gap >= self.idle_after
        lag = max(0.0, prober_lag)
        own = max(0.0, latency - lag)  # what the target itself can have taken
        slow = self._slow(own)
        verdict = ColdStartVerdict(False)
        if slow is not None and gap is not None and not idle:
            verdict = ColdStartVerdict(False, f"not idle: {_seconds(gap)} since the last "
                                              f"probe, idle_after {_seconds(self.idle_after)}")
        elif slow is not None:
            after = "first probe" if gap is None else f"after {_seconds(gap)} idle"
            return ColdStartVerdict(True, f"{slow}, {after}")
        elif idle and self._slow(latency) is not None:
            verdict = ColdStartVerdict(False, f"prober late {_ms(lag)}")
        elif idle and own >= self.min_cold_latency and len(self._recent) < self.min_samples:
            verdict = ColdStartVerdict(
                False, f"{_ms(own)} but only {len(self._recent)} warm probes, "
                       f"{self.min_samples} needed to compare with their median")
        self._recent.append(own)
        return verdict

    def _slow(self, latency: float) -> str | None:
        """Why `latency` is slow enough to be a cold start; None when it is not."""
        if latency < self.min_cold_latency:
            return None
        if self.min_latency is not None and latency >= self.min_latency:
            return f"{_ms(latency)} over min_latency {_ms(self.min_latency)}"
        if len(self._recent) < self.min_samples:
            return None
        median = statistics.median(self._recent)
        if latency > self.factor * median:
            return f"{_ms(latency)} over {self.factor:g} x the warm median {_ms(median)}"
        return None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
