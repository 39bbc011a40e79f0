"""SLO status from stored rollups, checked against hand-computed numbers."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine

from monitor.clock import FakeClock
from monitor.ingest import ResultWriter
from monitor.service import MonitorService
from probes.base import ProbeResult
from slo.status import build_status
from tests.conftest import make_settings

T0 = 1_767_225_600.0


def test_hand_computed_budget_and_burn_rates() -> None:
    # 99.9% objective over a day: 10,000 events, 5 bad → budget 10 bad events, half spent.
    # The last 5 minutes hold 1,000 events of which 4 bad → error ratio 0.4%, burn 4.
    counts = {86400: (9995, 10000), 300: (996, 1000), 1800: (2000, 2000), 3600: (2996, 3000),
              7200: (4996, 5000), 21600: (9995, 10000), 259200: (9995, 10000)}
    status = build_status(name="s", target="t", sli_kind="availability", objective=0.999,
                          window_seconds=86400, threshold=None, evaluated_at=T0,
                          counts=counts, bins={})
    assert status.state == "ok"
    assert status.sli == pytest.approx(0.9995)
    assert status.budget_remaining == pytest.approx(0.5)
    assert status.burn_rates["5m"] == pytest.approx(4.0)
    assert status.burn_rates["30m"] == 0.0
    assert status.burn_rates["1h"] == pytest.approx((4 / 3000) / 0.001)
    assert status.latency == {}


def test_overspent_budget_is_breaching_and_negative() -> None:
    counts = dict.fromkeys((86400, 300, 1800, 3600, 7200, 21600, 259200), (970, 1000))
    status = build_status(name="s", target="t", sli_kind="availability", objective=0.99,
                          window_seconds=86400, threshold=None, evaluated_at=T0,
                          counts=counts, bins={})
    assert status.state == "breaching"
    assert status.budget_remaining == pytest.approx(-2.0)


def test_no_data_is_its_own_state_not_100_percent() -> None:
    counts = dict.fromkeys((86400, 300, 1800, 3600, 7200, 21600, 259200), (0, 0))
    status = build_status(name="s", target="t", sli_kind="availability", objective=0.99,
                          window_seconds=86400, threshold=None, evaluated_at=T0,
                          counts=counts, bins={})
    assert status.state == "no_data"
    assert status.sli is None and status.budget_remaining is None
    assert all(rate is None for rate in status.burn_rates.values())


def _store(engine: Engine, events: list[tuple[float, bool, float]]) -> MonitorService:
    settings = make_settings()
    ResultWriter(engine, settings.slos)([
        ProbeResult(target="api", started_at=T0 + offset, ok=ok, latency=latency)
        for offset, ok, latency in events])
    return MonitorService(settings, engine, FakeClock(T0 + max(o for o, _, _ in events)))


def test_service_windows_sum_the_right_minutes(engine: Engine) -> None:
    # One event per minute for 3 hours; the last 10 minutes are failures.
    events = [(m * 60.0 + 5, m < 170, 0.05) for m in range(180)]
    service = _store(engine, events)
    status = service.slo_status("api-availability")
    assert (status.good, status.total) == (170, 180)
    windows = {w.window: (w.good, w.total) for w in status.windows}
    assert windows["5m"] == (0, 5)
    assert windows["30m"] == (20, 30)
    assert windows["1h"] == (50, 60)
    assert windows["2h"] == (110, 120)
    assert windows["6h"] == (170, 180)
    assert status.burn_rates["5m"] == pytest.approx(1.0 / 0.01)
    # The day's budget: 1% of the 86,400 probes the 1 s schedule runs in the window.
    assert status.budget_remaining == pytest.approx(1 - 10 / (86400 * 0.01))


def test_p95_from_stored_histograms_is_within_2_percent_of_exact(engine: Engine) -> None:
    rng = random.Random(11)
    latencies = [rng.lognormvariate(-3.0, 0.6) for _ in range(3000)]
    service = _store(engine, [(i * 2.0, True, lat) for i, lat in enumerate(latencies)])
    status = service.slo_status("api-latency")
    ordered = sorted(latencies)
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = ordered[int(q * (len(ordered) - 1))]
        assert status.latency[label] == pytest.approx(exact, rel=0.02), label
    # The latency SLI counts events at or under the 100 ms threshold.
    assert status.good == sum(lat <= 0.1 for lat in latencies)


def test_unknown_slo_is_not_found(engine: Engine) -> None:
    from monitor.errors import NotFoundError
    service = _store(engine, [(0.0, True, 0.01)])
    with pytest.raises(NotFoundError, match="nope"):
        service.slo_status("nope")
