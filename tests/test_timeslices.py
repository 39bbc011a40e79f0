"""Tests for slo.timeslices: the OpenSLO-style worked example, slice alignment, ragged
window edges, empty slices, and a property against per-minute counting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.budget import sli
from slo.timeslices import check_slice_seconds, ratio_timeslices, slice_counts, timeslices

T0 = 1_700_000_400  # a multiple of 300 and 60
assert T0 % 300 == 0


def minutes_of(*counts: tuple[int, int], start: int = T0) -> list[tuple[int, int, int]]:
    return [(start + 60 * i, good, total) for i, (good, total) in enumerate(counts)]


# --- the worked example ----------------------------------------------------------------

# Twelve one-minute slices: one perfect busy minute, eleven quiet half-failing ones.
EXAMPLE = minutes_of((978, 978), *[(1, 2)] * 11)
END = T0 + 12 * 60


def test_example_occurrences() -> None:
    good = sum(g for _, g, _ in EXAMPLE)
    total = sum(t for _, _, t in EXAMPLE)
    assert (good, total) == (989, 1000)
    assert sli(good, total) == 0.989


def test_example_ratio_timeslices() -> None:
    ratio_sum, slices = ratio_timeslices(EXAMPLE, start=T0, end=END, slice_seconds=60)
    assert (ratio_sum, slices) == (6.5, 12)
    assert round(ratio_sum / slices, 3) == 0.542


def test_example_timeslices() -> None:
    good, slices = timeslices(EXAMPLE, start=T0, end=END, slice_seconds=60, target=0.9)
    assert (good, slices) == (1, 12)
    assert round(good / slices, 3) == 0.083


# --- slices longer than a minute ------------------------------------------------------


def test_five_minute_slices_sum_their_minutes() -> None:
    minutes = minutes_of(
        (10, 10), (10, 10), (0, 1), (10, 10), (10, 10),  # slice 1: 40/41 = 0.976 -> good
        (5, 10), (10, 10), (10, 10), (10, 10), (10, 10),  # slice 2: 45/50 = 0.9 -> good
        (8, 10), (10, 10), (10, 10), (10, 10), (10, 11),  # slice 3: 48/51 = 0.941 -> bad
    )
    end = T0 + 15 * 60
    assert slice_counts(minutes, start=T0, end=end, slice_seconds=300) == {
        T0: (40, 41), T0 + 300: (45, 50), T0 + 600: (48, 51)}
    assert timeslices(minutes, start=T0, end=end, slice_seconds=300, target=0.95) == (1, 3)
    # 45/50 is exactly 0.9: a slice at its target is good.
    assert timeslices(minutes, start=T0, end=end, slice_seconds=300, target=0.9) == (3, 3)
    ratio_sum, slices = ratio_timeslices(minutes, start=T0, end=end, slice_seconds=300)
    assert slices == 3
    assert ratio_sum == pytest.approx(40 / 41 + 45 / 50 + 48 / 51)


def test_slices_are_aligned_to_the_epoch_not_the_window() -> None:
    # The window starts 2 minutes into a 5-minute slice: that slice keeps 3 minutes.
    minutes = minutes_of((0, 5), (0, 5), (9, 10), (10, 10), (10, 10), (1, 2))
    start = T0 + 120
    assert slice_counts(minutes, start=start, end=T0 + 600, slice_seconds=300) == {
        T0: (29, 30), T0 + 300: (1, 2)}


def test_ragged_edges_drop_minutes_outside_the_window() -> None:
    minutes = minutes_of((0, 1), (1, 1), (1, 1), (0, 1))
    # [T0 + 60, T0 + 180): only the two good minutes count; end is exclusive.
    assert timeslices(minutes, start=T0 + 60, end=T0 + 180, slice_seconds=60,
                      target=1.0) == (2, 2)
    assert timeslices(minutes, start=T0 + 60, end=T0 + 180, slice_seconds=300,
                      target=1.0) == (1, 1)


def test_empty_slices_are_neither_good_nor_counted() -> None:
    minutes = [*minutes_of((0, 0), (0, 0), (3, 3), start=T0), (T0 + 3600, 0, 0)]
    end = T0 + 7200
    assert timeslices(minutes, start=T0, end=end, slice_seconds=60, target=0.99) == (1, 1)
    assert ratio_timeslices(minutes, start=T0, end=end, slice_seconds=60) == (1.0, 1)
    assert timeslices([], start=T0, end=end, slice_seconds=60, target=0.99) == (0, 0)
    assert ratio_timeslices([], start=T0, end=end, slice_seconds=3600) == (0.0, 0)


def test_unordered_minutes_are_fine() -> None:
    minutes = list(reversed(minutes_of((1, 1), (0, 1), (1, 1))))
    assert timeslices(minutes, start=T0, end=T0 + 180, slice_seconds=60, target=1) == (2, 3)


@pytest.mark.parametrize("seconds", [0, 30, 90, 7 * 60, 86400 * 2, -60])
def test_slice_must_be_minutes_dividing_a_day(seconds: int) -> None:
    with pytest.raises(ValueError, match="timeslice"):
        check_slice_seconds(seconds)
    with pytest.raises(ValueError, match="timeslice"):
        timeslices([], start=T0, end=T0, slice_seconds=seconds, target=0.9)


@pytest.mark.parametrize("seconds", [60, 300, 600, 900, 1800, 3600, 86400])
def test_valid_slices(seconds: int) -> None:
    check_slice_seconds(seconds)


@pytest.mark.parametrize("target", [0.0, -0.5, 1.01, float("nan")])
def test_target_must_be_a_ratio(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        timeslices([], start=T0, end=T0 + 60, slice_seconds=60, target=target)


def test_impossible_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="cannot exceed"):
        timeslices([(T0, 3, 2)], start=T0, end=T0 + 60, slice_seconds=60, target=0.9)


# --- properties -------------------------------------------------------------------------

minute_counts = st.tuples(st.integers(0, 5), st.integers(0, 5)).map(
    lambda pair: (min(pair), max(pair)))


@given(st.lists(minute_counts, max_size=120), st.integers(0, 130), st.integers(0, 130))
def test_one_minute_slices_at_target_one_count_perfect_minutes(
    counts: list[tuple[int, int]], first: int, last: int
) -> None:
    minutes = minutes_of(*counts)
    start, end = T0 + 60 * min(first, last), T0 + 60 * max(first, last)
    inside = counts[min(first, last):max(first, last)]
    good, slices = timeslices(minutes, start=start, end=end, slice_seconds=60, target=1.0)
    assert good == sum(1 for g, t in inside if t and g == t)
    assert slices == sum(1 for _, t in inside if t)


@given(st.lists(minute_counts, max_size=120), st.sampled_from([60, 300, 900, 3600]),
       st.floats(0.01, 1.0))
def test_slices_partition_the_events(counts: list[tuple[int, int]], seconds: int,
                                     target: float) -> None:
    minutes = minutes_of(*counts)
    end = T0 + 60 * len(counts)
    per_slice = slice_counts(minutes, start=T0, end=end, slice_seconds=seconds)
    assert sum(g for g, _ in per_slice.values()) == sum(g for g, _ in counts)
    assert sum(t for _, t in per_slice.values()) == sum(t for _, t in counts)
    good, slices = timeslices(minutes, start=T0, end=end, slice_seconds=seconds,
                              target=target)
    ratio_sum, same = ratio_timeslices(minutes, start=T0, end=end, slice_seconds=seconds)
    assert 0 <= good <= slices == same == len(per_slice)
    assert 0.0 <= ratio_sum <= slices
