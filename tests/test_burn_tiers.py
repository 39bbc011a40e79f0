"""Burn-rate tiers never alert on a burn below 1, for every window a config allows, and
the shipped `slo test` examples (slo/examples/*.yaml) keep passing."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.config_slo import SloConfig
from monitor.slo_engine import alert_tiers, window_spec
from monitor.slo_testing import load, run_files
from slo.budget import BurnThreshold
from slo.windows import period_seconds

MINUTE = 60
HOUR = 3600
DAY = 86400
EXAMPLES = Path(__file__).resolve().parent.parent / "slo" / "examples"
ZONES = sorted(zoneinfo.available_timezones())
WORKBOOK_30D = (
    BurnThreshold("page", HOUR, 5 * MINUTE, 14.4),
    BurnThreshold("page", 6 * HOUR, 30 * MINUTE, 6.0),
    BurnThreshold("ticket", DAY, 2 * HOUR, 3.0),
    BurnThreshold("ticket", 3 * DAY, 6 * HOUR, 1.0),
)


def slo(window: str | float, **extra: Any) -> SloConfig:
    return SloConfig.model_validate({"name": "s", "target": "t", "sli": "availability",
                                     "objective": 99.9, "window": window, **extra})


def tiers_now(config: SloConfig, now: float) -> tuple[BurnThreshold, ...]:
    """The tiers the engine alerts on at `now`: scaled to the period it computes."""
    return alert_tiers(config, period_seconds(window_spec(config), now))


def check_tiers(tiers: tuple[BurnThreshold, ...], period: int) -> None:
    """What every period must get, whatever its length."""
    assert tiers, "an SLO without tiers would never alert"
    assert all(t.threshold >= 1 for t in tiers), tiers  # below 1 the period ends in budget
    assert all(t.long_window_s <= period for t in tiers), tiers
    # The fast page survives every period, so a total outage always pages within minutes.
    assert tiers[0][:3] == ("page", HOUR, 5 * MINUTE), tiers
    if period <= 30 * DAY:
        # Some tier sits at exactly 1: every steady burn that would overspend alerts.
        assert min(t.threshold for t in tiers) == 1.0, tiers


@pytest.mark.parametrize("window", ["1h", "1d", "7d", "28d", "30d", "90d"])
def test_rolling_windows_never_alert_below_one(window: str) -> None:
    config = slo(window)
    check_tiers(tiers_now(config, 0.0), int(config.window))


def test_thirty_days_are_exactly_the_workbook_tiers() -> None:
    assert tiers_now(slo("30d"), 0.0) == WORKBOOK_30D


@given(minutes=st.integers(min_value=60, max_value=400 * 1440))
@example(minutes=60)
@example(minutes=7 * 1440)
@example(minutes=28 * 1440)
@example(minutes=90 * 1440 - 60)  # as long as the shortest calendar quarter ...
@example(minutes=92 * 1440 + 60)  # ... and the longest, with a DST hour
def test_any_rolling_window_never_alerts_below_one(minutes: int) -> None:
    config = slo(minutes * MINUTE)
    check_tiers(tiers_now(config, 0.0), minutes * MINUTE)


@given(unit=st.sampled_from(["week", "month", "quarter"]), zone=st.sampled_from(ZONES),
       now=st.integers(min_value=0, max_value=4_102_444_800))  # 1970 .. 2100
@example(unit="month", zone="UTC", now=1_770_000_000)  # February 2026: 28 days
@example(unit="week", zone="Europe/Berlin", now=1_774_500_000)  # 167 h (DST starts)
@example(unit="week", zone="Pacific/Apia", now=1_325_000_000)  # Dec 2011: a 6-day week
@example(unit="quarter", zone="Europe/Berlin", now=1_774_500_000)  # Q1 2026: 90 d - 1 h
@example(unit="quarter", zone="Pacific/Apia", now=1_325_000_000)  # Q4 2011: a day skipped
@example(unit="quarter", zone="Antarctica/Troll", now=1_774_500_000)  # 90 d - 2 h
def test_calendar_windows_never_alert_below_one(unit: str, zone: str, now: int) -> None:
    config = slo(unit, timezone=zone)
    period = period_seconds(window_spec(config), now)
    tiers = tiers_now(config, now)
    check_tiers(tiers, period)
    if unit == "quarter":  # about 90 to 92 days: the Workbook's four tiers, none raised
        assert [t.long_window_s for t in tiers] == [t.long_window_s for t in WORKBOOK_30D]
        assert [t.threshold for t in tiers] == pytest.approx(
            [share * period / t.long_window_s for share, t in zip(
                (0.02, 0.05, 0.10, 0.10), tiers, strict=True)])
        assert min(t.threshold for t in tiers) > 2.9  # the 3d ticket, 3 for 90 days
    elif unit == "month":  # 28 to 31 days (+-1h): the Workbook's four tiers, raised to 1
        assert [t.long_window_s for t in tiers] == [t.long_window_s for t in WORKBOOK_30D]
    else:  # about 7 days: the 3d ticket is dropped, the 1d ticket raised to 1
        assert [t.long_window_s for t in tiers] == [HOUR, 6 * HOUR, DAY]


def test_a_berlin_quarter_holding_spring_forward_scales_to_90_days_minus_an_hour() -> None:
    config = slo("quarter", timezone="Europe/Berlin")
    now = 1_774_778_400  # 2026-03-29T12:00:00+02:00
    assert period_seconds(window_spec(config), now) == 90 * DAY - HOUR
    assert [round(t.threshold, 4) for t in tiers_now(config, now)] == [
        43.18, 17.9917, 8.9958, 2.9986]


@given(share=st.floats(min_value=1, max_value=99.9),
       long_hours=st.integers(min_value=1, max_value=24 * 7),
       window=st.sampled_from(["1h", "1d", "7d", "28d", "30d", "90d", "week", "month",
                               "quarter"]),
       now=st.integers(min_value=0, max_value=4_102_444_800))
def test_own_budget_share_tiers_are_raised_to_one(share: float, long_hours: int, window: str,
                                                  now: int) -> None:
    config = slo(window, alerts={"burn_rates": [
        {"severity": "ticket", "long_window": f"{long_hours}h",
         "short_window": f"{long_hours * 5}m", "budget_share": share}]})
    (tier,) = tiers_now(config, now)
    period = period_seconds(window_spec(config), now)
    scaled = share / 100 * period / (long_hours * HOUR)
    assert tier.threshold >= 1
    assert tier.threshold == pytest.approx(max(1.0, scaled))  # raised only when below 1


@pytest.mark.parametrize("threshold", [0.5, 0.99, 0])
def test_an_own_threshold_below_one_is_a_config_error(threshold: float) -> None:
    with pytest.raises(ValidationError) as error:
        slo("30d", alerts={"burn_rates": [{"severity": "page", "long_window": "1h",
                                            "short_window": "5m", "threshold": threshold}]})
    assert "must be at least 1" in str(error.value)
    assert "the SLO is met and nothing should alert" in str(error.value)


def test_an_own_threshold_of_one_is_accepted() -> None:
    config = slo("30d", alerts={"burn_rates": [{"severity": "page", "long_window": "1h",
                                                "short_window": "5m", "threshold": 1}]})
    assert [t.threshold for t in tiers_now(config, 0.0)] == [1.0]


# --- the shipped examples -------------------------------------------------------------

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_there_is_an_example_per_window() -> None:
    windows = set()
    for path in EXAMPLE_FILES:
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            windows.add(str(item["slo"]["window"]))
    assert {"7d", "28d", "30d", "90d", "week", "month", "quarter"} <= windows


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_shipped_example_passes(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through `run_files`, what `primewatch slo test FILE` runs; each window's file
    says that a burn of 0.9 never alerts and that a 100% outage pages within 2 minutes."""
    names = [test.name for test in load(path)]
    assert any("0.9x for the whole window never alerts" in name for name in names)
    assert any("100% outage pages within" in name for name in names)
    code = run_files([str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(names)} passed, 0 failed" in out
