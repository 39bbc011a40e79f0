"""SLO evaluation on stored data: tiers, calendar windows, timeslices, projections."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.ingest import ResultWriter
from monitor.slo_engine import SloEngine
from monitor.storage import rollups
from monitor.storage.engine import make_engine, upgrade
from probes.base import ProbeResult

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def slo(**fields: Any) -> SloConfig:
    data = {"name": "s", "target": "api", "sli": "availability", "objective": 99,
            "window": "1d", **fields}
    return SloConfig.model_validate(data)


def write(engine: Engine, definitions: list[SloConfig],
          events: list[tuple[float, bool]]) -> None:
    ResultWriter(engine, definitions)([
        ProbeResult(target="api", started_at=t, ok=ok, latency=0.05) for t, ok in events])


def test_hour_and_day_tiers_equal_the_minute_sums(engine: Engine) -> None:
    definition = slo()
    rng = random.Random(3)
    events = [(T0 + rng.uniform(0, 3 * 86400), rng.random() > 0.2) for _ in range(3000)]
    write(engine, [definition], events)
    minutes = rollups.series(engine, ["s"], rollups.MINUTE, T0, T0 + 4 * 86400)["s"]
    hours = rollups.series(engine, ["s"], rollups.HOUR, T0, T0 + 4 * 86400)["s"]
    days = rollups.series(engine, ["s"], rollups.DAY, T0, T0 + 4 * 86400)["s"]
    for coarse, size in ((hours, 3600), (days, 86400)):
        for start, good, total in coarse:
            inside = [(g, t) for s, g, t in minutes if start <= s < start + size]
            assert (good, total) == (sum(g for g, _ in inside), sum(t for _, t in inside))
    assert sum(t for _, _, t in days) == 3000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5 * 86400), st.booleans()), max_size=80),
       st.integers(0, 5 * 86400), st.integers(60, 4 * 86400))
def test_property_window_sums_over_tiers_equal_raw_counts(
        tmp_path_factory: Any, events: list[tuple[int, bool]], end_offset: int,
        length: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('tiers') / 'p.db'}")
    upgrade(engine)
    write(engine, [slo()], [(T0 + t, ok) for t, ok in events])
    end = T0 + end_offset // 60 * 60
    start = end - length // 60 * 60
    from slo.windows import split_by_resolution
    got = rollups.sum_counts(engine, ["s"], split_by_resolution(start, end))["s"]
    inside = [ok for t, ok in events if start <= T0 + t < end]
    assert got == (sum(inside), len(inside))
    engine.dispose()


def test_a_calendar_month_starts_at_local_midnight(engine: Engine) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 3, 1, tzinfo=berlin).timestamp()  # 2026-02-28T23:00Z
    definition = slo(window="month", timezone="Europe/Berlin")
    # 30 failures in February (UTC 22:00-22:59 on the 28th), then 100 successes in March.
    write(engine, [definition], [(first - 3600 + i * 60, False) for i in range(30)]
          + [(first + i * 60, True) for i in range(100)])
    [status] = SloEngine(engine).evaluate([definition], first + 100 * 60)
    assert status.window_start == int(first)
    assert (status.good, status.total) == (100, 100)
    assert status.period_seconds == 31 * 86400 - 3600  # March in Berlin loses an hour
    [rolling] = SloEngine(engine).evaluate([slo()], first + 100 * 60)
    assert rolling.total == 130  # the rolling day still sees February's failures


def test_timeslices_and_ratio_timeslices_on_stored_minutes(engine: Engine) -> None:
    # Ten minutes: one minute with 978 good of 978, nine with 1 good of 2.
    events = [(T0 + i * 0.05, True) for i in range(978)]
    for minute in range(1, 10):
        events += [(T0 + minute * 60 + 1, True), (T0 + minute * 60 + 2, False)]
    occurrences = slo(name="occ")
    slices = slo(name="ts", budgeting="timeslices", timeslice="1m", timeslice_target=90)
    ratio = slo(name="rts", budgeting="ratio_timeslices", timeslice="1m")
    write(engine, [occurrences, slices, ratio], events)
    now = T0 + 10 * 60
    by_name = {s.name: s for s in SloEngine(engine).evaluate([occurrences, slices, ratio], now)}
    assert by_name["occ"].sli == pytest.approx(987 / 996)
    assert (by_name["ts"].good, by_name["ts"].total) == (1, 10)
    assert by_name["ts"].sli == pytest.approx(0.1)
    assert by_name["rts"].sli == pytest.approx((1 + 9 * 0.5) / 10)
    assert by_name["ts"].budgeting == "timeslices"


def test_budget_projection_from_the_last_hours_burn(engine: Engine) -> None:
    # 99% over 1 day, one hour old: 3 bad of 600 events. The budget is 1% of the events
    # the whole day will hold (600 an hour, extrapolated: 14,400), so 3 of 144 allowed
    # bad events are spent; burning at 0.5, the rest lasts remaining x 1 day / 0.5.
    definition = slo(window="1d")
    events = [(T0 + i * 6.0, i % 200 != 0) for i in range(600)]
    write(engine, [definition], events)
    [status] = SloEngine(engine).evaluate([definition], T0 + 3599)
    assert status.burn_rates["1h"] == pytest.approx(0.5)
    assert status.budget_remaining == pytest.approx(1 - 3 / 144, rel=1e-3)
    assert status.budget_estimated  # no schedule given: the observed rate, extrapolated
    assert status.window_coverage == pytest.approx(1 / 24, rel=0.02)
    assert status.exhaustion_seconds == pytest.approx(status.budget_remaining * 86400 / 0.5)
    assert status.exhausted_at == pytest.approx(T0 + 3599 + status.exhaustion_seconds)


def test_a_young_slo_spends_its_budget_as_a_mature_one_would(engine: Engine) -> None:
    """Two hours into a 30-day 99.9% SLO probed every 10 s, a 5-minute outage spends
    30 of the 259.2 bad probes the month allows: 88% left, not −12,000%."""
    definition = slo(objective=99.9, window="30d")
    events = [(T0 + i * 10.0, not 360 <= i < 390) for i in range(720)]
    write(engine, [definition], events)
    evaluator = SloEngine(engine, probes_per_second={definition.target: 0.1})
    [status] = evaluator.evaluate([definition], T0 + 7200)
    assert status.expected_events == pytest.approx(30 * 86400 / 10)
    assert not status.budget_estimated
    assert status.budget_remaining == pytest.approx(1 - 30 / 259.2)
    assert status.state == "ok"
    assert status.collecting_since is not None and status.collecting_since <= T0
    assert status.window_coverage == pytest.approx(7200 / (30 * 86400), rel=0.02)
    # The same outage in a full window reads the same: the base is the window's schedule.
    mature = [(T0 - 30 * 86400 + i * 10.0, True) for i in range(0, 30 * 8640, 60)]
    write(engine, [definition], mature)
    evaluator.forget()
    [full] = evaluator.evaluate([definition], T0 + 7200)
    assert full.window_coverage == pytest.approx(1.0, abs=1e-3)
    assert full.budget_remaining == pytest.approx(status.budget_remaining)


def cache_lookups(start: float, minutes: int, misses_per_ten: int) -> list[ProbeResult]:
    """One scrape a minute of a cache counter: 10 lookups, `misses_per_ten` missed."""
    return [ProbeResult(target="api", started_at=start + i * 60.0, ok=True, latency=0.01,
                        counts={"cache": (10.0 - misses_per_ten, 10.0)})
            for i in range(minutes)]


def test_early_noise_on_a_young_slo_raises_nothing(engine: Engine) -> None:
    """The demo's story: ten minutes into a 7-day 70% cache SLO, 4 misses in 10 lookups
    (burn 1.33 over every window so far) is noise, not a day-long burn: the 1d/2h
    ticket judges the day's share of the budget, as it would on a mature SLO."""
    definition = slo(sli="ratio", stream="cache", objective=70, window="7d",
                     alerts={"min_events": 10})
    ResultWriter(engine, [definition])(cache_lookups(T0, 10, misses_per_ten=4))
    evaluator = SloEngine(engine)
    for minute in range(1, 11):
        [status] = evaluator.evaluate([definition], T0 + minute * 60, alerts=True)
        assert status.alert.severity is None, status.alert.reason
    assert status.windows[0].burn_rate == pytest.approx(4 / 3)  # the noise is real


def test_the_same_burn_on_a_mature_slo_tickets(engine: Engine) -> None:
    """The check above cannot pass by silencing the tier: with a week of history at
    burn 1.33 the 1d/2h ticket fires."""
    definition = slo(sli="ratio", stream="cache", objective=70, window="7d",
                     alerts={"min_events": 10})
    week = 7 * 1440
    ResultWriter(engine, [definition])(cache_lookups(T0 - week * 60, week + 10, 4))
    [status] = SloEngine(engine).evaluate([definition], T0 + 600, alerts=True)
    assert status.alert.severity == "ticket", status.alert.reason


def test_a_young_slo_pages_a_total_outage_as_fast_as_a_mature_one(engine: Engine) -> None:
    """Padding the unmeasured past as good must not slow a real page: a 99.9% SLO down
    from its first probe (every 10 s) pages within the 2 minutes a mature one would."""
    definition = slo(objective=99.9, window="30d")
    write(engine, [definition], [(T0 + i * 10.0, False) for i in range(12)])
    evaluator = SloEngine(engine, probes_per_second={"api": 0.1})
    [status] = evaluator.evaluate([definition], T0 + 115, alerts=True)
    assert status.alert.severity == "page", status.alert.reason


def test_alerts_advance_only_on_the_tick_and_others_see_the_verdict(engine: Engine) -> None:
    definition = slo(objective=99.9, window="30d", alerts={"min_events": 1})
    write(engine, [definition], [(T0 + i, False) for i in range(120)])
    evaluator = SloEngine(engine)
    [before] = evaluator.evaluate([definition], T0 + 120)
    assert before.alert.severity is None  # readers never advance the state machine
    [tick] = evaluator.evaluate([definition], T0 + 120, alerts=True)
    assert tick.alert.severity == "page" and tick.alert.tier == 0
    [reader] = evaluator.evaluate([definition], T0 + 121)
    assert reader.alert.severity == "page"
    assert evaluator.last_decisions["s"].transition == "fired"


def test_many_slos_stay_under_the_bound_parameter_limit(engine: Engine) -> None:
    definitions = [slo(name=f"s{i}") for i in range(1500)]
    write(engine, definitions[:1], [(T0 + i, True) for i in range(10)])
    statuses = SloEngine(engine).evaluate(definitions, T0 + 60)
    assert len(statuses) == 1500
    assert statuses[0].total == 10 and statuses[1].state == "no_data"
