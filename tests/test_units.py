"""The config's human units: durations, percentages and sizes, and their error messages."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.units import format_duration, parse_duration, parse_percent, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("30d", 30 * 86400.0),
        ("1w", 7 * 86400.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("1.5s", 1.5),
        ("  10S ", 10.0),
        ("0s", 0.0),
        ("10", 10.0),
        (" 2.5 ", 2.5),
        (10, 10.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts_units_and_bare_seconds(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10x", "", "   ", "s", "-5", "1h 30m", "ten seconds",
                                  "-5s", "5m-1s"])
def test_parse_duration_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*expected e\.g\. 500ms"):
        parse_duration(text)


def test_parse_duration_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(-1)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_parse_duration_refuses_infinity_and_nan(value: float) -> None:
    with pytest.raises(ValueError, match="must be a finite number"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False, None, [10], {"s": 10}])
def test_parse_duration_refuses_other_types(value: Any) -> None:
    # YAML turns `yes`/`no` into booleans; they must not become 1s and 0s.
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (1.5, "1s500ms"),
        (10, "10s"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (86400 + 1, "1d1s"),
        (30 * 86400, "30d"),
    ],
)
def test_format_duration_picks_the_largest_exact_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["500ms", "1s250ms", "10s", "5m", "1h30m", "30d", "1d2h3m4s"])
def test_format_duration_round_trips_through_parse(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("seconds", [0.001, 0.25, 1.5, 59, 61, 3599.5, 86399, 400 * 86400])
def test_parse_duration_reads_back_what_format_duration_writes(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "ratio"),
    [
        (99.9, 0.999),
        ("99.9", 0.999),
        ("99.9%", 0.999),
        (" 99.95 % ", 0.9995),
        (95, 0.95),
        (1, 0.01),
    ],
)
def test_parse_percent_reads_percent(value: Any, ratio: float) -> None:
    assert parse_percent(value) == pytest.approx(ratio)


def test_parse_percent_refuses_ratios_with_a_message_saying_why() -> None:
    with pytest.raises(ValueError) as info:
        parse_percent(0.999)
    message = str(info.value)
    assert "0.999 out of range" in message
    assert "written in percent" in message
    assert "e.g. 99.9" in message


@pytest.mark.parametrize("value", [0, 100, "100%", 150, -5, 0.5])
def test_parse_percent_refuses_values_out_of_range(value: Any) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_percent(value)


@pytest.mark.parametrize("value", ["ninety", "", "%", True, None, [99]])
def test_parse_percent_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid percentage"):
        parse_percent(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("1MiB", 1024**2),
        ("512KiB", 512 * 1024),
        ("10GB", 10 * 1000**3),
        ("1gib", 1024**3),
        ("2 kb", 2000),
        ("100b", 100),
        ("100", 100),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size_accepts_decimal_and_binary_units(value: Any, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["lots", "", "1TB", "MiB", "-1KiB", "1.5.2MiB", True, 1.5,
                                  None])
def test_parse_size_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid size .*expected e\.g\. 1MiB"):
        parse_size(value)


def test_parse_size_refuses_negative_integers() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_size(-1)
