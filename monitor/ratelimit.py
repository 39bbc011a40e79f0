"""Per-client limits: a token bucket on API requests, and a lockout after failed logins.

Both key on `client_address`: the peer's address, or the one X-Forwarded-For names when
(and only when) the peer is one of `server.trusted_proxies`. Anyone can send that header,
so trusting it from every peer (or from loopback, where a local proxy *or* any local
process connects from) would let a client pick its own key: dodge the limits, lock out
someone else's address, forge the audit log's client. Both keep a bounded number of
clients in memory so a flood of addresses cannot grow them without end, and take a
clock so tests move time by hand. The clock should be monotonic: a wall-clock step must
not lock clients out or let them in.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.clock import Clock
from monitor.error_response import error_response

MAX_CLIENTS = 10_000
"""Clients remembered per limiter; the least recently seen is forgotten first."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_ADDRESS = 100  # a forwarded "address" longer than this is not one; keys stay small


def client_address(scope: Scope) -> str:
    """The client's address: the peer's (or "unknown", e.g. a Unix socket), unless the
    peer is a trusted proxy, then the rightmost X-Forwarded-For entry that is not one
    (the leftmost when all are), as uvicorn's ProxyHeadersMiddleware picks it, so the
    result is the same whether or not uvicorn applied the rule first. The trusted
    proxies are the app's `server.trusted_proxies`, found through `scope["app"]`."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    trusted = _trusted_networks(scope)
    if not trusted or not is_trusted(peer, trusted):
        return peer
    forwarded: list[str] = [
        item.strip() for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for" for item in value.decode("latin-1").split(",")
        if item.strip()]
    if not forwarded:
        return peer
    for hop in reversed(forwarded):
        if not is_trusted(hop, trusted):
            return hop[:_MAX_ADDRESS]
    return forwarded[0][:_MAX_ADDRESS]


def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """IPs and CIDRs as networks (an IP is a /32 or /128); ValueError for anything else."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether `address` is an IP inside one of `networks` (not an IP: never)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(entries)


def _trusted_networks(scope: Scope) -> tuple[Network, ...]:
    app: Any = scope.get("app")
    try:
        entries = app.state.runtime.settings.server.trusted_proxies
    except AttributeError:  # not our app (a bare test app): no proxy is trusted
        return ()
    return _networks(tuple(entries)) if entries else ()


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
    authenticating for `window` seconds; attempts while locked out do not count, and a
    correct token does not lift the lockout early.

    The lockout is keyed on the address *and* the credential: a token that has already
    authenticated from this address (`record_success`) is never refused by it, so one
    attacker sharing an address (a NAT, a proxy not in `trusted_proxies`) cannot lock
    out the Alertmanager or the on-call's CLI. A valid token new to a locked address is
    refused like a wrong one: otherwise a locked-out guesser would still learn which
    guess is right (429 against 200), and the lockout would slow no guessing at all."""

    def __init__(self, max_failures: int, window: float, clock: Clock, *,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.max_failures, self.window, self._clock = max_failures, window, clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def record_success(self, client: str, credential: str) -> None:
        """Remember that `credential` (a token's name) authenticated from `client`."""
        with self._lock:
            self._known.pop((client, credential), None)
            self._known[(client, credential)] = None  # most recently seen last
            while len(self._known) > self._max_clients:
                self._known.popitem(last=False)

    def known(self, client: str, credential: str) -> bool:
        """Whether `credential` has authenticated from `client` (within memory's bound)."""
        with self._lock:
            return (client, credential) in self._known

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
