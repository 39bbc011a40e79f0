"""The per-SLO event counters behind Sloth-style Prometheus rules agree with storage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.storage import rollups
from probes.base import ProbeResult
from tests.conftest import make_settings

T0 = 1_767_225_600


def test_counters_count_what_the_rollups_hold(engine: Engine) -> None:
    settings = make_settings()
    metrics = Metrics(CollectorRegistry())
    writer = ResultWriter(engine, settings.slos, on_events=metrics.count_events)
    writer([ProbeResult(target="api", started_at=T0 + i, ok=i % 4 != 0,
                        latency=0.05 if i % 3 else 0.5) for i in range(40)])
    writer([ProbeResult(target="api", started_at=T0 + 100, ok=False, latency=2.0)])
    registry = metrics.registry
    for slo in ("api-availability", "api-latency"):
        good = registry.get_sample_value("primewatch_slo_ingested_events_total",
                                         {"slo": slo, "result": "good"})
        bad = registry.get_sample_value("primewatch_slo_ingested_events_total",
                                        {"slo": slo, "result": "bad"})
        stored = rollups.sum_counts(engine, [slo], [(60, T0 - 60, T0 + 600)])[slo]
        assert (good, good + bad) == stored
    assert registry.get_sample_value("primewatch_slo_ingested_events_total",
                                     {"slo": "api-availability", "result": "bad"}) == 11
