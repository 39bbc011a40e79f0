"""`primewatch report`: SLO compliance per day or week as a table, CSV or Markdown.

The numbers come from `monitor.report` (see its docstring for what each column means);
this module only parses arguments, checks them and writes the outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from monitor.config_loader import LoadedConfig
from monitor.config_slo import SloConfig
from monitor.report import (
    ProgressCallback,
    build_report,
    format_met,
    format_number,
    format_objective,
    format_percent,
    periods,
    summarize,
    to_markdown,
)
from monitor.slo_engine import probe_rates

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROGRESS_PERIODS = 60
PROGRESS_SLOS = 20


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser(
        "report", help="SLO compliance per day or week (table, CSV, Markdown)",
        description="For each SLO and each local day or ISO week from --from to --to "
                    "(both included): events, good, compliance (blank without data), "
                    "met, burn rate, share of the window's error budget consumed and "
                    "alerts fired.")
    report.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                        help="first day, YYYY-MM-DD (a local date in --timezone)")
    report.add_argument("--to", dest="date_to", required=True, metavar="DATE",
                        help="last day, YYYY-MM-DD (included)")
    report.add_argument("--by", choices=("day", "week"), default="day",
                        help="one row per local day (default) or ISO week, Monday first; "
                             "weeks cut by the range are partial")
    report.add_argument("--slo", action="append", default=[], metavar="NAME",
                        help="only this SLO (repeatable; default: all)")
    report.add_argument("--csv", metavar="FILE",
                        help="also write one row per SLO and period as CSV ('-': stdout)")
    report.add_argument("--markdown", metavar="FILE",
                        help="also write a Markdown table per SLO ('-': stdout)")
    report.add_argument("--timezone", default="UTC", metavar="ZONE",
                        help="zone whose midnights bound days and weeks, e.g. "
                             "Europe/Berlin (default UTC)")


def run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    try:
        first = _date("--from", args.date_from)
        last = _date("--to", args.date_to)
        spans = periods(first, last, args.by, args.timezone)
    except ValueError as exc:
        return _usage(str(exc))
    slos, problem = _select(loaded, args.slo)
    if problem:
        return _usage(problem)
    from monitor.storage.engine import current_revision, make_engine
    engine = make_engine(loaded.settings.storage.url)
    try:
        if current_revision(engine) is None:
            return _usage("the database has no schema yet; run `primewatch db upgrade` "
                          "(or `primewatch run`) first")
        report = _build(engine, slos, first, last, args, len(spans),
                        probe_rates(loaded.settings))
    except OperationalError as exc:
        print(f"error: cannot read the database: {exc.orig or exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()
    title = (f"SLO report {first.isoformat()} – {last.isoformat()} "
             f"(by {args.by}, {args.timezone})")
    to_stdout = False
    if args.csv:
        to_stdout |= _write(args.csv, report.to_csv(index=False), "CSV")
    if args.markdown:
        to_stdout |= _write(args.markdown, to_markdown(report, title=title), "Markdown")
    if not to_stdout:
        table = _table(report, title)
        _console(table).print(table)
    return EXIT_OK


def _date(flag: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag}: invalid date {text!r}: expected YYYY-MM-DD, "
                         "e.g. 2026-11-01") from None


def _select(loaded: LoadedConfig, names: list[str]) -> tuple[list[SloConfig], str | None]:
    """The SLOs asked for, in config order, or why some name is not one."""
    settings = loaded.settings
    if not settings.slos:
        return [], "the config defines no SLOs (of enabled targets) to report on"
    disabled = {slo: target for target, slos in loaded.disabled_targets.items()
                for slo in slos}
    for name in names:
        if settings.slo(name) is not None:
            continue
        if name in disabled:
            return [], (f"SLO {name!r} belongs to target {disabled[name]!r}, which is "
                        "disabled (enabled: false)")
        known = ", ".join(s.name for s in settings.slos)
        return [], f"unknown SLO {name!r} (SLOs: {known})"
    return [s for s in settings.slos if not names or s.name in names], None


def _build(engine: Engine, slos: list[SloConfig], first: date, last: date,
           args: argparse.Namespace, count: int, rates: dict[str, float]) -> pd.DataFrame:
    """The report, behind a progress bar (on stderr, erased after) when it takes a while."""
    def build(progress: ProgressCallback | None = None) -> pd.DataFrame:
        return build_report(engine, slos, first=first, last=last, now=time.time(),
                            by=args.by, timezone=args.timezone, progress=progress,
                            probes_per_second=rates)

    if count <= PROGRESS_PERIODS and len(slos) <= PROGRESS_SLOS:
        return build()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"reading {len(slos)} SLOs", total=None)
        return build(lambda done, total: bar.update(task, completed=done, total=total))


def _write(target: str, text: str, kind: str) -> bool:
    """Write to a file (True when it went to stdout instead, so no table follows)."""
    if target == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return True
    Path(target).write_text(text, encoding="utf-8")
    print(f"wrote {kind} to {target}", file=sys.stderr)
    return False


def _table(report: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in ("SLO", "period", "events", "good", "compliance", "objective", "met",
                   "burn", "budget", "alerts"):
        table.add_column(column, justify="left" if column in ("SLO", "period") else "right")
    totals = summarize(report).set_index("slo")
    for name, group in report.groupby("slo", sort=False):
        for _, row in group.iterrows():
            table.add_row(*_cells(str(name), row["period"], row))
        table.add_row(*_cells("", "[bold]total[/]", totals.loc[name]))
        table.add_section()
    return table


def _console(table: Table) -> Console:
    console = Console()
    if not console.is_terminal:
        # piped output has no width to fit (rich assumes 80): print names whole
        wide = console.options.update_width(1000)
        console = Console(width=max(console.width,
                                    console.measure(table, options=wide).maximum))
    return console


def _cells(name: str, label: str, row: pd.Series) -> list[str]:
    return [name, label, str(row["events"]), str(row["good"]),
            format_percent(row["compliance"]), format_objective(row["objective"]),
            format_met(row["met"]), format_number(row["burn"]),
            format_percent(row["budget_consumed"], digits=1), str(row["alerts_fired"])]


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
