"""Tests for slo.projection: time to budget exhaustion and per-day budget consumption."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.budget import budget_consumed
from slo.projection import budget_consumed_by_day, projected_exhaustion, time_to_exhaustion

HOUR, DAY = 3600, 86400
PERIOD = 30 * DAY


def test_burn_one_spends_a_full_budget_in_one_period() -> None:
    assert time_to_exhaustion(1.0, 1.0, PERIOD) == PERIOD


def test_half_budget_at_burn_fourteen_point_four() -> None:
    # 14.4 spends 2% of a 30-day budget per hour, so 50% lasts 25 hours.
    assert time_to_exhaustion(0.5, 14.4, PERIOD) == pytest.approx(25 * HOUR)
    assert projected_exhaustion(1_000_000.0, 0.5, 14.4, PERIOD) == pytest.approx(
        1_000_000 + 25 * HOUR)


def test_exhausted_budget_is_zero_seconds_away() -> None:
    assert time_to_exhaustion(0.0, 2.0, PERIOD) == 0.0
    assert time_to_exhaustion(-0.3, 2.0, PERIOD) == 0.0
    assert time_to_exhaustion(-0.3, None, PERIOD) == 0.0
    assert projected_exhaustion(500.0, -1.0, 0.0, PERIOD) == 500.0


@pytest.mark.parametrize(("remaining", "burn"), [(None, 1.0), (0.5, None), (0.5, 0.0),
                                                 (None, None), (0.5, -1.0)])
def test_no_projection_without_data_or_burn(remaining: float | None,
                                            burn: float | None) -> None:
    assert time_to_exhaustion(remaining, burn, PERIOD) is None
    assert projected_exhaustion(0.0, remaining, burn, PERIOD) is None


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan"), float("inf")])
def test_period_must_be_positive(period: float) -> None:
    with pytest.raises(ValueError, match="period_seconds"):
        time_to_exhaustion(0.5, 1.0, period)


def test_budget_consumed_by_day_hand_computed() -> None:
    # 99.9% of 1,000,000 events allows 1,000 bad ones.
    days = [(0, 100_000, 100_000), (DAY, 99_500, 100_000), (2 * DAY, 798_800, 800_000)]
    assert budget_consumed_by_day(days, objective=0.999, window_total=1_000_000) == [
        (0, 0.0), (DAY, pytest.approx(0.5)), (2 * DAY, pytest.approx(1.2))]


def test_budget_consumed_by_day_keeps_input_order_and_days_without_events() -> None:
    days = [(2 * DAY, 9, 10), (0, 0, 0), (DAY, 10, 10)]
    result = budget_consumed_by_day(days, objective=0.9, window_total=20)
    assert [day for day, _ in result] == [2 * DAY, 0, DAY]
    assert result[0][1] == pytest.approx(0.5)
    assert result[1][1] == 0.0 and result[2][1] == 0.0


def test_budget_consumed_by_day_without_window_events_is_empty() -> None:
    assert budget_consumed_by_day([(0, 0, 0)], objective=0.99, window_total=0) == []


def test_budget_consumed_by_day_validates() -> None:
    with pytest.raises(ValueError, match="objective"):
        budget_consumed_by_day([], objective=1.0, window_total=10)
    with pytest.raises(ValueError, match="window_total"):
        budget_consumed_by_day([], objective=0.99, window_total=-1)
    with pytest.raises(ValueError, match="cannot exceed"):
        budget_consumed_by_day([(0, 5, 4)], objective=0.99, window_total=10)


day_counts = st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(
    lambda pair: (min(pair), max(pair)))


@given(st.lists(day_counts, min_size=1, max_size=40), st.sampled_from([0.9, 0.99, 0.999]))
def test_daily_shares_add_up_to_the_window_budget_consumed(
    counts: list[tuple[int, int]], objective: float
) -> None:
    good = sum(g for g, _ in counts)
    total = sum(t for _, t in counts)
    days = [(i * DAY, g, t) for i, (g, t) in enumerate(counts)]
    shares = budget_consumed_by_day(days, objective=objective, window_total=total)
    consumed = budget_consumed(good, total, objective)
    if consumed is None:
        assert shares == []
    else:
        assert sum(share for _, share in shares) == pytest.approx(consumed)
