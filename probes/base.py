"""What every probe kind shares: the result type, the config base and the probe protocol.

A probe turns one target into one `ProbeResult`. A target being down is data: probes
never raise into the scheduler; they return a failed result with an `error_class`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from monitor.units import Duration
from probes.http_client import HttpClientPool


class ErrorClass:
    """Bounded vocabulary for why a probe failed; used as a metric label, so keep it small."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    DNS = "dns"
    TLS = "tls"
    CONNECTION = "connection"
    PROTOCOL = "protocol"
    HTTP_STATUS = "http_status"
    ASSERTION = "assertion"
    INVALID_JSON = "invalid_json"
    TOO_LARGE = "too_large"
    SLOW = "slow"
    REDIRECTS = "redirects"
    CERT_EXPIRING = "cert_expiring"
    INVALID_METRICS = "invalid_metrics"
    QUERY = "query"
    AUTH = "auth"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"

    ALL: ClassVar[tuple[str, ...]] = (
        TIMEOUT, REFUSED, DNS, TLS, CONNECTION, PROTOCOL, HTTP_STATUS,
        ASSERTION, INVALID_JSON, TOO_LARGE, SLOW, REDIRECTS, CERT_EXPIRING,
        INVALID_METRICS, QUERY, AUTH, UNAVAILABLE, INTERNAL,
    )


PROBER_LAG = "prober_lag_seconds"
"""`ProbeResult.values` key: seconds of a probe's latency that the prober's own event
loop ran late (probes/loop_lag.py); set when notable. slo/sli.py reads the same name."""


@dataclass(slots=True)
class ProbeResult:
    """One observation of one target. Times are epoch seconds; latency is in seconds."""

    target: str
    started_at: float
    ok: bool
    latency: float
    region: str = "local"
    status_code: int | None = None
    error_class: str | None = None
    error: str | None = None
    cert_days_left: float | None = None
    response_bytes: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, tuple[float, float]] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, used by `primewatch probe --json` and the API."""
        return {
            "target": self.target,
            "region": self.region,
            "started_at": self.started_at,
            "ok": self.ok,
            "latency_ms": round(self.latency * 1000, 3),
            "status_code": self.status_code,
            "error_class": self.error_class,
            "error": self.error,
            "cert_days_left": self.cert_days_left,
            "response_bytes": self.response_bytes,
            "values": dict(self.values),
            "counts": {name: {"good": good, "total": total}
                       for name, (good, total) in self.counts.items()},
            "details": dict(self.details),
        }


class StrictModel(BaseModel):
    """Config section base: unknown keys are errors, values immutable after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(StrictModel):
    """Fields every target has, whatever its kind. Subclasses add `type: Literal[...]`."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    interval: Duration = 30.0
    timeout: Duration = 10.0
    down_after: int = Field(default=3, ge=1)
    min_regions_failing: int = Field(default=1, ge=1)
    """Regions (instances probing from different `region`s) that must each see
    `down_after` consecutive failures before the target is down: one region's network
    trouble is not an outage of the target."""
    depends_on: tuple[str, ...] = ()
    """Targets this one needs (a database, a gateway): while one of them is down, this
    target's alerts join that target's incident, so one outage pages once."""
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True

    def display_url(self) -> str:
        """Where the target lives, safe to show (no credentials)."""
        return ""

    def signals(self) -> Signals:
        """The count streams and values this target's results can carry, so `check` can
        refuse an SLO or trigger that names one it never produces."""
        return Signals()


@dataclass(frozen=True, slots=True)
class Signals:
    """Names a probe kind fills in `ProbeResult.counts` (streams) and `.values`."""

    streams: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()


class Probe(Protocol):
    """A probe kind's runtime: built once per target, run once per interval."""

    async def run(self, started_at: float) -> ProbeResult:
        """Measure the target once; never raises."""
        ...

    async def aclose(self) -> None:
        """Release connections or clients the probe owns."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What probes may share: the HTTP clients and this instance's region label."""

    clients: HttpClientPool
    region: str = "local"


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """One registry entry: the config model and how to build a probe from it."""

    config_model: type[TargetConfig]
    build: Callable[[Any, ProbeContext], Probe]
    counters: bool = False
    """True when results are deltas between runs (the first run is only a baseline)."""
