"""Tests for slo.sketch: accuracy against exact order statistics, and exact merging."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slo.sketch import (
    ALPHA,
    GAMMA,
    MIN_VALUE,
    ZERO_BIN,
    add_to_bins,
    bin_index,
    bin_value,
    count_at_or_below,
    merge_bins,
    quantile,
)

# Float rounding in log() and pow() can put a value a few ulps past ALPHA; 1e-9 absorbs it.
TOLERANCE = ALPHA * (1 + 1e-9)


def sketch_of(values: Iterable[float]) -> dict[int, int]:
    bins: dict[int, int] = {}
    for value in values:
        add_to_bins(bins, value)
    return bins


def merged(*sketches: dict[int, int]) -> dict[int, int]:
    into: dict[int, int] = {}
    for bins in sketches:
        merge_bins(into, bins)
    return into


def exact_quantile(values: list[float], q: float) -> float:
    return sorted(values)[math.floor(q * (len(values) - 1))]


def assert_accurate(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    if exact <= MIN_VALUE:
        assert estimate == 0.0
    else:
        assert abs(estimate - exact) <= TOLERANCE * exact, (estimate, exact)


# --- bins ---------------------------------------------------------------------------


def test_zero_bin_is_a_32_bit_int_below_every_real_bin() -> None:
    assert ZERO_BIN == -(2**31)
    assert bin_index(0.0) == bin_index(MIN_VALUE) == bin_index(-1.0) == ZERO_BIN
    assert bin_index(math.nextafter(MIN_VALUE, 1.0)) > ZERO_BIN
    assert bin_value(ZERO_BIN) == 0.0


@pytest.mark.parametrize("value", [2e-6, 0.001, 0.0123, 0.25, 1.0, 3.7, 120.0, 86400.0])
def test_representative_value_is_within_alpha_and_maps_back(value: float) -> None:
    index = bin_index(value)
    assert abs(bin_value(index) - value) <= TOLERANCE * value
    assert bin_index(bin_value(index)) == index


def test_bin_bounds_are_powers_of_gamma() -> None:
    assert bin_index(1.0) == 0
    assert bin_index(GAMMA**3 * 0.999) == 3
    assert bin_index(GAMMA**3 * 1.001) == 4


def test_top_bin_cut_short_by_float_maximum_is_still_accurate() -> None:
    for value in (1.7637650858193227e308, sys.float_info.max):
        assert abs(bin_value(bin_index(value)) - value) <= TOLERANCE * value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_latency_is_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        bin_index(value)


def test_add_counts_and_rejects_negative_count() -> None:
    bins: dict[int, int] = {}
    add_to_bins(bins, 0.2, count=3)
    add_to_bins(bins, 0.2)
    add_to_bins(bins, 0.9, count=0)
    assert bins == {bin_index(0.2): 4}
    with pytest.raises(ValueError, match="count"):
        add_to_bins(bins, 0.2, count=-1)


# --- quantiles ----------------------------------------------------------------------


def test_empty_sketch_has_no_quantile() -> None:
    assert quantile({}, 0.5) is None
    assert quantile({bin_index(0.1): 0}, 0.5) is None


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_quantile_outside_unit_interval_is_rejected(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        quantile({bin_index(0.1): 1}, q)


def test_quantile_uses_lower_rank() -> None:
    # n=4, q=0.5: rank 1.5 -> the 2nd smallest value, as sorted(v)[floor(q*(n-1))].
    bins = sketch_of([0.1, 0.2, 0.3, 0.4])
    assert quantile(bins, 0.0) == bin_value(bin_index(0.1))
    assert quantile(bins, 0.5) == bin_value(bin_index(0.2))
    assert quantile(bins, 1.0) == bin_value(bin_index(0.4))


def test_tiny_latencies_are_reported_as_zero() -> None:
    assert quantile(sketch_of([0.0, 5e-7, 0.3]), 0.5) == 0.0


def _uniform(rng: random.Random) -> float:
    return rng.uniform(0.005, 2.0)


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.08), 1.2)


def _bimodal(rng: random.Random) -> float:
    # Cache hits around 3 ms, misses around 400 ms.
    return rng.gauss(0.003, 0.0005) if rng.random() < 0.7 else rng.gauss(0.4, 0.05)


@pytest.mark.parametrize("draw", [_uniform, _lognormal, _bimodal], ids=lambda f: f.__name__)
def test_percentiles_within_two_percent(draw: Callable[[random.Random], float]) -> None:
    rng = random.Random(20240601)
    values = [max(draw(rng), 0.0) for _ in range(20_000)]
    bins = sketch_of(values)
    for q in (0.5, 0.95, 0.99):
        exact = exact_quantile(values, q)
        estimate = quantile(bins, q)
        assert estimate is not None
        assert estimate == pytest.approx(exact, rel=0.02)
        assert_accurate(estimate, exact)


# --- count_at_or_below --------------------------------------------------------------


def test_count_at_or_below_never_misses_and_overcounts_within_gamma() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(math.log(0.2), 0.8) for _ in range(5_000)]
    bins = sketch_of(values)
    for threshold in (0.05, 0.2, 0.3, 1.0):
        counted = count_at_or_below(bins, threshold)
        assert sum(v <= threshold for v in values) <= counted
        assert counted <= sum(v <= threshold * GAMMA for v in values)
    assert count_at_or_below(bins, 0.0) == 0
    assert count_at_or_below({}, 1.0) == 0


# --- merging ------------------------------------------------------------------------


def test_merge_of_two_sketches_equals_sketch_of_union() -> None:
    rng = random.Random(42)
    a = [rng.expovariate(10.0) for _ in range(3_000)]
    b = [rng.lognormvariate(0.0, 1.0) for _ in range(2_000)]
    assert merged(sketch_of(a), sketch_of(b)) == sketch_of(a + b)
    assert quantile(merged(sketch_of(a), sketch_of(b)), 0.95) == quantile(sketch_of(a + b), 0.95)


def test_merge_adds_in_place_and_skips_empty_bins() -> None:
    into = {1: 2}
    merge_bins(into, {1: 3, 5: 0, 7: 1})
    assert into == {1: 5, 7: 1}


# --- properties ---------------------------------------------------------------------

latencies = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
value_lists = st.lists(latencies, min_size=1, max_size=200)
sketches = st.lists(latencies, max_size=50).map(sketch_of)


@settings(max_examples=150, deadline=None)
@given(values=value_lists, q=st.floats(min_value=0.0, max_value=1.0))
def test_quantile_is_within_alpha_of_exact_order_statistic(values: list[float], q: float) -> None:
    assert_accurate(quantile(sketch_of(values), q), exact_quantile(values, q))


@settings(max_examples=100, deadline=None)
@given(values=value_lists, q=st.floats(min_value=0.0, max_value=1.0))
def test_counted_values_are_consistent_with_quantile(values: list[float], q: float) -> None:
    bins = sketch_of(values)
    estimate = quantile(bins, q)
    assert estimate is not None
    assert count_at_or_below(bins, estimate) >= math.floor(q * (len(values) - 1)) + 1


@settings(max_examples=100, deadline=None)
@given(a=sketches, b=sketches, c=sketches)
def test_merge_is_associative_and_commutative(
    a: dict[int, int], b: dict[int, int], c: dict[int, int]
) -> None:
    assert merged(a, b) == merged(b, a)
    assert merged(merged(a, b), c) == merged(a, merged(b, c))
