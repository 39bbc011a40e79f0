"""Per-client limits: a token bucket on API requests, and a lockout after failed logins.

Both key on the client address the server saw (uvicorn puts a trusted proxy's
X-Forwarded-For there), keep a bounded number of clients in memory so a flood of
addresses cannot grow them without end, and take a clock so tests move time by hand.
The clock should be monotonic: a wall-clock step must not lock clients out or let them in.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.clock import Clock
from monitor.error_response import error_response

MAX_CLIENTS = 10_000
"""Clients remembered per limiter; the least recently seen is forgotten first."""


def client_address(scope: Scope) -> str:
    """The peer's address, or "unknown" (e.g. a Unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def retry_after_seconds(wait: float) -> int:
    """A wait as Retry-After states it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


def too_many(message: str, retry_after: float) -> JSONResponse:
    """The API's JSON error shape with a whole-second Retry-After."""
    seconds = retry_after_seconds(retry_after)
    return error_response(429, message, headers={"Retry-After": str(seconds)},
                          retry_after=seconds)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """`rate` requests per second per client, with bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Clock, *,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, client: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self._clock.now()
        with self._lock:
            bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
            self._buckets[client] = bucket  # most recently seen last
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


class FailedAuthLimiter:
    """`max_failures` wrong credentials within `window` seconds lock the client out of
    authenticating for `window` seconds; attempts while locked out are not evaluated
    (and so do not count), and a correct token does not lift the lockout early."""

    def __init__(self, max_failures: int, window: float, clock: Clock, *,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.max_failures, self.window, self._clock = max_failures, window, clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None when it may try now."""
        if self.max_failures <= 0:
            return None
        now = self._clock.now()
        with self._lock:
            until = self._locked_until.get(client)
            if until is None:
                return None
            if now >= until:
                del self._locked_until[client]
                return None
            return until - now

    def record_failure(self, client: str) -> None:
        """Count one wrong credential; the one that reaches the limit starts the lockout."""
        if self.max_failures <= 0:
            return
        now = self._clock.now()
        with self._lock:
            times = self._failures.pop(client, None) or deque()
            self._failures[client] = times
            while times and times[0] <= now - self.window:
                times.popleft()
            times.append(now)
            if len(times) >= self.max_failures:
                self._locked_until[client] = now + self.window
                del self._failures[client]
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
            if len(self._locked_until) > self._max_clients:
                self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}


class RateLimitMiddleware:
    """ASGI middleware: requests under `prefixes` beyond a client's bucket get 429.

    Health checks and /metrics are outside the prefixes on purpose: an orchestrator or
    Prometheus polling hard must never see the service as failing.
    """

    def __init__(self, app: ASGIApp, bucket: TokenBucket,
                 prefixes: tuple[str, ...] = ("/api/",)) -> None:
        self.app, self.bucket, self.prefixes = app, bucket, prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.bucket.enabled \
                and str(scope.get("path", "")).startswith(self.prefixes):
            wait = self.bucket.acquire(client_address(scope))
            if wait > 0:
                response = too_many("too many requests from this address; slow down",
                                    wait)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
