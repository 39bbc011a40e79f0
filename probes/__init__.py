"""Probe kinds: one module per kind, registered here in `REGISTRY`, nowhere else.

A kind is a config model (a `TargetConfig` subclass with `type: Literal[...]`) and a
builder that turns one validated target into a runnable `Probe`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from probes.base import ErrorClass, Probe, ProbeResult, TargetConfig
from probes.http import HttpProbe, HttpTarget
from probes.http_client import HttpClientPool


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What probes may share: the HTTP clients and this instance's region label."""

    clients: HttpClientPool
    region: str = "local"


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """One registry entry: the config model and how to build a probe from it."""

    config_model: type[TargetConfig]
    build: Callable[[TargetConfig, ProbeContext], Probe]


def _build_http(config: TargetConfig, ctx: ProbeContext) -> Probe:
    assert isinstance(config, HttpTarget)
    return HttpProbe(config, clients=ctx.clients, region=ctx.region)


REGISTRY: dict[str, ProbeKind] = {
    "http": ProbeKind(HttpTarget, _build_http),
}


def build_probe(config: TargetConfig, ctx: ProbeContext) -> Probe:
    """Build the runnable probe for a validated target config."""
    kind = REGISTRY[config.type]  # type: ignore[attr-defined]
    return kind.build(config, ctx)


__all__ = [
    "REGISTRY", "ErrorClass", "HttpClientPool", "Probe", "ProbeContext", "ProbeKind",
    "ProbeResult", "TargetConfig", "build_probe",
]
