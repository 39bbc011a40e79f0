"""Probe kinds: one module per kind, registered here in `REGISTRY`, nowhere else.

A kind module exports `KIND = ProbeKind(ConfigModel, build)`: a config model (a
`TargetConfig` subclass with `type: Literal[...]`) and a builder that turns one validated
target into a runnable `Probe`.
"""

from __future__ import annotations

from probes import browser, http, mongodb, page, prometheus, promql, redis, sql
from probes.base import ErrorClass, Probe, ProbeContext, ProbeKind, ProbeResult, TargetConfig
from probes.http_client import HttpClientPool

REGISTRY: dict[str, ProbeKind] = {
    "http": http.KIND,
    "mongodb": mongodb.KIND,
    "page": page.KIND,
    "browser": browser.KIND,
    "redis": redis.KIND,
    "sql": sql.KIND,
    "prometheus": prometheus.KIND,
    "promql": promql.KIND,
}


def build_probe(config: TargetConfig, ctx: ProbeContext) -> Probe:
    """Build the runnable probe for a validated target config."""
    kind = REGISTRY[config.type]  # type: ignore[attr-defined]
    return kind.build(config, ctx)


__all__ = [
    "REGISTRY", "ErrorClass", "HttpClientPool", "Probe", "ProbeContext", "ProbeKind",
    "ProbeResult", "TargetConfig", "build_probe",
]
