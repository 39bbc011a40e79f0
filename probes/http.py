"""The `http` probe kind: one request, checked against expectations, timed end to end.

Latency covers connect, TLS, request and the whole (capped) body, because that is what
a user waits for. The whole probe runs under one deadline (`timeout`), so a server that
drips bytes cannot hold a probe longer than configured.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, model_validator

from monitor.units import ByteSize, Duration
from probes.base import (
    PROBER_LAG,
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.http_client import HttpClientPool
from probes.http_fetch import Fetched, FetchFailed, FollowRedirects, fetch, guarded
from probes.http_signals import ColdStartDetector, cdn_cache_status
from probes.loop_lag import LoopLag
from probes.urls import HttpUrlStr, redact_url

log = logging.getLogger(__name__)

_MISSING = object()
_STILL_ANSWERED = frozenset({ErrorClass.SLOW, ErrorClass.CERT_EXPIRING})
_NOTABLE_LAG = 0.05  # seconds of prober lag worth keeping in a result's details


class HttpExpect(StrictModel):
    """What a good response looks like; every condition must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    status: list[int] | None = Field(default=None, description="accepted codes; default 2xx")
    body_contains: str | None = None
    json_fields: dict[str, Any] | None = Field(default=None, alias="json")
    max_latency: Duration | None = None
    cert_min_days: float | None = Field(default=None, ge=0)

    def status_ok(self, code: int) -> bool:
        return code in self.status if self.status else 200 <= code < 300


class TlsOptions(StrictModel):
    """TLS verification settings; `ca_file` trusts a private CA."""

    verify: bool = True
    ca_file: str | None = None


DEFAULT_MIN_COLD_LATENCY = 1.0
"""Seconds under which no answer is a cold start (unless `min_latency` is lower)."""


class ColdStartOptions(StrictModel):
    """How to tell a cold start from an ordinary slow answer (see ColdStartDetector).

    The defaults are the quiet ones: only a gap of 5 minutes counts as idle, a median of
    at least 5 warm probes, and nothing under a second. `idle_after: 0s` (judge every
    probe) stays allowed when written out: a target probed more often than its platform
    sleeps never sits idle, and the cold starts left to see are its restarts.
    """

    idle_after: Duration = Field(default=300.0, ge=0)
    factor: float = Field(default=3.0, gt=1.0)
    min_latency: Duration | None = None
    min_cold_latency: Duration | None = Field(
        default=None, ge=0,
        description=f"the floor; default {DEFAULT_MIN_COLD_LATENCY:g}s, or min_latency if lower")
    min_samples: int = Field(default=5, ge=1, le=1000)
    history: int = Field(default=20, ge=3, le=1000)

    @model_validator(mode="after")
    def _consistent(self) -> ColdStartOptions:
        if self.min_cold_latency is not None and self.min_latency is not None \
                and self.min_cold_latency > self.min_latency:
            raise ValueError(
                f"min_cold_latency {self.min_cold_latency:g}s is above min_latency "
                f"{self.min_latency:g}s: no answer between the two could ever be judged")
        if "min_samples" in self.model_fields_set and self.min_samples > self.history:
            raise ValueError(f"min_samples {self.min_samples} is above history "
                             f"{self.history}: the median would never have enough probes")
        return self

    @property
    def floor(self) -> float:
        """`min_cold_latency`, or its default lowered to an older `min_latency` below it
        (so a config written before the floor existed keeps its threshold)."""
        if self.min_cold_latency is not None:
            return self.min_cold_latency
        if self.min_latency is not None:
            return min(DEFAULT_MIN_COLD_LATENCY, self.min_latency)
        return DEFAULT_MIN_COLD_LATENCY


class HttpTarget(TargetConfig):
    """An HTTP(S) endpoint probed with one request per interval."""

    type: Literal["http"] = "http"
    url: HttpUrlStr
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect: HttpExpect = Field(default_factory=HttpExpect)
    max_body: ByteSize = 1024 * 1024
    tls: TlsOptions = Field(default_factory=TlsOptions)
    keepalive: bool = False
    follow_redirects: FollowRedirects = Field(
        default=True, description="true, false, or same-origin (a redirect elsewhere fails)")
    max_redirects: int = Field(default=5, ge=0, le=30)
    record_headers: list[str] = Field(default_factory=list)
    cold_start: ColdStartOptions | None = None

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        cold = self.cold_start is not None
        return Signals(streams=frozenset({"cdn"} | ({"warm"} if cold else set())),
                       values=frozenset({"redirects", PROBER_LAG}
                                        | ({"cold_start"} if cold else set())))


class HttpProbe:
    """Runs one HttpTarget with a shared client from the pool."""

    def __init__(self, config: HttpTarget, *, clients: HttpClientPool, region: str) -> None:
        self.config = config
        self.region = region
        self._client = clients.get(
            verify=config.tls.verify, ca_file=config.tls.ca_file, keepalive=config.keepalive)
        self._timeout = httpx.Timeout(config.timeout)
        cold = config.cold_start
        self._cold_starts = None if cold is None else ColdStartDetector(
            idle_after=cold.idle_after, factor=cold.factor, min_latency=cold.min_latency,
            history=cold.history, min_cold_latency=cold.floor,
            min_samples=min(cold.min_samples, cold.history))

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        return await guarded(
            self._measure(started_at, t0), timeout=self.config.timeout,
            fail=lambda error_class, message, status: self._fail(
                started_at, t0, error_class, message, status),
            timeout_message=f"no complete response within {self.config.timeout:g}s",
            kind="http", name=self.config.name)

    async def _measure(self, started_at: float, t0: float) -> ProbeResult:
        config = self.config
        lag = LoopLag()
        try:
            with lag:  # how much of the latency is the prober's own lateness
                fetched = await self._fetch()
        except FetchFailed as failed:  # keep what it learned of the certificate
            return self._fail(started_at, t0, failed.error_class, str(failed),
                              failed.status_code, failed.cert_days_left)
        latency = time.perf_counter() - t0
        result = ProbeResult(
            target=config.name, started_at=started_at, ok=True, latency=latency,
            region=self.region, status_code=fetched.status_code,
            cert_days_left=fetched.cert_days_left, response_bytes=len(fetched.body),
        )
        self._record_signals(result, fetched)
        failure = self._check(fetched.status_code, fetched.body, latency)
        if failure is None and config.expect.cert_min_days is not None \
                and fetched.cert_days_left is not None \
                and fetched.cert_days_left < config.expect.cert_min_days:
            failure = (ErrorClass.CERT_EXPIRING,
                       f"certificate expires in {fetched.cert_days_left:.1f} days, under "
                       f"cert_min_days {config.expect.cert_min_days:g}")
        if failure is not None:
            result.ok = False
            result.error_class, result.error = failure
        if lag.seconds >= _NOTABLE_LAG:
            # Latency SLIs leave out an answer whose time was mostly our own lateness
            # (slo/sli.py): the prober's overload is not the target's slowness.
            result.values[PROBER_LAG] = lag.seconds
        if self._cold_starts is not None:
            self._judge_cold_start(self._cold_starts, result, latency, lag.seconds)
        return result

    async def _fetch(self) -> Fetched:
        config = self.config
        return await fetch(
            self._client, config.method, config.url, headers=config.headers,
            body=config.body.encode() if config.body is not None else None,
            timeout=self._timeout, max_body=config.max_body,
            follow_redirects=config.follow_redirects, max_redirects=config.max_redirects)

    @staticmethod
    def _judge_cold_start(detector: ColdStartDetector, result: ProbeResult, latency: float,
                          prober_lag: float) -> None:
        """`cold_start` value and `warm` stream, and in the details why a probe is cold
        or why a slow one is not. An answer that failed only on `max_latency` or the
        certificate's age is still an answer: a cold start is a slow correct answer,
        and `min_latency` above `max_latency` could otherwise never count."""
        answered = result.ok or result.error_class in _STILL_ANSWERED
        verdict = detector.judge(result.started_at, latency, answered, prober_lag)
        result.values["cold_start"] = 1.0 if verdict.cold else 0.0
        if answered:
            result.counts["warm"] = (0.0 if verdict.cold else 1.0, 1.0)
        if verdict.reason is not None:
            key = "cold_start_reason" if verdict.cold else "cold_start_skipped"
            result.details[key] = verdict.reason
        if prober_lag >= _NOTABLE_LAG:  # explains a latency spike on the dashboards too
            result.details["prober_lag"] = f"{prober_lag * 1000:.0f}ms"

    def _record_signals(self, result: ProbeResult, fetched: Fetched) -> None:
        """Redirects, CDN cache status and chosen headers, for SLOs and dashboards."""
        if fetched.redirects:
            result.values["redirects"] = float(fetched.redirects)
            result.details["final_url"] = redact_url(fetched.url)
        cache = cdn_cache_status(fetched.headers)
        if cache is not None:
            result.details["cdn_cache"] = cache[0][:100]
            result.counts["cdn"] = (1.0 if cache[1] else 0.0, 1.0)
        for name in self.config.record_headers:
            value = fetched.headers.get(name)
            if value is not None:
                result.details[f"header.{name.lower()}"] = value[:200]

    def _check(self, status: int, body: bytes, latency: float) -> tuple[str, str] | None:
        expect = self.config.expect
        if not expect.status_ok(status):
            wanted = ", ".join(map(str, expect.status)) if expect.status else "2xx"
            return ErrorClass.HTTP_STATUS, f"status {status}, expected {wanted}"
        if expect.body_contains is not None:
            text = body.decode("utf-8", errors="replace")
            if expect.body_contains not in text:
                return ErrorClass.ASSERTION, f"body does not contain {expect.body_contains!r}"
        if expect.json_fields:
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                return ErrorClass.INVALID_JSON, f"body is not valid JSON: {_short(exc)}"
            for path, wanted_value in expect.json_fields.items():
                actual = json_path(document, path)
                if actual is _MISSING:
                    return ErrorClass.ASSERTION, f"JSON field {path!r} is missing"
                if actual != wanted_value:
                    return (ErrorClass.ASSERTION,
                            f"JSON field {path!r} is {_short(actual)}, expected {wanted_value!r}")
        if expect.max_latency is not None and latency > expect.max_latency:
            return (ErrorClass.SLOW,
                    f"took {latency * 1000:.0f} ms, over max_latency "
                    f"{expect.max_latency * 1000:.0f} ms")
        return None

    def _fail(self, started_at: float, t0: float, error_class: str, message: str,
              status_code: int | None = None, cert_days: float | None = None) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region, status_code=status_code,
            error_class=error_class, error=message[:300], cert_days_left=cert_days,
        )

    async def aclose(self) -> None:
        """The client belongs to the shared pool, which closes it."""


def json_path(document: Any, path: str) -> Any:
    """Follow a dotted path (`data.items.0.id`) into parsed JSON; `_MISSING` when absent."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _build(config: HttpTarget, ctx: ProbeContext) -> HttpProbe:
    return HttpProbe(config, clients=ctx.clients, region=ctx.region)


KIND = ProbeKind(HttpTarget, _build)
