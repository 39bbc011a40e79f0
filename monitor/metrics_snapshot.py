"""/metrics served from a shared snapshot, rendered in a worker thread (STYLE rule 13).

Why: `generate_latest` walks every series in pure Python: 4.3 MB and ~0.5 s at 2,000
targets. Rendered on the event loop, two parallel scrapers stalled the probes until 96%
of them timed out (false `down` incidents), and 50 parallel scrapes held 50 renderings
in memory (RSS 218 → 505 MB); `/metrics` is unauthenticated and exempt from rate limits,
so anyone could do that. Here every scraper gets the same cached bytes; a new rendering
starts only when the cached one is stale, runs in a worker thread, and the scrapers that
arrive meanwhile await that one rendering instead of starting their own.

A snapshot is stale after an evaluation tick published new SLO gauges (`invalidate`),
or once `max_age` seconds (or twice the last render's duration, whichever is longer)
have passed since it was rendered, so counters that move between ticks (probes run,
results written) lag by at most that much; rendering can never take more than a third
of the process's CPU, however many scrapers there are.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["CONTENT_TYPE", "DEFAULT_MAX_AGE", "Exposition"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEFAULT_MAX_AGE = 1.0  # seconds; Prometheus scrapes every 15-60 s, so this is invisible


class Exposition:
    """The Prometheus text exposition of one registry: one cached rendering at a time,
    rendered off the event loop and shared by every concurrent scraper."""

    def __init__(self, registry: CollectorRegistry, *, max_age: float = DEFAULT_MAX_AGE,
                 monotonic: Callable[[], float] = time.monotonic,
                 render: Callable[[CollectorRegistry], bytes] = generate_latest) -> None:
        self._registry = registry
        self._max_age = max_age
        self._monotonic = monotonic
        self._render = render
        self._body: bytes | None = None
        self._rendered_at = -math.inf  # when the cached body's rendering finished
        self._render_seconds = 0.0  # how long that rendering took
        self._generation = 0  # bumped by `invalidate`
        self._body_generation = -1  # the generation the cached body was rendered in
        self._pending: asyncio.Future[bytes] | None = None
        self.renders = 0
        """Renderings done so far (tests and the benchmark check that N scrapers share)."""

    def invalidate(self) -> None:
        """New gauges were published (an evaluation tick): the next scrape renders anew.
        Call on the event loop."""
        self._generation += 1

    def _fresh(self) -> bool:
        if self._body is None or self._body_generation != self._generation:
            return False
        lifetime = max(self._max_age, 2 * self._render_seconds)
        return self._monotonic() - self._rendered_at < lifetime

    async def get(self) -> bytes:
        """The current exposition: the cached bytes while fresh, else the result of the
        one rendering in progress (started now if there is none)."""
        if self._fresh():
            assert self._body is not None
            return self._body
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        # A scraper that hangs up cancels its own wait, never the shared rendering.
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> bytes:
        generation = self._generation
        try:
            started = self._monotonic()
            body = await asyncio.to_thread(self._render, self._registry)
            finished = self._monotonic()
            self._body, self._body_generation = body, generation
            self._rendered_at, self._render_seconds = finished, finished - started
            self.renders += 1
            return body
        finally:
            self._pending = None
