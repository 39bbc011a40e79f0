"""One budget on every surface: a young SLO with a short outage reads the same bounded
figure in the API, /metrics, the SLO page, the overview, the report and the post-mortem
facts (issue: five surfaces once gave five answers, down to −14,000 %)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alerts.facts import share_of_budget
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.report import build_report
from monitor.slo_engine import expected_window_events, probe_rates
from monitor.storage.engine import make_engine, upgrade
from probes.base import ProbeResult
from slo.allowance import allowance
from tests.conftest import make_settings
from tests.servers import serve_asgi

T0 = 1_767_225_600.0 + 6 * 3600  # 2026-01-01 06:00 UTC: a fresh install
OUTAGE = (T0 + 3600, T0 + 3900)  # five minutes, an hour in
NOW = T0 + 7200  # two hours of data in a 30-day window


def test_a_two_hour_old_slo_shows_one_bounded_budget_everywhere(tmp_path: Path) -> None:
    settings = make_settings(
        targets=[{"name": "api", "type": "http", "url": "http://127.0.0.1:1/health",
                  "interval": "10s", "timeout": "2s"}],
        slos=[{"name": "api-availability", "target": "api", "sli": "availability",
               "objective": 99.9, "window": "30d"}])
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    ResultWriter(engine, settings.slos)([
        ProbeResult(target="api", started_at=t, ok=not OUTAGE[0] <= t < OUTAGE[1],
                    latency=0.02) for t in (T0 + 10 * i for i in range(720))])
    # 30 failed probes of the 259,200 a month of 10 s probes holds; 0.1% may fail.
    expected_left = 1 - 30 / 259.2
    app = create_app(settings, engine, clock=FakeClock(NOW),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    runtime = app.state.runtime
    runtime.statuses = {s.name: s for s in runtime._evaluate_and_publish()}
    try:
        with serve_asgi(app) as url:
            api = httpx.get(f"{url}/api/v1/slos/api-availability").json()
            metrics = httpx.get(f"{url}/metrics").text
            slo_page = httpx.get(f"{url}/slos/api-availability").text
            overview = httpx.get(f"{url}/").text
    finally:
        runtime.outbox.close()

    assert api["error_budget_remaining"] == pytest.approx(expected_left)
    assert api["state"] == "ok"
    assert api["error_budget"]["window_coverage"] == pytest.approx(7200 / (30 * 86400),
                                                                   rel=0.02)
    gauge = next(s.value for f in text_string_to_metric_families(metrics)
                 for s in f.samples
                 if s.name == "primewatch_slo_error_budget_remaining_ratio")
    assert gauge == pytest.approx(expected_left)
    shown = f"{expected_left * 100:.1f}%"
    for html in (slo_page, overview):
        assert re.search(rf"data-budget>{re.escape(shown)}<", html), shown
        assert "collecting since 2026-01-01 06:00 UTC, 0.3% of the window" in html
    # The burn-down's axis stays readable: no negative thousands on a healthy SLO.
    assert not re.search(r"−?-\d{3,},?\d*%", slo_page)

    # The report's day and the post-mortem's share state the same budget spent.
    day = datetime.fromtimestamp(T0, UTC).date()
    report = build_report(engine, settings.slos, first=day, last=day, now=NOW,
                          probes_per_second=probe_rates(settings))
    assert report.iloc[0]["budget_consumed"] == pytest.approx(1 - expected_left)
    base = expected_window_events(engine, settings, settings.slos[0], NOW)
    assert base == pytest.approx(259_200)
    assert share_of_budget(30, base, 0.999) == pytest.approx(1 - expected_left)
    engine.dispose()


def test_a_young_probe_slos_base_is_the_schedule_not_its_first_minutes_rate() -> None:
    """Three minutes into a 30-day SLO probed every 10 s, 19 probes (the first at 0 s)
    extrapolate 5 % over the schedule; as a base that moved every budget figure minute
    by minute, so a post-mortem written at the resolve and the incident page read later
    stated different shares of the same outage. Whole instances keep the schedule's
    count, and a second region probing doubles it."""
    period, now = 30 * 86400.0, T0 + 180
    one_region = allowance(source="schedule", period=period, window_start=now - period,
                           now=now, first_data_at=T0, total=19, events_per_second=0.1)
    assert one_region.expected_events == pytest.approx(259_200)
    later = allowance(source="schedule", period=period, window_start=now + 60 - period,
                      now=now + 60, first_data_at=T0, total=26, events_per_second=0.1)
    assert later.expected_events == one_region.expected_events
    two_regions = allowance(source="schedule", period=period, window_start=now - period,
                            now=now, first_data_at=T0, total=37, events_per_second=0.1)
    assert two_regions.expected_events == pytest.approx(2 * 259_200)
