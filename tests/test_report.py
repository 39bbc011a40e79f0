"""`primewatch report`: per-day/week compliance from rollups, checked against hand counts."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from monitor import cli_report
from monitor.config_loader import LoadedConfig, parse_config
from monitor.ingest import ResultWriter
from monitor.report import build_report, periods, summarize, to_markdown
from monitor.storage.alert_events import AlertEvent, record
from monitor.storage.engine import make_engine
from probes.base import ProbeResult

AVAILABILITY, LATENCY = "api-availability", "api-latency"
NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()  # long after the data
# Good / total per UTC day of the data below, by SLO; 2026-03-06 has no data.
DAILY = {
    AVAILABILITY: {"2026-03-02": (96, 96), "2026-03-03": (96, 96), "2026-03-04": (90, 96),
                   "2026-03-05": (92, 96), "2026-03-06": None, "2026-03-07": (48, 48),
                   "2026-03-08": (96, 96), "2026-03-09": (8, 8)},
    LATENCY: {"2026-03-02": (96, 96), "2026-03-03": (84, 96), "2026-03-04": (90, 96),
              "2026-03-05": (92, 96), "2026-03-06": None, "2026-03-07": (48, 48),
              "2026-03-08": (96, 96), "2026-03-09": (8, 8)},
}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def config_text(url: str) -> str:
    return f"""\
storage: {{url: "{url}"}}
targets:
  - {{name: api, type: http, url: "http://127.0.0.1:9/health"}}
slos:
  - {{name: {AVAILABILITY}, target: api, sli: availability, objective: 99, window: 30d}}
  - {{name: {LATENCY}, target: api, sli: latency, threshold: 100ms, objective: 90,
      window: month}}
"""


def loaded_for(engine: Engine) -> LoadedConfig:
    return parse_config(config_text(engine.url.render_as_string(hide_password=False)),
                        "report.yaml", {})


def results() -> list[ProbeResult]:
    """One probe every 15 minutes, 2026-03-02 .. 03-09 UTC, shaped as DAILY says."""
    out: list[ProbeResult] = []

    def day(iso: str, count: int = 96, failed: range = range(0),
            slow: range = range(0)) -> None:
        start = ts(f"{iso}T00:00:00")
        for i in range(count):
            ok = i not in failed
            latency = 0.2 if i in slow else 0.05
            out.append(ProbeResult("api", start + i * 900, ok, latency,
                                   error_class=None if ok else "timeout"))

    day("2026-03-02")
    day("2026-03-03", slow=range(40, 52))          # 12 slow: latency SLO only
    day("2026-03-04", failed=range(40, 46))        # 10:00-11:15 UTC, 6 failures
    day("2026-03-05", failed=range(92, 96))        # 23:00-23:45 UTC, 4 failures
    day("2026-03-07", count=48)                    # only the first 12 hours
    day("2026-03-08")
    day("2026-03-09", count=8)
    return out


@pytest.fixture
def filled(engine: Engine) -> Engine:
    loaded = loaded_for(engine)
    ResultWriter(engine, loaded.settings.slos)(results())
    record(engine, [
        AlertEvent(f"slo:{AVAILABILITY}", "burn_rate", "ticket", "fired",
                   ts("2026-03-04T10:20:00"), "burn"),
        AlertEvent(f"slo:{AVAILABILITY}", "burn_rate", "page", "escalated",
                   ts("2026-03-04T10:40:00"), "burn"),
        AlertEvent(f"slo:{AVAILABILITY}", "burn_rate", "page", "resolved",
                   ts("2026-03-04T13:00:00"), "ok"),
        AlertEvent(f"slo:{LATENCY}", "burn_rate", "page", "fired",
                   ts("2026-03-03T10:30:00"), "burn"),
        AlertEvent("target:api", "down", None, "fired", ts("2026-03-04T10:10:00"), "down"),
        AlertEvent(f"slo:{AVAILABILITY}", "burn_rate", "page", "fired",
                   ts("2026-03-20T00:00:00"), "outside the range"),
    ])
    return engine


def report(engine: Engine, first: str = "2026-03-02", last: str = "2026-03-09",
           **kwargs: Any) -> pd.DataFrame:
    loaded = loaded_for(engine)
    return build_report(engine, loaded.settings.slos, first=date.fromisoformat(first),
                        last=date.fromisoformat(last), now=NOW, **kwargs)


def rows_of(frame: pd.DataFrame, slo: str) -> dict[str, pd.Series]:
    return {row["period"]: row for _, row in frame[frame["slo"] == slo].iterrows()}


def test_daily_compliance_matches_hand_counts(filled: Engine) -> None:
    frame = report(filled)
    assert len(frame) == 2 * 8
    for slo, days in DAILY.items():
        rows = rows_of(frame, slo)
        assert list(rows) == list(days)
        for day, counts in days.items():
            row = rows[day]
            if counts is None:  # no data: zero events, blank ratios, never 100%
                assert (row["events"], row["good"]) == (0, 0)
                for column in ("compliance", "met", "burn", "budget_consumed"):
                    assert pd.isna(row[column]), (slo, day, column)
                continue
            good, total = counts
            assert (row["good"], row["events"], row["bad"]) == (good, total, total - good)
            assert row["compliance"] == pytest.approx(good / total)
            assert bool(row["met"]) is (good / total >= row["objective"])
    availability = rows_of(frame, AVAILABILITY)
    assert availability["2026-03-04"]["burn"] == pytest.approx((6 / 96) / 0.01)
    assert not availability["2026-03-04"]["met"] and availability["2026-03-02"]["met"]


def test_budget_consumed_uses_the_slo_rate_over_the_report(filled: Engine) -> None:
    frame = report(filled, last="2026-03-08")
    availability = rows_of(frame, AVAILABILITY)
    # 528 events over the 7 days from the first to the last day with data → a 30-day
    # window expects 528 × 30/7 events and allows 1% of them to be bad.
    allowed = 528 * 30 / 7 * 0.01
    assert availability["2026-03-04"]["budget_consumed"] == pytest.approx(6 / allowed)
    assert availability["2026-03-05"]["budget_consumed"] == pytest.approx(4 / allowed)
    assert availability["2026-03-02"]["budget_consumed"] == 0
    # A calendar-month SLO: the budget of March's 31 days.
    latency = rows_of(frame, LATENCY)
    allowed = 528 * 31 / 7 * 0.10
    assert latency["2026-03-03"]["budget_consumed"] == pytest.approx(12 / allowed)
    total = summarize(frame).set_index("slo").loc[AVAILABILITY]
    assert total["budget_consumed"] == pytest.approx(10 / 528 * 7 / 30 / 0.01)


def test_weeks_sum_counts_and_are_clipped_to_the_range(filled: Engine) -> None:
    daily = report(filled, first="2026-03-04", last="2026-03-09")
    weekly = report(filled, first="2026-03-04", last="2026-03-09", by="week")
    rows = rows_of(weekly, AVAILABILITY)
    assert list(rows) == ["2026-W10", "2026-W11"]
    assert (rows["2026-W10"]["period_start"], rows["2026-W10"]["period_end"]) == \
        ("2026-03-04", "2026-03-08")
    assert (rows["2026-W11"]["period_start"], rows["2026-W11"]["period_end"]) == \
        ("2026-03-09", "2026-03-09")
    days = daily[(daily["slo"] == AVAILABILITY) & (daily["period_start"] <= "2026-03-08")]
    week = rows["2026-W10"]
    assert week["events"] == days["events"].sum() == 96 + 96 + 48 + 96
    assert week["good"] == days["good"].sum() == 90 + 92 + 48 + 96
    # the ratio of the sums, not the mean of the daily ratios (which would be ~0.98)
    assert week["compliance"] == pytest.approx(326 / 336)
    assert week["alerts_fired"] == 2


def test_alert_counts_only_fired_and_escalated_of_the_slo(filled: Engine) -> None:
    frame = report(filled)
    fired = {(row["slo"], row["period"]): row["alerts_fired"] for _, row in frame.iterrows()
             if row["alerts_fired"]}
    assert fired == {(AVAILABILITY, "2026-03-04"): 2, (LATENCY, "2026-03-03"): 1}


def test_local_days_read_hour_and_minute_rollups(filled: Engine) -> None:
    berlin = rows_of(report(filled, first="2026-03-04", last="2026-03-07",
                            timezone="Europe/Berlin"), AVAILABILITY)
    # Berlin is UTC+1 in March: its 03-06 is 03-05 23:00Z .. 03-06 23:00Z, which holds
    # only the four failures of 03-05 23:00-23:45Z.
    assert (berlin["2026-03-05"]["good"], berlin["2026-03-05"]["events"]) == (96, 96)
    assert (berlin["2026-03-06"]["good"], berlin["2026-03-06"]["events"]) == (0, 4)
    assert berlin["2026-03-06"]["compliance"] == 0
    kolkata = rows_of(report(filled, first="2026-03-06", last="2026-03-06",
                             timezone="Asia/Kolkata"), AVAILABILITY)
    # UTC+05:30: 03-05 18:30Z .. 03-06 18:30Z = 22 probes of 03-05, the last 4 failed
    assert (kolkata["2026-03-06"]["good"], kolkata["2026-03-06"]["events"]) == (18, 22)


def test_local_weeks_equal_their_local_days(filled: Engine) -> None:
    # Berlin weeks mix day rows (middle) with hour rows at both edges, read in merged runs
    # across periods: every bucket must still land in exactly one week.
    kwargs: dict[str, Any] = {"first": "2026-03-01", "last": "2026-03-10",
                              "timezone": "Europe/Berlin"}
    days, weeks = report(filled, **kwargs), report(filled, by="week", **kwargs)
    for slo in (AVAILABILITY, LATENCY):
        day_rows = days[days["slo"] == slo]
        week_rows = weeks[weeks["slo"] == slo]
        assert list(week_rows["period"]) == ["2026-W09", "2026-W10", "2026-W11"]
        assert week_rows["events"].sum() == day_rows["events"].sum() == 536
        assert week_rows["good"].sum() == day_rows["good"].sum()
        assert week_rows.iloc[1]["events"] == day_rows["events"].iloc[1:8].sum()
    # Berlin's week 10 is 1 March 23:00Z .. 8 March 23:00Z: the 4 probes of 8 March
    # 23:00-23:45Z go to week 11, with the 8 of 9 March
    availability = rows_of(weeks, AVAILABILITY)
    assert [availability[w]["events"] for w in ("2026-W09", "2026-W10", "2026-W11")] == \
        [0, 524, 12]
    assert pd.isna(availability["2026-W09"]["compliance"])


def test_periods_follow_dst_and_reject_reversed_ranges() -> None:
    spans = periods(date(2026, 3, 28), date(2026, 3, 30), "day", "Europe/Berlin")
    assert [s.end - s.start for s in spans] == [86400, 23 * 3600, 86400]
    with pytest.raises(ValueError, match="after it ends"):
        periods(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(ValueError, match="unknown time zone"):
        periods(date(2026, 3, 1), date(2026, 3, 1), "day", "Mars/Olympus")


def test_timeslice_slos_report_slices(sqlite_engine: Engine) -> None:
    from monitor.storage.engine import upgrade
    upgrade(sqlite_engine)
    loaded = parse_config(config_text("sqlite://") + """\
  - {name: api-minutes, target: api, sli: availability, objective: 90,
     budgeting: timeslices, timeslice: 1h, timeslice_target: 90}
""", "report.yaml", {})
    ResultWriter(sqlite_engine, loaded.settings.slos)(results())
    frame = build_report(sqlite_engine, [loaded.settings.slo("api-minutes")],  # type: ignore[list-item]
                         first=date(2026, 3, 4), last=date(2026, 3, 4), now=NOW)
    row = frame.iloc[0]
    # 24 hourly slices; 10:00 (4 failures of 4) and 11:00 (2 of 4) are below 90%
    assert (row["slices"], row["good_slices"]) == (24, 22)
    assert row["compliance"] == pytest.approx(22 / 24)
    assert (row["good"], row["events"]) == (90, 96)


def test_csv_and_markdown_are_written_and_parse(filled: Engine, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    csv, markdown = tmp_path / "report.csv", tmp_path / "report.md"
    code = cli_report.run(loaded_for(filled), namespace(csv=str(csv), markdown=str(markdown)))
    assert code == cli_report.EXIT_OK
    back = pd.read_csv(csv)
    assert list(back.columns)[:3] == ["slo", "target", "sli"]
    assert len(back) == 2 * 8
    day = back[(back["slo"] == AVAILABILITY) & (back["period"] == "2026-03-04")].iloc[0]
    assert (day["good"], day["events"], day["alerts_fired"]) == (90, 96, 2)
    assert day["compliance"] == pytest.approx(90 / 96)
    empty = back[(back["slo"] == AVAILABILITY) & (back["period"] == "2026-03-06")].iloc[0]
    assert pd.isna(empty["compliance"]) and pd.isna(empty["met"])
    text = markdown.read_text(encoding="utf-8")
    assert f"## {AVAILABILITY}" in text and f"## {LATENCY}" in text
    table = [line for line in text.splitlines() if line.startswith("| 2026-03-0")]
    assert len(table) == 2 * 8
    assert "| 2026-03-06 | 0 | 0 | — | no data |" in text
    assert "| **total** | 536 | 526 | 98.134% | **no** |" in text
    out = capsys.readouterr().out
    assert AVAILABILITY in out and "93.750%" in out  # the terminal table as well


def test_csv_to_stdout_replaces_the_table(filled: Engine,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_report.run(loaded_for(filled), namespace(csv="-", slo=[LATENCY], by="week"))
    assert code == cli_report.EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("slo,target,sli")
    assert [line.split(",")[0] for line in lines[1:]] == [LATENCY, LATENCY]


def test_long_ranges_show_progress_and_still_report(sqlite_engine: Engine, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    from monitor.storage.engine import upgrade
    upgrade(sqlite_engine)
    ResultWriter(sqlite_engine, loaded_for(sqlite_engine).settings.slos)(results())
    csv = tmp_path / "long.csv"
    code = cli_report.run(loaded_for(sqlite_engine),  # 68 days: behind a progress bar
                          namespace(date_from="2026-01-01", csv=str(csv)))
    assert code == cli_report.EXIT_OK
    back = pd.read_csv(csv)
    assert len(back) == 2 * 68 and back["events"].sum() == 2 * 536
    assert "Traceback" not in capsys.readouterr().err


def test_markdown_of_an_empty_range(filled: Engine) -> None:
    frame = report(filled, first="2027-01-01", last="2027-01-01")
    assert frame["compliance"].isna().all()
    assert "| **total** | 0 | 0 | — | no data |" in to_markdown(frame, title="empty")


@pytest.mark.parametrize(("changes", "message"), [
    ({"date_from": "2026-03-09", "date_to": "2026-03-02"}, "after it ends"),
    ({"date_from": "2026-13-01"}, "--from: invalid date '2026-13-01'"),
    ({"date_to": "yesterday"}, "--to: invalid date"),
    ({"slo": ["nope"]}, "unknown SLO 'nope' (SLOs: api-availability, api-latency)"),
    ({"timezone": "Europe/Atlantis"}, "unknown time zone"),
])
def test_bad_arguments_exit_2(sqlite_engine: Engine, changes: dict[str, Any], message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_report.run(loaded_for(sqlite_engine), namespace(**changes))
    assert code == cli_report.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_database_without_schema_says_to_upgrade(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    code = cli_report.run(loaded_for(engine), namespace())
    engine.dispose()
    assert code == cli_report.EXIT_USAGE
    assert "primewatch db upgrade" in capsys.readouterr().err


def test_parser_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli_report.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--from", "2026-11-01", "--to", "2026-11-25",
                              "--slo", "a", "--slo", "b"])
    assert (args.date_from, args.date_to, args.by, args.slo, args.timezone) == \
        ("2026-11-01", "2026-11-25", "day", ["a", "b"], "UTC")


def namespace(**changes: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"date_from": "2026-03-02", "date_to": "2026-03-09", "by": "day",
                              "slo": [], "csv": None, "markdown": None, "timezone": "UTC"}
    values.update(changes)
    return argparse.Namespace(**values)
