"""What one event adds to one SLO, for every SLI kind, with region selection."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config_slo import SloConfig
from probes.base import PROBER_LAG as RECORDED_LAG
from probes.base import ProbeResult
from slo.rollup import rollup_deltas
from slo.sli import PROBER_LAG, binned_value, event_counts


def slo(**fields: Any) -> SloConfig:
    return SloConfig.model_validate({"name": "s", "target": "t", "objective": 99, **fields})


def event(ok: bool = True, latency: float = 0.1, region: str = "eu", **extra: Any) -> ProbeResult:
    return ProbeResult(target="t", started_at=0.0, ok=ok, latency=latency, region=region,
                       **extra)


@pytest.mark.parametrize(("definition", "probe", "expected"), [
    ({"sli": "availability"}, event(), (1, 1)),
    ({"sli": "availability"}, event(ok=False), (0, 1)),
    ({"sli": "latency", "threshold": "200ms"}, event(latency=0.2), (1, 1)),
    ({"sli": "latency", "threshold": "200ms"}, event(latency=0.21), (0, 1)),
    ({"sli": "latency", "threshold": "200ms"}, event(ok=False, latency=0.01), (0, 1)),
    ({"sli": "ratio", "stream": "cache"}, event(counts={"cache": (71.0, 100.0)}), (71, 100)),
    ({"sli": "ratio", "stream": "cache"}, event(counts={"other": (1.0, 1.0)}), None),
    ({"sli": "ratio", "stream": "cache"}, event(ok=False), None),
    ({"sli": "ratio", "stream": "cache"}, event(counts={"cache": (0.0, 0.0)}), None),
    ({"sli": "threshold", "value": "query_seconds", "threshold": "50ms"},
     event(values={"query_seconds": 0.049}), (1, 1)),
    ({"sli": "threshold", "value": "query_seconds", "threshold": "50ms"},
     event(values={"query_seconds": 0.051}), (0, 1)),
    ({"sli": "threshold", "value": "query_seconds", "threshold": "50ms"},
     event(ok=False), (0, 1)),
    ({"sli": "threshold", "value": "database_size_bytes", "threshold": "10GB"},
     event(values={"database_size_bytes": 9e9}), (1, 1)),
    ({"sli": "threshold", "value": "hit_ratio", "threshold": 0.7, "comparison": ">="},
     event(values={"hit_ratio": 0.65}), (0, 1)),
    ({"sli": "availability", "region": "us"}, event(region="eu"), None),
    ({"sli": "availability", "region": "eu"}, event(region="eu"), (1, 1)),
])
def test_event_counts(definition: dict[str, Any], probe: ProbeResult,
                      expected: tuple[int, int] | None) -> None:
    assert event_counts(slo(**definition), probe) == expected


@pytest.mark.parametrize(("fields", "message"), [
    ({"sli": "ratio"}, "needs `stream`"),
    ({"sli": "threshold", "value": "x"}, "needs `threshold`"),
    ({"sli": "threshold", "threshold": 1}, "needs `value`"),
    ({"sli": "availability", "stream": "x"}, "does not apply"),
    ({"sli": "threshold", "value": "x", "threshold": "lots"}, "invalid threshold"),
])
def test_sli_fields_are_checked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slo(**fields)


def test_a_regional_slo_only_counts_its_region() -> None:
    definitions = [slo(name="eu-latency", sli="latency", threshold="100ms", region="eu"),
                   slo(name="all", sli="availability")]
    events = [event(region="eu", latency=0.05), event(region="us", latency=0.3),
              event(region="eu", latency=0.2)]
    deltas = rollup_deltas(events, {"t": definitions})
    assert (deltas[("eu-latency", 0)].good, deltas[("eu-latency", 0)].total) == (1, 2)
    assert deltas[("all", 0)].total == 3


def test_a_latency_the_prober_itself_stretched_is_not_measured() -> None:
    """The demo's busy machine: 785 ms, 724 of them the prober's own event loop running
    late. Not the target's latency: no latency event and no percentile sample. The
    availability SLO still sees a successful answer."""
    late = event(latency=0.785, values={PROBER_LAG: 0.724})
    latency = slo(sli="latency", threshold=0.2)
    assert event_counts(latency, late) is None
    assert binned_value(latency, late) is None
    assert event_counts(slo(sli="availability"), late) == (1, 1)
    # A little lag inside a slow answer: the target was slow, and that counts.
    slow = event(latency=0.785, values={PROBER_LAG: 0.06})
    assert event_counts(latency, slow) == (0, 1)
    assert binned_value(latency, slow) == 0.785


def test_probes_and_slo_name_the_prober_lag_value_alike() -> None:
    assert RECORDED_LAG == PROBER_LAG
