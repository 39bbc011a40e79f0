"""`primewatch slo test`: synthetic series on a simulated clock, expectations with diffs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from monitor.cli import main
from monitor.slo_testing import SeriesPhase, SloTestFile, minute_counts, run_test
from slo.alerting import BurnRateAlerter
from slo.budget import burn_rules_for_period

EXAMPLES = Path(__file__).resolve().parent.parent / "slo" / "examples"


def test_the_shipped_workbook_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "test", str(EXAMPLES / "workbook.yaml")]) == 0
    out = capsys.readouterr().out
    assert "5 passed, 0 failed" in out
    assert "a 100% outage pages within about a minute (page at 2d1m)" in out


def test_a_wrong_expectation_fails_with_a_diff(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    test = tmp_path / "t.yaml"
    test.write_text("""
name: outage should page
slo: {objective: 99.9, window: 30d}
series:
  - {for: 1d, good: 100}
  - {for: 10m, good: 0}
expect:
  - {at: 1d5m, alerts: [ticket]}
""")
    assert main(["slo", "test", str(test)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "at 1d5m: expected ['ticket'], got ['page']" in out
    assert "1 passed" not in out and "0 passed, 1 failed" in out


def test_an_invalid_file_is_a_usage_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    test = tmp_path / "bad.yaml"
    test.write_text("slo: {objective: 99.9}\nseries: []\nexpect: []\n")
    assert main(["slo", "test", str(test)]) == 2
    assert "cannot load" in capsys.readouterr().out


def test_fractional_error_ratios_are_spread_exactly_over_minutes() -> None:
    minutes = minute_counts([SeriesPhase.model_validate({"for": "1d", "good": 99.95})], 6.0)
    assert len(minutes) == 1440
    total = sum(t for _, t in minutes)
    bad = total - sum(g for g, _ in minutes)
    assert total == 8640
    assert bad == round(8640 * 0.0005)  # 4.32 → 4 bad events, not 0 and not 1440


def outcome_of(text: str) -> tuple[list[str], dict[str, float]]:
    result = run_test(SloTestFile.model_validate(yaml.safe_load(text)))
    return result.failures, result.first_fired


# A burn of 5.9 for 8 hours after 3 clean days: over February's 6h page threshold
# (0.05 x 28d / 6h = 5.6), under March's (0.05 x 31d / 6h = 6.2).
MONTH_TEST = """
slo: {{objective: 99.9, window: month}}
start: {start}
events_per_minute: 600
series:
  - {{for: 3d, good: 100}}
  - {{for: 8h, good: 99.41}}
expect:
  - {{at: 3d8h, alerts: {alerts}}}
"""


@pytest.mark.parametrize(("start", "alerts"), [
    ("2026-02-01T00:00:00Z", ["page"]),
    ("2026-02-01", ["page"]),  # a date: midnight in the SLO's time zone (UTC)
    ("2026-03-01T00:00:00Z", []),
])
def test_calendar_months_scale_their_tiers_to_the_month_of_the_series(
        start: str, alerts: list[str]) -> None:
    failures, _ = outcome_of(MONTH_TEST.format(start=start, alerts=alerts))
    assert failures == []


def test_tiers_follow_the_calendar_across_a_month_boundary() -> None:
    """Like the engine: a new month scales the tiers anew and keeps the open alert, which
    March's higher page threshold turns into a ticket."""
    failures, fired = outcome_of("""
slo: {objective: 99.9, window: month}
start: 2026-02-25T00:00:00Z
events_per_minute: 600
series:
  - {for: 3d, good: 100}
  - {for: 1d12h, good: 99.41}
expect:
  - {at: 3d6h, until: 3d23h59m, alerts: [page]}
  - {at: 4d, until: 4d12h, alerts: [ticket]}
""")
    assert failures == []
    assert fired["page"] < 3 * 86400 + 6 * 3600


def test_a_range_expectation_reports_when_it_first_broke() -> None:
    failures, _ = outcome_of("""
slo: {objective: 99.9, window: 30d}
series:
  - {for: 12h, good: 100}
  - {for: 12h, good: 0}
expect:
  - {at: 0m, until: 1d, alerts: []}
""")
    assert len(failures) == 1
    assert failures[0].startswith("from 0s to 1d: expected none, got ['page'] at 12h1m")


def test_a_range_past_the_series_is_reported() -> None:
    failures, _ = outcome_of("""
slo: {objective: 99.9, window: 30d}
series:
  - {for: 1h, good: 100}
expect:
  - {at: 0m, until: 2h, alerts: []}
""")
    assert failures == ["from 0s to 2h: beyond the series"]


window_counts = st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(
    lambda c: (min(c), max(c)))


@given(steps=st.lists(st.fixed_dictionaries(
    {s: window_counts for s in (300, 1800, 3600, 7200, 21600, 86400, 259200)}),
    min_size=1, max_size=20))
def test_a_second_look_at_the_same_counts_changes_nothing(
        steps: list[dict[int, Any]]) -> None:
    """The runner skips evaluations whose counts did not change: that is exact only while
    the alerter decides from counts and state alone. This fails if that ever changes."""
    alerter = BurnRateAlerter(burn_rules_for_period(30 * 86400), min_events=10)
    now = 0.0
    for counts in steps:
        first = alerter.evaluate(now, counts, 0.999)
        state = alerter.state
        again = alerter.evaluate(now + 60, counts, 0.999)
        assert (again.severity, again.tier, again.reason, again.since) == (
            first.severity, first.tier, first.reason, first.since)
        assert again.transition is None
        assert alerter.state == state
        now += 120
