"""`primewatch slo test`: synthetic series on a simulated clock, expectations with diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.slo_testing import SeriesPhase, minute_counts

EXAMPLES = Path(__file__).resolve().parent.parent / "slo" / "examples"


def test_the_shipped_workbook_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "test", str(EXAMPLES / "workbook.yaml")]) == 0
    out = capsys.readouterr().out
    assert "4 passed, 0 failed" in out
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
