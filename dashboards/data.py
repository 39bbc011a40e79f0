"""Reads shared by the pages: current SLO statuses, budget burn-down series, open
incidents. Cheap by construction: statuses come from the last evaluation tick, series
from day/hour rollups, and both are cached for a few seconds per process."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from alerts.store import Incident, list_incidents
from monitor.config_slo import SloConfig
from monitor.runtime import Runtime
from monitor.storage import rollups
from slo.allowance import budget_left
from slo.status import SloStatus

T = TypeVar("T")
DAY = 86400


class TtlCache:
    """A tiny per-process cache: dashboards are read far more often than data changes
    (the evaluator ticks every 30 s)."""

    def __init__(self, seconds: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._monotonic = monotonic
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._made: dict[Any, tuple[float, Any]] = {}
        self._refreshing: set[Any] = set()
        self._lock = threading.Lock()

    def get_stale(self, key: Any, make: Callable[[], T], *, fresh_for: float = 10.0,
                  keep_for: float = 600.0) -> T:
        """Stale-while-revalidate: a value younger than `fresh_for` is served as is; an
        older one (up to `keep_for`) is served at once while ONE background thread
        makes the next. Only the very first request of a key waits for `make`: heavy
        pages (every target's chart) then answer in milliseconds, never in seconds at
        each expiry."""
        now = self._monotonic()
        with self._lock:
            found = self._made.get(key)
            age = math.inf if found is None else now - found[0]
            refresh = fresh_for <= age < keep_for and key not in self._refreshing
            if refresh:
                self._refreshing.add(key)
        if refresh:
            threading.Thread(target=self._remake, args=(key, make), daemon=True,
                             name="dashboard-refresh").start()
        if found is not None and age < keep_for:
            return found[1]  # type: ignore[no-any-return]  # fresh, or stale but usable
        value = make()
        with self._lock:
            self._made[key] = (self._monotonic(), value)
        return value

    def _remake(self, key: Any, make: Callable[[], Any]) -> None:
        try:
            value = make()
            with self._lock:
                self._made[key] = (self._monotonic(), value)
        except Exception:  # boundary: the stale value stays; the next request retries
            logging.getLogger(__name__).exception("dashboard refresh of %r failed", key)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def get(self, key: Any, make: Callable[[], T]) -> T:
        now = self._monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]  # type: ignore[no-any-return]
        value = make()
        self._entries[key] = (now + self._seconds, value)
        if len(self._entries) > 1000:
            self._entries.clear()
        return value


def cache_of(runtime: Runtime) -> TtlCache:
    cache = getattr(runtime, "_dashboard_cache", None)
    if cache is None:
        cache = TtlCache()
        runtime._dashboard_cache = cache  # type: ignore[attr-defined]
    return cache


async def statuses(runtime: Runtime) -> list[SloStatus]:
    """The last tick's statuses (instant); evaluated now only before the first tick."""
    if runtime.statuses:
        return list(runtime.statuses.values())
    return await asyncio.to_thread(
        cache_of(runtime).get, "statuses", runtime.service.slo_statuses)


def budget_burndown(runtime: Runtime, slos: Sequence[SloConfig],
                    current: Sequence[SloStatus]) -> dict[str, list[tuple[float, float | None]]]:
    """Budget remaining at the end of each day of each SLO's window (day rollups summed
    from the window start): the burn-down the overview sparklines and SLO pages draw."""
    by_name = {s.name: s for s in current}
    wanted = [slo for slo in slos if slo.name in by_name]
    if not wanted:
        return {}
    first = min(by_name[s.name].window_start for s in wanted) // DAY * DAY
    now = runtime.service.clock.now()
    series = rollups.series(runtime.service.engine, [s.name for s in wanted], rollups.DAY,
                            first, int(now // DAY * DAY + DAY))
    out: dict[str, list[tuple[float, float | None]]] = {}
    for slo in wanted:
        status = by_name[slo.name]
        good = total = 0
        points: list[tuple[float, float | None]] = []
        for bucket, day_good, day_total in series.get(slo.name, []):
            if bucket < status.window_start // DAY * DAY:
                continue
            good += day_good
            total += day_total
            points.append((float(bucket + DAY), budget_left(
                good, total, slo.objective, status.expected_events or total)))
        out[slo.name] = points
    return out


def open_incidents(runtime: Runtime) -> list[Incident]:
    engine = runtime.service.engine
    triggered, _ = list_incidents(engine, status="triggered", limit=100)
    acknowledged, _ = list_incidents(engine, status="acknowledged", limit=100)
    return sorted(triggered + acknowledged, key=lambda i: (i.severity != "page", -i.opened_at))
