"""The `prometheus` probe kind: scrape a `/metrics` page and turn counters into SLO events.

Request-based SLIs ("under 0.1% of requests fail", cache hit rate) come from counters the
service already exports. Each scrape yields, per configured ratio, the counter deltas
since the previous scrape as `counts[ratio] = (Δgood, Δtotal)`, plus throughput, and sums
gauges (concurrent users) into `values`. Counter semantics match Prometheus' `increase()`:
a counter that went down was reset, so its current value is what it counted since the
restart. Unlike `increase()`, a series first seen after the first scrape counts in full
(it started from zero since then), so the first error of a new `code="500"` is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BeforeValidator, Field, model_validator

from monitor.units import ByteSize
from probes.base import (
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.http import TlsOptions
from probes.http_client import HttpClientPool
from probes.http_fetch import guarded
from probes.selectors import Selector, SelectorField
from probes.urls import HttpUrlStr, redact_url

log = logging.getLogger(__name__)

StreamName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
# Cumulative samples: a counter's own samples; histogram and summary counts and buckets
_DECLARED_COUNTER = re.compile(r"^[ \t]*#[ \t]*TYPE[ \t]+(\S+)[ \t]+counter[ \t\r]*$",
                               re.MULTILINE)
_CUMULATIVE_SUFFIXES = {"histogram": ("_count", "_bucket"), "summary": ("_count",)}


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


SelectorSet = Annotated[
    tuple[SelectorField, ...], BeforeValidator(_one_or_many), Field(min_length=1)
]
"""One selector or a list of them; a series matching several is counted once."""


class RatioSelectors(StrictModel):
    """Which counters count good events and which count all (valid) events of one stream."""

    good: SelectorSet
    total: SelectorSet


class PrometheusTarget(TargetConfig):
    """A Prometheus text-format endpoint whose counters and gauges feed SLOs."""

    type: Literal["prometheus"] = "prometheus"
    url: HttpUrlStr
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsOptions = Field(default_factory=TlsOptions)
    max_body: ByteSize = 4 * 1024 * 1024
    ratios: dict[StreamName, RatioSelectors] = Field(default_factory=dict)
    gauges: dict[StreamName, SelectorField] = Field(default_factory=dict)


    @model_validator(mode="after")
    def _check_value_names(self) -> PrometheusTarget:
        taken = {"samples"} | {f"{ratio}_rate_per_second" for ratio in self.ratios}
        clashes = sorted(taken & set(self.gauges))
        if clashes:
            raise ValueError(f"gauge name {clashes[0]!r} clashes with a value the probe "
                             f"records itself; choose another name")
        return self

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        return Signals(
            streams=frozenset(self.ratios),
            values=frozenset({"samples", *self.gauges,
                              *(f"{ratio}_rate_per_second" for ratio in self.ratios)}))


@dataclass(slots=True)
class Digest:
    """What one scrape measured, before comparing it with the previous scrape."""

    samples: int = 0
    series: dict[SeriesKey, float] = field(default_factory=dict)
    good: dict[str, set[SeriesKey]] = field(default_factory=dict)
    total: dict[str, set[SeriesKey]] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)


class InvalidMetrics(Exception):
    """The body is not Prometheus text exposition; the message says why."""


def digest(text: str, config: PrometheusTarget) -> Digest:
    """Parse exposition text and pick out the series the config's selectors name.

    Pure and CPU-bound (about 1 s for 4 MiB), so the probe runs it in a worker thread.
    """
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # boundary: the parser raises assorted errors on hostile input
        raise InvalidMetrics(_explain(text, exc)) from exc
    # The parser renames the samples of a counter declared without `_total` (`foo` becomes
    # `foo_total`); selectors name what the target exposes, as Prometheus stores it.
    renamed = {name for name in _DECLARED_COUNTER.findall(text) if not name.endswith("_total")}
    result = Digest(good={name: set() for name in config.ratios},
                    total={name: set() for name in config.ratios})
    for family in families:
        suffixes = _CUMULATIVE_SUFFIXES.get(family.type)
        restore = family.type == "counter" and family.name in renamed
        for sample in family.samples:
            result.samples += 1
            value = float(sample.value)
            if not math.isfinite(value):
                continue
            name = sample.name
            if restore and name == f"{family.name}_total":
                name = family.name
            for gauge, selector in config.gauges.items():
                if selector.matches(name, sample.labels):
                    result.gauges[gauge] = result.gauges.get(gauge, 0.0) + value
            if name == f"{family.name}_created":
                continue  # a creation timestamp inside a counter family, not a count
            cumulative = (family.type == "counter" or name.endswith("_total")
                          or (suffixes is not None and name.endswith(suffixes)))
            if not cumulative:
                continue
            key: SeriesKey | None = None
            for ratio, selectors in config.ratios.items():
                in_good = _any_match(selectors.good, name, sample.labels)
                in_total = _any_match(selectors.total, name, sample.labels)
                if not (in_good or in_total):
                    continue
                key = key or (name, tuple(sorted(sample.labels.items())))
                result.series[key] = value
                if in_good:
                    result.good[ratio].add(key)
                if in_total:
                    result.total[ratio].add(key)
    return result


def _explain(text: str, exc: Exception) -> str:
    """Name the first line the parser rejects on its own; the parser does not say which."""
    reason = _short(exc) or type(exc).__name__
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except Exception as line_exc:  # same boundary as in digest()
            return f"line {number}: {_short(line)!r}: {_short(line_exc) or reason}"
    return reason


def _any_match(selectors: tuple[Selector, ...], name: str, labels: dict[str, str]) -> bool:
    return any(selector.matches(name, labels) for selector in selectors)


@dataclass(frozen=True, slots=True)
class _Scrape:
    at: float
    series: dict[SeriesKey, float]


class PrometheusProbe:
    """Scrapes one target; keeps the previous scrape's counter values to compute deltas."""

    def __init__(self, config: PrometheusTarget, *, clients: HttpClientPool,
                 region: str) -> None:
        self.config = config
        self.region = region
        self._client = clients.get(verify=config.tls.verify, ca_file=config.tls.ca_file)
        self._timeout = httpx.Timeout(config.timeout)
        self._headers = {"Accept": ACCEPT, **config.headers}
        self._previous: _Scrape | None = None

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        return await guarded(
            self._measure(started_at, t0), timeout=self.config.timeout,
            fail=lambda error_class, message, status: self._fail(
                started_at, t0, error_class, message, status),
            timeout_message=f"no complete scrape within {self.config.timeout:g}s",
            kind="prometheus", name=self.config.name)

    async def _measure(self, started_at: float, t0: float) -> ProbeResult:
        config = self.config
        request = self._client.build_request("GET", config.url, headers=self._headers,
                                              timeout=self._timeout)
        response = await self._client.send(request, stream=True)
        try:
            status = response.status_code
            if not 200 <= status < 300:
                error_class = ErrorClass.AUTH if status in (401, 403) else ErrorClass.HTTP_STATUS
                return self._fail(started_at, t0, error_class,
                                  f"status {status} from the metrics endpoint, expected 2xx",
                                  status)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > config.max_body:
                return self._fail(started_at, t0, ErrorClass.TOO_LARGE,
                                  f"metrics of {int(declared)} bytes exceed max_body "
                                  f"{config.max_body}", status)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > config.max_body:
                    return self._fail(started_at, t0, ErrorClass.TOO_LARGE,
                                      f"metrics exceed max_body {config.max_body} bytes", status)
                chunks.append(chunk)
        finally:
            await response.aclose()
        latency = time.perf_counter() - t0
        content_type = response.headers.get("content-type", "unknown")
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._fail(started_at, t0, ErrorClass.INVALID_METRICS,
                              f"metrics are not UTF-8 text: byte 0x{exc.object[exc.start]:02x} "
                              f"at offset {exc.start} (content-type {content_type})", status)
        try:
            scraped = await asyncio.to_thread(digest, text, config)
        except InvalidMetrics as exc:
            return self._fail(started_at, t0, ErrorClass.INVALID_METRICS,
                              f"not valid Prometheus text exposition (content-type "
                              f"{content_type}): {exc}", status)
        result = ProbeResult(target=config.name, started_at=started_at, ok=True,
                             latency=latency, region=self.region, status_code=status,
                             response_bytes=size)
        self._record(result, scraped, started_at)
        return result

    def _record(self, result: ProbeResult, scraped: Digest, started_at: float) -> None:
        """Fill values, counts and details, then remember this scrape as the baseline."""
        result.values["samples"] = float(scraped.samples)
        result.values.update(scraped.gauges)
        missing = [name for name in self.config.gauges if name not in scraped.gauges]
        missing += [name for name, keys in scraped.total.items() if not keys]
        if missing:
            result.details["no_match"] = ", ".join(missing)
        previous, self._previous = self._previous, _Scrape(started_at, scraped.series)
        if previous is None:
            result.details["baseline"] = "first scrape"
            return
        deltas, resets, new = counter_deltas(previous.series, scraped.series)
        if resets:
            result.details["counter_reset"] = "true"
        if new:
            result.details["new_series"] = str(new)
        elapsed = started_at - previous.at
        for ratio in self.config.ratios:
            good = sum(deltas[key] for key in scraped.good[ratio])
            total = sum(deltas[key] for key in scraped.total[ratio])
            if total > 0:
                result.counts[ratio] = (good, total)
            if elapsed > 0:
                result.values[f"{ratio}_rate_per_second"] = total / elapsed

    def _fail(self, started_at: float, t0: float, error_class: str, message: str,
              status_code: int | None = None) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region, status_code=status_code,
            error_class=error_class, error=message[:300],
        )

    async def aclose(self) -> None:
        """The client belongs to the shared pool, which closes it."""


def counter_deltas(previous: dict[SeriesKey, float], current: dict[SeriesKey, float]
                   ) -> tuple[dict[SeriesKey, float], int, int]:
    """Per-series increase since the previous scrape: (deltas, resets seen, new series).

    A value lower than before means the counter restarted, so everything it holds now
    was counted since (`increase()` semantics); a series absent before started from 0.
    """
    deltas: dict[SeriesKey, float] = {}
    resets = new = 0
    for key, value in current.items():
        before = previous.get(key)
        if before is None:
            new += 1
            deltas[key] = value
        elif value < before:
            resets += 1
            deltas[key] = value
        else:
            deltas[key] = value - before
    return deltas, resets, new


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _build(config: PrometheusTarget, ctx: ProbeContext) -> PrometheusProbe:
    return PrometheusProbe(config, clients=ctx.clients, region=ctx.region)


KIND = ProbeKind(PrometheusTarget, _build, counters=True)
