"""The `promql` probe kind: ask a Prometheus server for good and total event counts.

When a Prometheus already scrapes the service, its counters are best read through
PromQL: `sum(increase(http_requests_total{code!~"5.."}[1m]))` over `sum(increase(...))`.
The expressions already count events over the window they name, so the probe reports
them as they are, `counts[stream] = (good, total)`; make that window equal the target's
`interval`, or events are counted twice (window longer) or missed (shorter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, model_validator

from monitor.units import ByteSize
from probes.base import ErrorClass, ProbeContext, ProbeKind, ProbeResult, Signals, TargetConfig
from probes.http import TlsOptions
from probes.http_client import HttpClientPool
from probes.http_fetch import FetchFailed, guarded, read_capped
from probes.urls import HttpUrlStr, redact_url

log = logging.getLogger(__name__)

StreamName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Expression = Annotated[str, Field(min_length=1, max_length=10_000)]


class PromqlTarget(TargetConfig):
    """A Prometheus HTTP API and the instant queries that count good and total events."""

    type: Literal["promql"] = "promql"
    url: HttpUrlStr  # the Prometheus base URL; the probe calls {url}/api/v1/query
    good: Expression | None = None
    total: Expression | None = None
    stream: StreamName = "ratio"
    gauges: dict[StreamName, Expression] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    tls: TlsOptions = Field(default_factory=TlsOptions)
    max_body: ByteSize = 1024 * 1024


    @model_validator(mode="after")
    def _check_queries(self) -> PromqlTarget:
        if (self.good is None) != (self.total is None):
            raise ValueError("`good` and `total` go together: give both expressions or neither")
        if self.good is None and not self.gauges:
            raise ValueError("nothing to query: give `good` and `total`, or `gauges`")
        return self

    def query_url(self) -> str:
        return self.url.rstrip("/") + "/api/v1/query"

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        return Signals(
            streams=frozenset({self.stream} if self.good is not None else set()),
            values=frozenset(self.gauges))


class QueryFailed(FetchFailed):
    """One query did not yield a number or an empty answer; carries the error class."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One query's outcome: a number, or None for an empty or NaN result."""

    value: float | None
    status_code: int
    size: int
    warnings: tuple[str, ...] = ()


def parse_answer(document: Any) -> tuple[float | None, tuple[str, ...]]:
    """The summed value of a Prometheus `/api/v1/query` answer, and its warnings.

    Raises QueryFailed for `status: error` and for answers that are not a number.
    """
    if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
        raise QueryFailed(ErrorClass.INVALID_JSON,
                          "response is not a Prometheus API answer (no status field)")
    if document["status"] == "error":
        kind = document.get("errorType") or "error"
        raise QueryFailed(ErrorClass.QUERY, f"{kind}: {document.get('error') or 'no message'}")
    warnings = tuple(str(w) for w in document.get("warnings") or ())
    data = document.get("data")
    result_type = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if result_type == "scalar" and isinstance(result, list) and len(result) == 2:
        return _finite(_number(result[1])), warnings
    if result_type == "vector" and isinstance(result, list):
        values = [_sample_value(sample) for sample in result]
        return (_finite(sum(values)) if values else None), warnings
    if result_type == "matrix":
        raise QueryFailed(ErrorClass.QUERY, "expression returns a range vector; wrap it, "
                                            "e.g. sum(increase(x_total[1m]))")
    if result_type == "string":
        raise QueryFailed(ErrorClass.QUERY, "expression returns a string, not a number")
    raise QueryFailed(ErrorClass.INVALID_JSON,
                      f"unexpected answer shape (resultType {result_type!r})")


def _sample_value(sample: Any) -> float:
    if isinstance(sample, dict) and "histogram" in sample and "value" not in sample:
        raise QueryFailed(ErrorClass.QUERY, "expression returns native histograms; wrap it, "
                                            "e.g. histogram_count(...)")
    pair = sample.get("value") if isinstance(sample, dict) else None
    if not isinstance(pair, list) or len(pair) != 2:
        raise QueryFailed(ErrorClass.INVALID_JSON, "vector sample without a [time, value] pair")
    return _number(pair[1])


def _number(text: Any) -> float:
    try:
        return float(text)  # Prometheus sends "123", "NaN", "+Inf"
    except (TypeError, ValueError):
        raise QueryFailed(ErrorClass.INVALID_JSON, f"value {text!r} is not a number") from None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PromqlProbe:
    """Runs a target's queries concurrently under one deadline with a shared client."""

    def __init__(self, config: PromqlTarget, *, clients: HttpClientPool, region: str) -> None:
        self.config = config
        self.region = region
        self._client = clients.get(verify=config.tls.verify, ca_file=config.tls.ca_file)
        self._timeout = httpx.Timeout(config.timeout)
        self._headers = {"Accept": "application/json", **config.headers}
        # so Prometheus abandons evaluation when we do (it takes Go durations, no fractions)
        self._server_timeout = f"{max(1, int(config.timeout * 1000))}ms"

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        return await guarded(
            self._measure(started_at, t0), timeout=self.config.timeout,
            fail=lambda error_class, message, status: self._fail(
                started_at, t0, error_class, message, status),
            timeout_message=f"no answer from Prometheus within {self.config.timeout:g}s",
            kind="promql", name=self.config.name)

    async def _measure(self, started_at: float, t0: float) -> ProbeResult:
        config = self.config
        queries = [(f"gauge {name}", expr) for name, expr in config.gauges.items()]
        if config.good is not None and config.total is not None:
            queries[:0] = [("good", config.good), ("total", config.total)]
        outcomes = await asyncio.gather(*(self._query(label, expr) for label, expr in queries),
                                        return_exceptions=True)
        answers: dict[str, Answer] = {}
        for (label, _), outcome in zip(queries, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome  # the first failure in config order speaks for the run
            answers[label] = outcome
        first = answers[queries[0][0]]
        result = ProbeResult(
            target=config.name, started_at=started_at, ok=True,
            latency=time.perf_counter() - t0, region=self.region,
            status_code=first.status_code,
            response_bytes=sum(answer.size for answer in answers.values()),
        )
        empty = [name for name, answer in answers.items() if answer.value is None]
        if empty:
            result.details["empty"] = ", ".join(empty)
        warnings = [w for answer in answers.values() for w in answer.warnings]
        if warnings:
            result.details["warnings"] = "; ".join(dict.fromkeys(warnings))[:300]
        for gauge in config.gauges:
            value = answers[f"gauge {gauge}"].value
            if value is not None:
                result.values[gauge] = value
        if "good" in answers:
            good, total = answers["good"].value, answers["total"].value
            if good is not None and total is not None:
                result.counts[config.stream] = (good, total)
        return result

    async def _query(self, name: str, expression: str) -> Answer:
        request = self._client.build_request(
            "GET", self.config.query_url(), headers=self._headers, timeout=self._timeout,
            params={"query": expression, "timeout": self._server_timeout},
        )
        response = await self._client.send(request, stream=True)
        try:
            body = await read_capped(response, self.config.max_body)
        finally:
            await response.aclose()
        status = response.status_code
        if status in (401, 403):
            raise QueryFailed(ErrorClass.AUTH, f"{name} query: status {status} from Prometheus",
                              status)
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if 200 <= status < 300:
                raise QueryFailed(ErrorClass.INVALID_JSON,
                                  f"{name} query: response is not JSON", status) from None
            raise QueryFailed(ErrorClass.HTTP_STATUS, f"{name} query: status {status} from "
                              f"Prometheus, not an API answer", status) from None
        try:
            value, warnings = parse_answer(document)
        except QueryFailed as exc:
            raise QueryFailed(exc.error_class, f"{name} query: {_short(exc)}", status) from None
        return Answer(value, status, len(body), warnings)

    def _fail(self, started_at: float, t0: float, error_class: str, message: str,
              status_code: int | None = None) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region, status_code=status_code,
            error_class=error_class, error=message[:300],
        )

    async def aclose(self) -> None:
        """The client belongs to the shared pool, which closes it."""


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 240 else text[:237] + "..."


def _build(config: PromqlTarget, ctx: ProbeContext) -> PromqlProbe:
    return PromqlProbe(config, clients=ctx.clients, region=ctx.region)


KIND = ProbeKind(PromqlTarget, _build)
