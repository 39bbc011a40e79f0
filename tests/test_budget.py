"""Tests for slo.budget: hand-computed Workbook cases, no-data, overspent budgets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.budget import (
    BURN_WINDOWS,
    DEFAULT_BURN_RULES,
    MIN_BURN_THRESHOLD,
    BurnRule,
    BurnThreshold,
    WindowCounts,
    budget_consumed,
    budget_remaining,
    burn_rate,
    burn_rules_for_period,
    error_ratio,
    scale_burn_factor,
    scaled_burn_threshold,
    sli,
)

DAY = 86400
HOUR = 3600

# --- hand-computed cases --------------------------------------------------------------


def test_half_budget_spent() -> None:
    # 99.9% of 1,000,000 allows 1,000 bad; 500 bad spends half of it.
    good, total = 999_500, 1_000_000
    assert sli(good, total) == 0.9995
    assert error_ratio(good, total) == 0.0005
    assert burn_rate(good, total, 0.999) == pytest.approx(0.5)
    assert budget_remaining(good, total, 0.999) == pytest.approx(0.5)
    assert budget_consumed(good, total, 0.999) == pytest.approx(0.5)


def test_overspent_budget_goes_negative() -> None:
    # 99% of 1,000 allows 10 bad; 25 bad spends 250% of it.
    assert budget_remaining(975, 1_000, 0.99) == pytest.approx(-1.5)
    assert budget_consumed(975, 1_000, 0.99) == pytest.approx(2.5)
    assert burn_rate(975, 1_000, 0.99) == pytest.approx(2.5)


def test_perfect_window() -> None:
    assert sli(10, 10) == 1.0
    assert error_ratio(10, 10) == 0.0
    assert burn_rate(10, 10, 0.999) == 0.0
    assert budget_remaining(10, 10, 0.999) == 1.0


def test_everything_bad_burns_at_inverse_budget() -> None:
    assert burn_rate(0, 50, 0.99) == pytest.approx(100.0)


def test_float_counts_are_accepted() -> None:
    assert sli(2.5, 10.0) == 0.25


# --- no data ------------------------------------------------------------------------


def test_no_data_is_none_never_100_percent() -> None:
    assert sli(0, 0) is None
    assert error_ratio(0, 0) is None
    assert burn_rate(0, 0, 0.999) is None
    assert budget_remaining(0, 0, 0.999) is None
    assert budget_consumed(0, 0, 0.999) is None
    assert WindowCounts(0, 0).sli is None


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("objective", [0.0, 1.0, 99.9, -0.5, math.nan])
def test_objective_must_be_a_ratio(objective: float) -> None:
    with pytest.raises(ValueError, match="objective"):
        burn_rate(9, 10, objective)
    with pytest.raises(ValueError, match="objective"):
        budget_remaining(0, 0, objective)


@pytest.mark.parametrize(("good", "total"), [(11, 10), (-1, 10), (0, -1)])
def test_impossible_counts_are_rejected(good: float, total: float) -> None:
    with pytest.raises(ValueError):
        sli(good, total)
    with pytest.raises(ValueError):
        WindowCounts(good, total)


# --- WindowCounts -------------------------------------------------------------------


def test_window_counts_add_and_derive() -> None:
    hour = WindowCounts(good=990, total=1000) + WindowCounts(good=0, total=0)
    day = hour + WindowCounts(good=95, total=100)
    assert day == WindowCounts(1085, 1100)
    assert day.bad == 15
    assert day.sli == pytest.approx(1085 / 1100)
    with pytest.raises(AttributeError):
        day.good = 1  # type: ignore[misc]


# --- burn-rate alert thresholds -----------------------------------------------------


@pytest.mark.parametrize(
    ("share", "window", "expected"),
    [(0.02, HOUR, 14.4), (0.05, 6 * HOUR, 6.0), (0.10, DAY, 3.0), (0.10, 3 * DAY, 1.0)],
)
def test_workbook_factors_for_30_days(share: float, window: int, expected: float) -> None:
    assert scale_burn_factor(share, 30 * DAY, window) == expected


def test_default_rules_for_30_days_are_exact() -> None:
    assert burn_rules_for_period(30 * DAY) == (
        BurnThreshold("page", HOUR, 300, 14.4),
        BurnThreshold("page", 6 * HOUR, 1800, 6.0),
        BurnThreshold("ticket", DAY, 2 * HOUR, 3.0),
        BurnThreshold("ticket", 3 * DAY, 6 * HOUR, 1.0),
    )


def test_rules_scale_with_period() -> None:
    thresholds = [t.threshold for t in burn_rules_for_period(90 * DAY)]
    assert thresholds == pytest.approx([43.2, 18.0, 9.0, 3.0])
    custom = (BurnRule("page", HOUR, 300, 0.5),)
    assert burn_rules_for_period(DAY, custom) == (BurnThreshold("page", HOUR, 300, 12.0),)


def _tiers(period: float) -> list[tuple[str, int, int, float]]:
    """Tiers as plain tuples, thresholds rounded so scaled floats compare exactly."""
    return [(t.severity, t.long_window_s, t.short_window_s, round(t.threshold, 9))
            for t in burn_rules_for_period(period)]


def test_seven_days_raise_the_day_ticket_to_one_and_drop_the_three_day_ticket() -> None:
    """Scaled, the tickets would be 0.7 and 0.23: both alert on a week ending under budget."""
    assert _tiers(7 * DAY) == [("page", HOUR, 300, 3.36), ("page", 6 * HOUR, 1800, 1.4),
                               ("ticket", DAY, 2 * HOUR, 1.0)]


def test_twenty_eight_days_keep_the_three_day_ticket_at_one() -> None:
    """0.93 is raised to 1; no faster ticket is at 1, so it stays (it catches burns 1-2.8)."""
    assert _tiers(28 * DAY) == [("page", HOUR, 300, 13.44), ("page", 6 * HOUR, 1800, 5.6),
                                ("ticket", DAY, 2 * HOUR, 2.8),
                                ("ticket", 3 * DAY, 6 * HOUR, 1.0)]


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        # one hour: only the 1h page fits; 0.02 is raised to 1
        (HOUR, [("page", HOUR, 300, 1.0)]),
        # one day: the 3d ticket does not fit; the 6h page is at 1 behind the 1h page
        (DAY, [("page", HOUR, 300, 1.0), ("ticket", DAY, 2 * HOUR, 1.0)]),
        # five days: the 6h page scales to exactly 1 and stays (no faster page is at 1)
        (5 * DAY, [("page", HOUR, 300, 2.4), ("page", 6 * HOUR, 1800, 1.0),
                   ("ticket", DAY, 2 * HOUR, 1.0)]),
    ],
)
def test_short_periods_drop_windows_longer_than_the_period_and_duplicates_at_one(
        period: int, expected: list[tuple[str, int, int, float]]) -> None:
    assert _tiers(period) == expected


def test_custom_rules_get_the_same_floor() -> None:
    rules = (BurnRule("ticket", DAY, 2 * HOUR, 0.05), BurnRule("ticket", 2 * DAY, 4 * HOUR, 0.05),
             BurnRule("page", 2 * DAY, HOUR, 0.05))
    assert burn_rules_for_period(7 * DAY, rules) == (
        BurnThreshold("ticket", DAY, 2 * HOUR, 1.0),  # 0.35 raised
        BurnThreshold("page", 2 * DAY, HOUR, 1.0),  # a page: not a duplicate of a ticket
    )


@pytest.mark.parametrize(
    ("share", "period", "window", "expected"),
    [(0.1, 7 * DAY, 3 * DAY, 1.0), (0.1, 30 * DAY, 3 * DAY, 1.0), (0.02, 7 * DAY, HOUR, 3.36)],
)
def test_scaled_burn_threshold_never_goes_below_one(
        share: float, period: float, window: float, expected: float) -> None:
    assert scaled_burn_threshold(share, period, window) == pytest.approx(expected)
    assert MIN_BURN_THRESHOLD == 1.0


@pytest.mark.parametrize(
    ("share", "period", "window"),
    [(0.0, DAY, HOUR), (1.5, DAY, HOUR), (0.1, 0, HOUR), (0.1, DAY, 0)],
)
def test_scale_burn_factor_rejects_nonsense(share: float, period: float, window: float) -> None:
    with pytest.raises(ValueError):
        scale_burn_factor(share, period, window)


def test_burn_windows_cover_every_default_rule() -> None:
    seconds = {s for _, s in BURN_WINDOWS}
    assert [s for _, s in BURN_WINDOWS] == sorted(seconds)
    for rule in DEFAULT_BURN_RULES:
        assert {rule.long_window_s, rule.short_window_s} <= seconds
        assert rule.short_window_s < rule.long_window_s


# --- properties ---------------------------------------------------------------------

counts = st.integers(min_value=1, max_value=10**12).flatmap(
    lambda total: st.tuples(st.integers(min_value=0, max_value=total), st.just(total))
)
objectives = st.floats(min_value=0.5, max_value=0.99999)


@given(counts=counts, objective=objectives)
def test_remaining_plus_consumed_is_one_and_consumed_is_burn(
    counts: tuple[int, int], objective: float
) -> None:
    good, total = counts
    remaining = budget_remaining(good, total, objective)
    consumed = budget_consumed(good, total, objective)
    assert remaining is not None and consumed is not None
    assert remaining + consumed == pytest.approx(1.0)
    assert consumed == burn_rate(good, total, objective)
    assert consumed >= 0.0
