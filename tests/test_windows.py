"""Tests for slo.windows: rolling and calendar bounds across zones and DST, and the
day/hour/minute split of a window."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.windows import (
    WindowSpec,
    period_bounds,
    period_seconds,
    split_by_resolution,
    window_bounds,
)

MINUTE, HOUR, DAY = 60, 3600, 86400


def at(iso: str) -> float:
    """Epoch seconds of an ISO timestamp with an explicit offset."""
    return datetime.fromisoformat(iso).timestamp()


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "unit"),
    [("month", "month"), ("calendar_month", "month"), ("week", "week"),
     ("calendar_week", "week"), (" Month ", "month"), ("quarter", "quarter"),
     ("calendar_quarter", "quarter"), (" QUARTER ", "quarter")],
)
def test_parse_calendar(window: str, unit: str) -> None:
    spec = WindowSpec.parse(window, "Europe/Berlin")
    assert spec == WindowSpec("calendar", unit=unit, timezone="Europe/Berlin")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window", "seconds"),
    [(30 * DAY, 30 * DAY), (2592000.0, 30 * DAY), ("2592000", 30 * DAY), ("30d", 30 * DAY),
     ("28d", 28 * DAY), ("1h", HOUR), ("2w", 14 * DAY)],
)
def test_parse_rolling(window: str | float, seconds: int) -> None:
    assert WindowSpec.parse(window) == WindowSpec("rolling", seconds=seconds)


@pytest.mark.parametrize("window", [0, -60, 90, 3601.5, float("nan"), float("inf"), True,
                                    "fortnight", "30 days", "", "quarterly", "1q"])
def test_parse_rejects_bad_windows(window: str | float) -> None:
    with pytest.raises(ValueError, match="window"):
        WindowSpec.parse(window)


def test_an_unknown_window_name_lists_every_calendar_unit() -> None:
    with pytest.raises(ValueError, match=r"^invalid SLO window 'quarterly': expected month, "
                                         r"quarter, week or a duration \(30d\)$"):
        WindowSpec.parse("quarterly")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "UTC+2"])
def test_unknown_timezone_is_a_clear_value_error(zone: str) -> None:
    with pytest.raises(ValueError, match=r"unknown time zone .*IANA"):
        WindowSpec.parse("month", zone)


def test_invalid_specs_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="unit quarter, month or week, got None"):
        WindowSpec("calendar")
    with pytest.raises(ValueError, match="unit quarter, month or week, got 'year'"):
        WindowSpec("calendar", unit="year")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no unit"):
        WindowSpec("rolling", seconds=HOUR, unit="quarter")
    with pytest.raises(ValueError, match="whole minutes"):
        WindowSpec("rolling", seconds=0)
    with pytest.raises(ValueError, match="week_start"):
        WindowSpec("calendar", unit="week", week_start=7)


# --- rolling ---------------------------------------------------------------------------


def test_rolling_window_ends_with_the_current_minute() -> None:
    now = at("2024-05-15T10:20:30+00:00")
    start, end = window_bounds(WindowSpec.parse(30 * DAY), now)
    assert end == at("2024-05-15T10:21:00+00:00")
    assert start == end - 30 * DAY
    assert period_seconds(WindowSpec.parse(30 * DAY), now) == 30 * DAY


def test_rolling_window_on_a_minute_boundary_includes_that_minute() -> None:
    now = at("2024-05-15T10:20:00+00:00")
    assert window_bounds(WindowSpec.parse(HOUR), now) == (int(now) - HOUR + 60, int(now) + 60)


# --- calendar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "start", "days"),
    [
        ("2024-02-29T23:59:59+00:00", "2024-02-01T00:00:00+00:00", 29),  # leap February
        ("2023-02-14T12:00:00+00:00", "2023-02-01T00:00:00+00:00", 28),
        ("2024-04-01T00:00:00+00:00", "2024-04-01T00:00:00+00:00", 30),  # first second
        ("2024-12-31T23:59:00+00:00", "2024-12-01T00:00:00+00:00", 31),  # year end
        ("2100-02-10T00:00:00+00:00", "2100-02-01T00:00:00+00:00", 28),  # not a leap year
    ],
)
def test_calendar_month_utc(now: str, start: str, days: int) -> None:
    spec = WindowSpec.parse("month")
    begin, end = window_bounds(spec, at(now))
    assert begin == at(start)
    assert end == (int(at(now)) // 60 + 1) * 60
    assert period_seconds(spec, at(now)) == days * DAY


def test_calendar_week_utc_starts_on_monday_or_configured_day() -> None:
    now = at("2024-05-15T10:00:00+00:00")  # a Wednesday
    assert window_bounds(WindowSpec.parse("week"), now)[0] == at("2024-05-13T00:00:00+00:00")
    sunday = WindowSpec.parse("week", week_start=6)
    assert window_bounds(sunday, now)[0] == at("2024-05-12T00:00:00+00:00")
    assert period_seconds(sunday, now) == 7 * DAY
    monday = at("2024-05-13T00:00:30+00:00")
    assert window_bounds(WindowSpec.parse("week"), monday) == (int(monday) - 30,
                                                               int(monday) + 30)


def test_new_york_march_is_31_days_minus_an_hour() -> None:
    spec = WindowSpec.parse("month", "America/New_York")
    now = at("2024-03-20T12:00:00+00:00")
    assert window_bounds(spec, now)[0] == at("2024-03-01T00:00:00-05:00")
    assert period_seconds(spec, now) == 31 * DAY - HOUR
    assert period_bounds(spec, now) == (at("2024-03-01T00:00:00-05:00"),
                                        at("2024-04-01T00:00:00-04:00"))


def test_new_york_november_is_30_days_plus_an_hour() -> None:
    spec = WindowSpec.parse("month", "America/New_York")
    now = at("2024-11-20T12:00:00+00:00")
    assert window_bounds(spec, now)[0] == at("2024-11-01T00:00:00-04:00")
    assert period_seconds(spec, now) == 30 * DAY + HOUR


def test_new_york_month_boundary_is_local_not_utc() -> None:
    spec = WindowSpec.parse("month", "America/New_York")
    # 2 a.m. UTC on April 1st is still March 31st in New York.
    now = at("2024-04-01T02:00:00+00:00")
    assert window_bounds(spec, now)[0] == at("2024-03-01T00:00:00-05:00")


@pytest.mark.parametrize(
    ("now", "start", "hours"),
    [
        ("2024-03-12T12:00:00+00:00", "2024-03-11T00:00:00-04:00", 168),
        ("2024-03-10T12:00:00+00:00", "2024-03-04T00:00:00-05:00", 167),  # spring forward
        ("2024-11-03T12:00:00+00:00", "2024-10-28T00:00:00-04:00", 169),  # fall back
    ],
)
def test_new_york_weeks_across_dst(now: str, start: str, hours: int) -> None:
    spec = WindowSpec.parse("week", "America/New_York")
    assert window_bounds(spec, at(now))[0] == at(start)
    assert period_seconds(spec, at(now)) == hours * HOUR


def test_kolkata_half_hour_offset() -> None:
    spec = WindowSpec.parse("month", "Asia/Kolkata")
    now = at("2024-02-10T00:00:00+00:00")
    start, _ = window_bounds(spec, now)
    assert start == at("2024-02-01T00:00:00+05:30") == at("2024-01-31T18:30:00+00:00")
    assert start % 60 == 0 and start % 3600 == 1800
    assert period_seconds(spec, now) == 29 * DAY
    week = WindowSpec.parse("week", "Asia/Kolkata")
    assert window_bounds(week, now)[0] == at("2024-02-05T00:00:00+05:30")


@pytest.mark.parametrize(
    ("now", "start", "seconds"),
    [
        # DST starts on 6 Oct 2024 at 02:00 (+10:30 -> +11:00): 30 minutes shorter.
        ("2024-10-10T00:00:00+00:00", "2024-10-01T00:00:00+10:30", 31 * DAY - 30 * MINUTE),
        # DST ends on 7 Apr 2024 at 02:00 (+11:00 -> +10:30): 30 minutes longer.
        ("2024-04-10T00:00:00+00:00", "2024-04-01T00:00:00+11:00", 30 * DAY + 30 * MINUTE),
    ],
)
def test_lord_howe_thirty_minute_dst(now: str, start: str, seconds: int) -> None:
    spec = WindowSpec.parse("month", "Australia/Lord_Howe")
    assert window_bounds(spec, at(now))[0] == at(start)
    assert period_seconds(spec, at(now)) == seconds


def test_lord_howe_week_across_dst_change() -> None:
    spec = WindowSpec.parse("week", "Australia/Lord_Howe")
    now = at("2024-10-06T14:00:00+00:00")  # 01:00 on Monday 7 Oct, local
    assert window_bounds(spec, now)[0] == at("2024-10-07T00:00:00+11:00")
    sunday = at("2024-10-05T20:00:00+00:00")  # Sunday 6 Oct, after the change
    assert window_bounds(spec, sunday)[0] == at("2024-09-30T00:00:00+10:30")
    assert period_seconds(spec, sunday) == 7 * DAY - 30 * MINUTE


def test_midnight_skipped_by_dst_still_starts_the_day() -> None:
    # Santiago springs forward at 00:00 on 8 Sep 2024: that day starts at 01:00 (-03).
    spec = WindowSpec.parse("week", "America/Santiago", week_start=6)  # Sunday
    start, _ = window_bounds(spec, at("2024-09-09T12:00:00+00:00"))
    assert start == at("2024-09-08T01:00:00-03:00")


# --- calendar quarter -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "start", "end", "days"),
    [
        ("2026-02-14T12:00:00+00:00", "2026-01-01T00:00:00+00:00",
         "2026-04-01T00:00:00+00:00", 90),
        ("2024-03-31T23:59:59+00:00", "2024-01-01T00:00:00+00:00",
         "2024-04-01T00:00:00+00:00", 91),  # a leap year's first quarter, its last second
        ("2026-04-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00",
         "2026-07-01T00:00:00+00:00", 91),  # the quarter's first second
        ("2026-06-30T23:59:59+00:00", "2026-04-01T00:00:00+00:00",
         "2026-07-01T00:00:00+00:00", 91),
        ("2026-08-31T12:00:00+00:00", "2026-07-01T00:00:00+00:00",
         "2026-10-01T00:00:00+00:00", 92),
        ("2026-12-31T23:59:00+00:00", "2026-10-01T00:00:00+00:00",
         "2027-01-01T00:00:00+00:00", 92),  # the year end
    ],
)
def test_calendar_quarter_utc(now: str, start: str, end: str, days: int) -> None:
    spec = WindowSpec.parse("quarter")
    assert period_bounds(spec, at(now)) == (at(start), at(end))
    assert window_bounds(spec, at(now)) == (at(start), (int(at(now)) // 60 + 1) * 60)
    assert period_seconds(spec, at(now)) == days * DAY


def test_berlin_first_quarter_is_90_days_minus_an_hour() -> None:
    spec = WindowSpec.parse("calendar_quarter", "Europe/Berlin")
    now = at("2026-03-29T12:00:00+02:00")  # the day summer time starts
    assert period_bounds(spec, now) == (at("2026-01-01T00:00:00+01:00"),
                                        at("2026-04-01T00:00:00+02:00"))
    assert window_bounds(spec, now)[0] == at("2025-12-31T23:00:00+00:00")
    assert period_seconds(spec, now) == 90 * DAY - HOUR


@pytest.mark.parametrize(
    ("zone", "now", "start", "end", "seconds"),
    [
        # Berlin: summer time ends 25 Oct 2026, in the fourth quarter.
        ("Europe/Berlin", "2026-11-15T12:00:00+00:00", "2026-10-01T00:00:00+02:00",
         "2027-01-01T00:00:00+01:00", 92 * DAY + HOUR),
        ("Europe/Berlin", "2026-05-15T12:00:00+00:00", "2026-04-01T00:00:00+02:00",
         "2026-07-01T00:00:00+02:00", 91 * DAY),  # no change in summer
        # Sydney, the other way round: DST ends 5 Apr 2026, starts 4 Oct 2026.
        ("Australia/Sydney", "2026-05-15T12:00:00+00:00", "2026-04-01T00:00:00+11:00",
         "2026-07-01T00:00:00+10:00", 91 * DAY + HOUR),
        ("Australia/Sydney", "2026-11-15T12:00:00+00:00", "2026-10-01T00:00:00+10:00",
         "2027-01-01T00:00:00+11:00", 92 * DAY - HOUR),
    ],
)
def test_quarters_across_dst(zone: str, now: str, start: str, end: str, seconds: int) -> None:
    spec = WindowSpec.parse("quarter", zone)
    assert period_bounds(spec, at(now)) == (at(start), at(end))
    assert period_seconds(spec, at(now)) == seconds


def test_new_york_quarter_boundary_is_local_not_utc() -> None:
    spec = WindowSpec.parse("quarter", "America/New_York")
    # 2 a.m. UTC on April 1st is still March 31st in New York: the first quarter.
    now = at("2024-04-01T02:00:00+00:00")
    assert period_bounds(spec, now) == (at("2024-01-01T00:00:00-05:00"),
                                        at("2024-04-01T00:00:00-04:00"))
    assert period_seconds(spec, now) == 91 * DAY - HOUR  # leap year, spring forward
    assert window_bounds(spec, at("2024-04-01T04:00:00+00:00"))[0] == at(
        "2024-04-01T00:00:00-04:00")


def test_kolkata_quarter_starts_on_a_half_hour() -> None:
    spec = WindowSpec.parse("quarter", "Asia/Kolkata")
    now = at("2024-03-31T19:00:00+00:00")  # 00:30 on 1 April, local
    start, _ = window_bounds(spec, now)
    assert start == at("2024-04-01T00:00:00+05:30") == at("2024-03-31T18:30:00+00:00")
    assert start % 3600 == 1800
    assert period_seconds(spec, now) == 91 * DAY
    before = at("2024-03-31T18:00:00+00:00")  # 23:30 on 31 March, local
    assert window_bounds(spec, before)[0] == at("2024-01-01T00:00:00+05:30")


@pytest.mark.parametrize(
    ("now", "start", "seconds"),
    [
        # DST starts on 6 Oct 2024 (+10:30 -> +11:00): the quarter is 30 minutes shorter.
        ("2024-11-10T00:00:00+00:00", "2024-10-01T00:00:00+10:30", 92 * DAY - 30 * MINUTE),
        # DST ends on 7 Apr 2024 (+11:00 -> +10:30): 30 minutes longer.
        ("2024-05-10T00:00:00+00:00", "2024-04-01T00:00:00+11:00", 91 * DAY + 30 * MINUTE),
        ("2024-08-10T00:00:00+00:00", "2024-07-01T00:00:00+10:30", 92 * DAY),
    ],
)
def test_lord_howe_quarters_with_thirty_minute_dst(now: str, start: str, seconds: int) -> None:
    spec = WindowSpec.parse("quarter", "Australia/Lord_Howe")
    assert window_bounds(spec, at(now))[0] == at(start)
    assert period_seconds(spec, at(now)) == seconds


@given(st.integers(0, 4_000_000_000), st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
     "America/Santiago"]))
def test_a_quarter_is_three_local_months(now: int, zone: str) -> None:
    """The quarter starts on the 1st of Jan/Apr/Jul/Oct and is exactly the three months
    the month window reads, one after the other."""
    quarter = WindowSpec.parse("quarter", zone)
    month = WindowSpec.parse("month", zone)
    start, end = period_bounds(quarter, now)
    local = datetime.fromtimestamp(start, ZoneInfo(zone))
    assert (local.month, local.day) in {(1, 1), (4, 1), (7, 1), (10, 1)}
    months = [period_bounds(month, start)]
    for _ in range(2):
        months.append(period_bounds(month, months[-1][1]))
    assert months[0][0] == start and months[-1][1] == end
    assert 90 * DAY - HOUR <= period_seconds(quarter, now) <= 92 * DAY + HOUR


@given(st.integers(0, 4_000_000_000), st.sampled_from(
    ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Asia/Kathmandu"]))
def test_calendar_bounds_hold_now_and_are_whole_minutes(now: int, zone: str) -> None:
    for unit in ("quarter", "month", "week"):
        spec = WindowSpec.parse(unit, zone)
        start, end = window_bounds(spec, now)
        assert start % 60 == 0 and end % 60 == 0
        assert start <= now < end
        assert end - start <= period_seconds(spec, now)


# --- split_by_resolution -----------------------------------------------------------------


def test_split_of_aligned_days_is_one_range() -> None:
    assert split_by_resolution(10 * DAY, 40 * DAY) == [(DAY, 10 * DAY, 40 * DAY)]


def test_split_of_ragged_window() -> None:
    start = 10 * DAY + 5 * HOUR + 30 * MINUTE
    end = 12 * DAY + 2 * HOUR + 7 * MINUTE
    assert split_by_resolution(start, end) == [
        (MINUTE, start, 10 * DAY + 6 * HOUR),
        (HOUR, 10 * DAY + 6 * HOUR, 11 * DAY),
        (DAY, 11 * DAY, 12 * DAY),
        (HOUR, 12 * DAY, 12 * DAY + 2 * HOUR),
        (MINUTE, 12 * DAY + 2 * HOUR, end),
    ]


def test_split_of_short_window_uses_minutes_only() -> None:
    assert split_by_resolution(HOUR + 60, HOUR + 600) == [(MINUTE, HOUR + 60, HOUR + 600)]
    assert split_by_resolution(HOUR, HOUR) == []


def test_split_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="multiples of 60"):
        split_by_resolution(30, 120)
    with pytest.raises(ValueError, match="after its end"):
        split_by_resolution(120, 60)
    with pytest.raises(ValueError, match="strictly decreasing"):
        split_by_resolution(0, 60, (60, 3600))
    with pytest.raises(ValueError, match="multiple of the finest"):
        split_by_resolution(0, 60, (90, 60))


def assert_exact_cover(start: int, end: int, ranges: list[tuple[int, int, int]]) -> None:
    cursor = start
    for resolution, first, last in ranges:  # sorted, so disjoint means contiguous here
        assert first == cursor
        assert first < last
        assert first % resolution == 0 and last % resolution == 0
        cursor = last
    assert cursor == end


@given(st.integers(0, 2_000_000_000 // 60), st.integers(0, 90 * DAY // 60))
def test_split_covers_window_exactly(start_minute: int, minutes: int) -> None:
    start, end = start_minute * 60, (start_minute + minutes) * 60
    assert_exact_cover(start, end, split_by_resolution(start, end))


@given(st.integers(0, 2_000_000_000 // 60))
def test_split_of_30_days_reads_few_buckets(start_minute: int) -> None:
    start = start_minute * 60
    end = start + 30 * DAY
    ranges = split_by_resolution(start, end)
    assert_exact_cover(start, end, ranges)
    buckets = sum((last - first) // resolution for resolution, first, last in ranges)
    assert buckets <= 30 + 2 * 24 + 2 * 60


@given(st.integers(0, 10**7), st.integers(0, 10**5),
       st.sampled_from([(3600, 60), (86400, 900, 300, 60), (600,)]))
def test_split_with_other_resolutions(start_unit: int, units: int,
                                      resolutions: tuple[int, ...]) -> None:
    finest = resolutions[-1]
    start, end = start_unit * finest, (start_unit + units) * finest
    ranges = split_by_resolution(start, end, resolutions)
    assert_exact_cover(start, end, ranges)
    assert {resolution for resolution, _, _ in ranges} <= set(resolutions)
