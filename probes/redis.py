"""The `redis` probe kind: PING round trip plus the cache hit ratio from `INFO`.

Redis counts `keyspace_hits` and `keyspace_misses` from its start, server-wide. A hit
*rate* needs deltas, so the probe keeps the previous reading and emits the lookups seen
between two runs as the count stream `cache` = (hits, hits + misses), for a `ratio` SLO
such as "cache hit rate > 70%". Counters that go backwards (a restart, `CONFIG
RESETSTAT`) or a different `run_id` (failover to another server) are a reset, handled as
Prometheus does: the deltas are the current values, never negative.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import time
from contextlib import suppress
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    InvalidResponse,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from probes.base import ErrorClass, ProbeContext, ProbeKind, ProbeResult, Signals, TargetConfig
from probes.http_fetch import classify_transport_error
from probes.urls import redact_url

log = logging.getLogger(__name__)

CACHE_STREAM = "cache"
"""Count stream name: (hits, lookups) between two runs; a `ratio` SLO's `stream`."""

_AUTH_REPLIES = ("NOAUTH", "WRONGPASS", "NOPERM")
_ERRNO = re.compile(r"\bError (-?\d+) connecting to\b")
_EAI_CODES = frozenset(getattr(socket, name) for name in (
    "EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name))


class RedisTarget(TargetConfig):
    """A Redis (or Valkey) server; `url` is redis://[user:password@]host[:port][/db]."""

    type: Literal["redis"] = "redis"
    url: str = Field(repr=False)  # may hold a password; display_url() is the safe view

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"invalid URL {redact_url(value)!r}: expected "
                             "redis://[user:password@]host[:port][/db] or rediss://...")
        return value

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        return Signals(streams=frozenset({CACHE_STREAM}), values=frozenset({
            "ping_seconds", "connected_clients", "used_memory_bytes", "hit_ratio_total"}))


class _Reading:
    """One INFO snapshot of the lifetime counters, kept to compute the next deltas."""

    __slots__ = ("hits", "misses", "run_id")

    def __init__(self, run_id: str, hits: int, misses: int) -> None:
        self.run_id, self.hits, self.misses = run_id, hits, misses


class RedisProbe:
    """Runs one RedisTarget over its own small connection pool, created on first use."""

    def __init__(self, config: RedisTarget, *, region: str) -> None:
        self.config = config
        self.region = region
        self._client: Redis | None = None
        self._previous: _Reading | None = None
        self._password = urlsplit(config.url).password

    def _get_client(self) -> Redis:
        if self._client is None:
            # No retries: a retry would hide the failure we are here to see and could
            # double the time spent; the next interval is the retry. RESP2 works on every
            # server version, and with it the pool replaces a connection the server closed
            # while idle (a restart) instead of failing the next command on it.
            self._client = Redis.from_url(
                self.config.url, socket_timeout=self.config.timeout,
                socket_connect_timeout=self.config.timeout, max_connections=2,
                retry=Retry(NoBackoff(), 0), protocol=2,
            )
        return self._client

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self._measure(started_at, t0)
        except (TimeoutError, RedisTimeoutError):
            await self._reset()
            return self._fail(started_at, t0, ErrorClass.TIMEOUT,
                              f"no complete reply within {self.config.timeout:g}s")
        except RedisError as exc:
            await self._reset()
            return self._fail(started_at, t0, *classify_redis_error(exc))
        except Exception as exc:  # boundary: a probe never raises into the scheduler
            await self._reset()
            log.exception("redis probe %s failed unexpectedly", self.config.name)
            return self._fail(started_at, t0, ErrorClass.INTERNAL,
                              f"internal error: {type(exc).__name__}")

    async def _measure(self, started_at: float, t0: float) -> ProbeResult:
        client = self._get_client()
        # Connect (or notice a connection the server dropped) outside the PING timing,
        # so `ping_seconds` is one round trip; `latency` includes the connect.
        pool = client.connection_pool
        await pool.release(await pool.get_connection())  # type: ignore[no-untyped-call]
        t_ping = time.perf_counter()
        await client.ping()
        ping_seconds = time.perf_counter() - t_ping
        latency = time.perf_counter() - t0
        # Plain INFO (default sections) works on every Redis and Valkey version; it is a
        # few kilobytes, so asking for stats/server/clients/memory separately saves nothing.
        info: dict[str, Any] = await client.info()
        result = ProbeResult(target=self.config.name, started_at=started_at, ok=True,
                             latency=latency, region=self.region)
        result.values["ping_seconds"] = ping_seconds
        for key, name in (("connected_clients", "connected_clients"),
                          ("used_memory", "used_memory_bytes")):
            number = _number(info.get(key))
            if number is not None:
                result.values[name] = number
        if "redis_version" in info:
            result.details["redis_version"] = str(info["redis_version"])
        self._count_lookups(info, result)
        return result

    def _count_lookups(self, info: dict[str, Any], result: ProbeResult) -> None:
        """Fill the `cache` stream from the counter deltas since the previous reading."""
        hits, misses = _number(info.get("keyspace_hits")), _number(info.get("keyspace_misses"))
        if hits is None or misses is None:
            result.details["cache"] = "INFO has no keyspace_hits/keyspace_misses"
            return
        current = _Reading(str(info.get("run_id", "")), int(hits), int(misses))
        if current.hits + current.misses > 0:
            result.values["hit_ratio_total"] = current.hits / (current.hits + current.misses)
        previous, self._previous = self._previous, current
        if previous is None:
            result.details["baseline"] = "first reading"
            return
        if (current.run_id != previous.run_id or current.hits < previous.hits
                or current.misses < previous.misses):
            # Counters restarted (or this is another server): what they hold now is
            # everything since the reset; lookups between our last reading and the
            # reset are lost, which undercounts rather than inventing data.
            result.details["counter_reset"] = "true"
            hit_delta, miss_delta = current.hits, current.misses
        else:
            hit_delta = current.hits - previous.hits
            miss_delta = current.misses - previous.misses
        if hit_delta + miss_delta > 0:  # no lookups is no data, not a perfect ratio
            result.counts[CACHE_STREAM] = (float(hit_delta), float(hit_delta + miss_delta))

    async def _reset(self) -> None:
        """Drop the client after any failure so the next run starts on a fresh connection."""
        client, self._client = self._client, None
        if client is not None:
            with suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()

    def _fail(self, started_at: float, t0: float, error_class: str, message: str) -> ProbeResult:
        if self._password:
            message = message.replace(self._password, "***")
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region,
            error_class=error_class, error=message[:300],
        )

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._reset()


def classify_redis_error(exc: RedisError) -> tuple[str, str]:
    """Map a redis-py error to an error class and a short message."""
    text = str(exc)
    if isinstance(exc, AuthenticationError | AuthorizationError) \
            or (isinstance(exc, ResponseError) and text.startswith(_AUTH_REPLIES)):
        return ErrorClass.AUTH, f"authentication failed: {_short(text)}"
    if isinstance(exc, BusyLoadingError):
        return ErrorClass.UNAVAILABLE, f"server not ready: {_short(text)}"
    if isinstance(exc, InvalidResponse):
        return ErrorClass.PROTOCOL, f"invalid reply: {_short(text)}"
    if isinstance(exc, ResponseError):
        return ErrorClass.QUERY, f"command failed: {_short(text)}"
    if isinstance(exc, RedisConnectionError):
        if "closed by server" in text.lower():
            # The server hung up while we waited for a reply: not a Redis speaking RESP.
            return ErrorClass.PROTOCOL, "connection closed mid-reply"
        error_class, message = classify_transport_error(exc)
        if error_class == ErrorClass.CONNECTION:
            error_class, message = _classify_by_errno(text, error_class, message)
        return error_class, message
    return ErrorClass.CONNECTION, f"{type(exc).__name__}: {_short(text)}"


def _classify_by_errno(text: str, error_class: str, message: str) -> tuple[str, str]:
    """redis-py sometimes drops the OSError from the chain, keeping only "Error N connecting"."""
    match = _ERRNO.search(text)
    if match is None:
        return error_class, message
    code = int(match.group(1))
    if code == errno.ECONNREFUSED:
        return ErrorClass.REFUSED, "connection refused"
    if code in _EAI_CODES:
        return ErrorClass.DNS, f"DNS lookup failed: {_short(text)}"
    return error_class, message


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    with suppress(ValueError):
        return float(value)
    return None


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def _build(config: RedisTarget, ctx: ProbeContext) -> RedisProbe:
    return RedisProbe(config, region=ctx.region)


KIND = ProbeKind(RedisTarget, _build, counters=True)
