"""SLO compliance reports: one row per SLO and local day or week, as a pandas DataFrame.

What each column means (also the CSV's header, one row per SLO × period):

- `events`, `good`, `bad`: events counted for the SLO in the period (maintenance already
  left out by the rollups). Weeks sum their counts; ratios are never averaged.
- `compliance`: the SLI, good / events; blank (NA) when the period has no events, never
  100%. Timeslice SLOs use their slices instead (`good_slices` / `slices`), as
  `slo status` does, so the report and the live status agree; slices need minute
  rollups, so periods older than `storage.retention.minute` show events but a blank
  compliance for them.
- `met`: compliance ≥ objective; blank when there is no data.
- `burn`: the period's average burn rate, bad ratio / (1 − objective): 1.0 spends the
  budget exactly as fast as the SLO allows, 14.4 is the Workbook's fast page.
- `budget_consumed`: the share of one full SLO window's error budget this period spent,
  bad / (expected events in a window × (1 − objective)). A full window's events are
  estimated from the SLO's event rate over the report (first to last period with data,
  up to now), not from the period alone: a period with data for only part of its length
  (a maintenance window, a monitoring outage, a target added mid-day) would otherwise be
  scaled up as if its rate had held all window long. With steady traffic the periods of a
  window add up to the budget used in that window. Calendar windows use the length of
  the month or week (in the SLO's zone) that holds the period's start.
- `alerts_fired`: alert events for key `slo:<name>` with transition `fired` or
  `escalated` in the period.

Periods are local days (or ISO weeks, Monday first, clipped to the range) in the report's
zone. Each period is covered with `split_by_resolution`: day rollups where it spans whole
UTC days, hour rollups where local days are not UTC days (Europe/Berlin), minute rollups
only at edges that are not whole hours (Asia/Kolkata); adjacent ranges of one tier are
read in one query, so a month of UTC days is a single query of ~30 rows per SLO.
"""

from __future__ import annotations

import bisect
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Engine

from monitor.config_slo import SloConfig
from monitor.slo_engine import PROBE_SLIS, window_spec
from monitor.storage import alert_events, rollups
from slo.budget import burn_rate, sli
from slo.timeslices import ratio_timeslices, timeslices
from slo.windows import period_seconds, split_by_resolution

__all__ = ["COLUMNS", "Granularity", "Period", "ProgressCallback", "build_report", "periods",
           "summarize", "to_markdown"]

Granularity = Literal["day", "week"]
ALERTING = frozenset({"fired", "escalated"})
COLUMNS: dict[str, str] = {
    "slo": "str", "target": "str", "sli": "str", "budgeting": "str", "objective": "float64",
    "period": "str", "period_start": "str", "period_end": "str",
    "events": "Int64", "good": "Int64", "bad": "Int64",
    "slices": "Int64", "good_slices": "Float64",
    "compliance": "Float64", "met": "boolean", "burn": "Float64",
    "budget_consumed": "Float64", "alerts_fired": "Int64",
}
"""Report columns and their pandas dtypes (nullable ones where "no data" must stay blank)."""
ProgressCallback = Callable[[int, int], None]
"""Called as `(reads done, reads in all)` while the report's rollups are read."""


@dataclass(frozen=True, slots=True)
class Period:
    """One report row's time span: local dates `first`..`last` (inclusive) = [start, end)."""

    label: str
    first: date
    last: date
    start: int
    end: int


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as "
                         "Europe/Berlin or UTC") from None


def _midnight(day: date, zone: zoneinfo.ZoneInfo) -> int:
    """First whole minute of a local day (rollups are per minute; offsets with seconds
    only existed before 1970)."""
    instant = int(datetime.combine(day, time(0), tzinfo=zone).timestamp())
    return instant - instant % rollups.MINUTE


def periods(first: date, last: date, by: Granularity = "day", timezone: str = "UTC"
            ) -> list[Period]:
    """Local days, or ISO weeks clipped to [first, last], in `timezone`, oldest first.

    Days follow DST: 23 or 25 hours long on the change days.
    """
    if last < first:
        raise ValueError(f"the range starts ({first}) after it ends ({last})")
    if by not in ("day", "week"):
        raise ValueError(f"report periods are day or week, got {by!r}")
    zone = _zone(timezone)
    out: list[Period] = []
    day = first
    while day <= last:
        if by == "day":
            stop = day
            iso = day.isoformat()
        else:
            stop = min(last, day + timedelta(days=6 - day.weekday()))
            year, week, _ = day.isocalendar()
            iso = f"{year}-W{week:02d}"
        out.append(Period(iso, day, stop, _midnight(day, zone),
                          _midnight(stop + timedelta(days=1), zone)))
        day = stop + timedelta(days=1)
    return out


def build_report(engine: Engine, slos: Sequence[SloConfig], *, first: date, last: date,
                 now: float, by: Granularity = "day", timezone: str = "UTC",
                 progress: ProgressCallback | None = None,
                 probes_per_second: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Read rollups and alert events for every SLO and period; return the report rows.

    `now` bounds the event-rate estimate behind `budget_consumed` (the current period
    has only run until now). `progress(done, total)` is called after each read.
    `probes_per_second` (target → 1 / interval) gives probe SLOs the budget the pages
    state: the schedule's events over a full window (`slo/allowance.py`).
    """
    spans = periods(first, last, by, timezone)
    names = [slo.name for slo in slos]
    counts = _period_counts(engine, names, spans, progress)
    alerts = _alert_times(engine, names, spans[0].start, spans[-1].end)
    rows: list[dict[str, Any]] = []
    for slo in slos:
        events = [c[slo.name] for c in counts]
        units = _units(engine, slo, spans, events)
        expected = _expected_window_units(slo, spans, units, now,
                                          (probes_per_second or {}).get(slo.target))
        fired = alerts.get(slo.name, [])
        for span, (good, total), (good_u, total_u), window_units in zip(
                spans, events, units, expected, strict=True):
            rows.append(_row(slo, span, good, total, good_u, total_u, window_units,
                             _count_between(fired, span.start, span.end)))
    return _frame(rows)


def _period_counts(engine: Engine, names: Sequence[str], spans: Sequence[Period],
                   progress: ProgressCallback | None) -> list[dict[str, tuple[int, int]]]:
    """(good, total) per period and SLO, each tier read once per run of adjacent ranges.

    Why not `sum_counts` per period: that is a query per range per period (a year of
    Berlin days, 365); ranges of one tier that touch across periods are one key-range
    seek on (slo, resolution, bucket_start) instead. Every bucket read lies inside exactly
    one period (the ranges come from splitting the periods), so it is added to the
    period whose start precedes it.
    """
    wanted: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for span in spans:
        for resolution, start, end in split_by_resolution(span.start, span.end):
            wanted[resolution].append((start, end))
    reads = [(resolution, start, end) for resolution, ranges in sorted(wanted.items())
             for start, end in _merged(ranges)]
    starts = [span.start for span in spans]
    sums = [{name: [0, 0] for name in names} for _ in spans]
    for done, (resolution, start, end) in enumerate(reads, 1):
        for name, rows in rollups.series(engine, names, resolution, start, end).items():
            for bucket, good, total in rows:
                into = sums[bisect.bisect_right(starts, bucket) - 1][name]
                into[0] += good
                into[1] += total
        if progress is not None:
            progress(done, len(reads))
    return [{name: (good, total) for name, (good, total) in period.items()}
            for period in sums]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join ranges that touch: the hour rows of consecutive local days form one read."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _units(engine: Engine, slo: SloConfig, spans: Sequence[Period],
           events: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
    """What the SLI counts per period: events, or (good, all) slices for timeslice SLOs."""
    if slo.budgeting == "occurrences":
        return [(float(good), float(total)) for good, total in events]
    minutes = rollups.series(engine, [slo.name], rollups.MINUTE, spans[0].start,
                             spans[-1].end)[slo.name]
    seconds = int(slo.timeslice)
    out: list[tuple[float, float]] = []
    for span in spans:
        if slo.budgeting == "timeslices":
            good, total = timeslices(minutes, start=span.start, end=span.end,
                                     slice_seconds=seconds, target=slo.timeslice_target)
            out.append((float(good), float(total)))
        else:
            ratio_sum, slices = ratio_timeslices(minutes, start=span.start, end=span.end,
                                                 slice_seconds=seconds)
            out.append((ratio_sum, float(slices)))
    return out


def _expected_window_units(slo: SloConfig, spans: Sequence[Period],
                           units: Sequence[tuple[float, float]], now: float,
                           schedule: float | None = None) -> list[float | None]:
    """Events (or slices) a full SLO window would hold: the budget's base, as
    `slo/allowance.py` defines it for every surface.

    Timeslices: the slices in the window. Probe SLIs with a known schedule: the
    schedule's rate (or the observed one where several regions probe faster). Otherwise
    the observed rate, from the first to the last period with data, the current period
    counting only up to `now`, so a new SLO or a removed target is not diluted by
    periods before or after it existed.
    """
    with_data = [i for i, (_, total) in enumerate(units) if total > 0]
    if not with_data:
        return [None] * len(spans)
    seen = sum(total for _, total in units)
    elapsed = sum(_elapsed(span, now) for span in spans[with_data[0]:with_data[-1] + 1])
    rate = seen / elapsed
    if slo.budgeting != "occurrences":
        rate = 1.0 / slo.timeslice
    elif schedule is not None and slo.sli in PROBE_SLIS:
        rate = max(rate, schedule)
    spec = window_spec(slo)
    return [rate * period_seconds(spec, span.start) for span in spans]


def _elapsed(span: Period, now: float) -> float:
    """Seconds of the period that have happened (at least a minute, so a period whose
    data arrived from a clock running ahead still has a rate)."""
    return float(min(span.end - span.start, max(now - span.start, rollups.MINUTE)))


def _alert_times(engine: Engine, names: Sequence[str], start: int, end: int
                 ) -> dict[str, list[float]]:
    """Times of alerting transitions per SLO name, oldest first."""
    wanted = {f"slo:{name}": name for name in names}
    out: dict[str, list[float]] = {}
    for event in alert_events.between(engine, start, end):
        name = wanted.get(event.key)
        if name is not None and event.transition in ALERTING:
            out.setdefault(name, []).append(event.at)
    return out


def _count_between(times: Sequence[float], start: int, end: int) -> int:
    return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)


def _row(slo: SloConfig, span: Period, good: int, total: int, good_u: float,
         total_u: float, window_units: float | None, fired: int) -> dict[str, Any]:
    compliance = sli(good_u, total_u)
    bad_u = total_u - good_u
    budget = None
    if total_u > 0 and window_units:
        budget = bad_u / (window_units * (1.0 - slo.objective))
    slices = slo.budgeting != "occurrences"
    return {
        "slo": slo.name, "target": slo.target, "sli": slo.sli, "budgeting": slo.budgeting,
        "objective": slo.objective, "period": span.label,
        "period_start": span.first.isoformat(), "period_end": span.last.isoformat(),
        "events": total, "good": good, "bad": total - good,
        "slices": int(total_u) if slices else None,
        "good_slices": good_u if slices else None,
        "compliance": compliance,
        # divide-then-compare, as the SLO math does: 999/1000 equals the literal 0.999
        "met": None if compliance is None else compliance >= slo.objective,
        "burn": burn_rate(good_u, total_u, slo.objective), "budget_consumed": budget,
        "alerts_fired": fired,
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a DataFrame with fixed columns and nullable dtypes (None → <NA>)."""
    columns = list(COLUMNS)
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows \
        else pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
    return frame.astype(COLUMNS)


def summarize(report: pd.DataFrame) -> pd.DataFrame:
    """One row per SLO over the whole range: counts summed, then the SLI recomputed.

    `budget_consumed` adds up (every period shares the SLO's rate); a timeslice that a
    local period boundary cuts in two is counted in both periods.
    """
    summed = ["events", "good", "bad", "slices", "good_slices", "budget_consumed",
              "alerts_fired"]
    rows: list[dict[str, Any]] = []
    for name, group in report.groupby("slo", sort=False):
        sums = group[summed].sum(min_count=1)
        first = group.iloc[0]
        good_key, total_key = (("good", "events") if first["budgeting"] == "occurrences"
                               else ("good_slices", "slices"))
        good_u = 0.0 if pd.isna(sums[good_key]) else float(sums[good_key])
        total_u = 0.0 if pd.isna(sums[total_key]) else float(sums[total_key])
        compliance = sli(good_u, total_u)
        rows.append({
            "slo": name, "target": first["target"], "sli": first["sli"],
            "budgeting": first["budgeting"], "objective": first["objective"],
            "period": "total", "period_start": group["period_start"].min(),
            "period_end": group["period_end"].max(),
            **{key: (None if pd.isna(sums[key]) else sums[key]) for key in summed},
            "compliance": compliance,
            "met": None if compliance is None else compliance >= first["objective"],
            "burn": burn_rate(good_u, total_u, float(first["objective"])),
        })
    return _frame(rows)


def to_markdown(report: pd.DataFrame, *, title: str) -> str:
    """A Markdown document: per SLO, a table of its periods and a total row."""
    lines = [f"# {title}", "",
             "Compliance = good / events (good slices / slices for timeslice SLOs), blank "
             "when a period has no data. Burn = the period's average burn rate. Budget = "
             "share of one full SLO window's error budget spent in the period, at the "
             "SLO's event rate over this report.", ""]
    totals = summarize(report).set_index("slo")
    header = ("| period | events | good | compliance | met | burn | budget | alerts |\n"
              "|---|---:|---:|---:|:---:|---:|---:|---:|")
    for name, group in report.groupby("slo", sort=False):
        first = group.iloc[0]
        total = totals.loc[name]
        lines += [f"## {name}", "",
                  f"Target `{first['target']}`, {first['sli']} SLI, objective "
                  f"{format_objective(first['objective'])}, budgeting {first['budgeting']}.", "",
                  header]
        for _, row in group.iterrows():
            lines.append(_markdown_row(row["period"], row))
        lines.append(_markdown_row("**total**", total))
        lines.append("")
    return "\n".join(lines)


def _markdown_row(label: str, row: pd.Series) -> str:
    cells = [label, str(row["events"]), str(row["good"]), format_percent(row["compliance"]),
             format_met(row["met"], markdown=True), format_number(row["burn"]),
             format_percent(row["budget_consumed"], digits=1), str(row["alerts_fired"])]
    return "| " + " | ".join(cells) + " |"


def format_percent(value: Any, digits: int = 3) -> str:
    """`99.950%`, or `—` for no data."""
    return "—" if value is None or pd.isna(value) else f"{float(value) * 100:.{digits}f}%"


def format_objective(value: float) -> str:
    """`99.9%`: objectives are written in percent with the digits the config gave."""
    return f"{float(value) * 100:g}%"


def format_number(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.2f}"


def format_met(value: Any, *, markdown: bool = False) -> str:
    if value is None or pd.isna(value):
        return "no data"
    if markdown:
        return "yes" if value else "**no**"
    return "[green]yes[/]" if value else "[red]no[/]"
