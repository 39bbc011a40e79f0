"""`primewatch slo ...`: status (SLOs, phases, triggers), backfill, test."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from monitor.config_loader import LoadedConfig
from monitor.units import format_duration, format_measure, parse_duration

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATE_MARKS = {"ok": "[green]✔ ok[/]", "breaching": "[red]✖ breaching[/]",
               "no_data": "[yellow]? no data[/]", "met": "[green]✔ met[/]",
               "not_met": "[red]✖ not met[/]", "unknown": "[yellow]? unknown[/]"}


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    slo = commands.add_parser("slo", help="SLO status, backfill and rule tests")
    actions = slo.add_subparsers(dest="slo_command", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="every SLO, scaling phase and decision trigger")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    backfill = actions.add_parser(
        "backfill", help="re-derive SLO rollups from retained raw results "
                         "(after changing an SLO's definition)")
    backfill.add_argument("--slo", action="append", default=[], metavar="NAME",
                          help="only this SLO (repeatable; default: all)")
    backfill.add_argument("--since", default=None, metavar="DURATION",
                          help="how far back (default: the raw retention, e.g. 14d)")
    test = actions.add_parser("test", help="run SLO alert tests on a simulated clock")
    test.add_argument("files", nargs="+", metavar="FILE", help="test YAML file(s)")


def run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    if args.slo_command == "test":
        from monitor.slo_testing import run_files
        return run_files(args.files)
    from monitor.storage.engine import current_revision, make_engine
    engine = make_engine(loaded.settings.storage.url)
    if current_revision(engine) is None:
        print("error: the database has no schema yet; run `primewatch db upgrade` "
              "(or `primewatch run`) first", file=sys.stderr)
        return EXIT_USAGE
    if args.slo_command == "backfill":
        return _backfill(loaded, engine, args)
    return _status(loaded, engine, args)


def _status(loaded: LoadedConfig, engine: object, args: argparse.Namespace) -> int:
    from monitor.api import phases_json, slo_json
    from monitor.clock import SystemClock
    from monitor.service import MonitorService
    service = MonitorService(loaded.settings, engine, SystemClock())  # type: ignore[arg-type]
    statuses = service.slo_statuses()
    phases = service.phases(statuses)
    triggers = service.trigger_statuses()
    verdict = EXIT_FAILED if any(s.state == "breaching" for s in statuses) else EXIT_OK
    if args.json:
        print(json.dumps({"slos": [slo_json(s) for s in statuses],
                          **phases_json(phases, triggers)}, indent=2))
        return verdict
    table = Table(title=f"SLOs — {loaded.settings.service.name}")
    for column in ("SLO", "objective", "window", "SLI", "budget left", "burn 1h", "burn 5m",
                   "p95", "events", "state"):
        table.add_column(column, justify="left" if column in ("SLO", "state") else "right")
    for s in statuses:
        slo = loaded.settings.slo(s.name)
        timed = s.sli_kind in ("availability", "latency") or (
            s.sli_kind == "threshold" and slo is not None
            and (slo.value or "").endswith("_seconds"))
        window = slo.window if slo is not None and isinstance(slo.window, str) \
            else format_duration(s.window_seconds)
        alert = f" [bold red]{s.alert.severity}[/]" if s.alert.severity else ""
        table.add_row(s.name, _pct(s.objective), str(window), _pct(s.sli),
                      _pct(s.budget_remaining), _num(s.burn_rates.get("1h")),
                      _num(s.burn_rates.get("5m")),
                      _ms(s.latency.get("p95") if timed else None), f"{s.total:g}",
                      STATE_MARKS[s.state] + alert)
    tables = [table]
    if phases:
        phase_table = Table(title="Scaling phases")
        for column in ("phase", "state", "SLOs"):
            phase_table.add_column(column)
        for phase in phases:
            phase_table.add_row(phase.title, STATE_MARKS[phase.state],
                                ", ".join(f"{n} ({st})" for n, st in phase.slos))
        tables.append(phase_table)
    if triggers:
        trigger_table = Table(title="Decision triggers")
        for column in ("trigger", "phase", "value", "threshold", "fired"):
            trigger_table.add_column(column)
        for t in triggers:
            unit = "" if t.stat in ("count", "rate") else t.measure
            value = "no data" if t.value is None else format_measure(unit, t.value)
            fired = "[red]FIRING[/]" if t.firing else "no"
            trigger_table.add_row(t.description or t.name, t.phase or "—", value,
                                  f"{t.direction} {format_measure(unit, t.threshold)}", fired)
        tables.append(trigger_table)
    console = _console(tables)
    for item in tables:
        console.print(item)
    return verdict


def _backfill(loaded: LoadedConfig, engine: object, args: argparse.Namespace) -> int:
    import time

    from monitor.backfill import backfill
    from monitor.ingest import Classifier
    from monitor.maintenance import MaintenanceCalendar, load_stored
    settings = loaded.settings
    unknown = [name for name in args.slo if settings.slo(name) is None]
    if unknown:
        print(f"error: unknown SLO(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    slos = [s for s in settings.slos if not args.slo or s.name in args.slo]
    try:
        since = parse_duration(args.since) if args.since else settings.storage.retention.raw
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = time.time()
    calendar = MaintenanceCalendar.from_config(settings.maintenance)
    calendar.replace_stored(load_stored(engine))  # type: ignore[arg-type]
    with Progress(transient=True) as progress:
        task = progress.add_task("re-deriving rollups", total=None)
        report = backfill(engine, Classifier(settings.slos, calendar), slos,  # type: ignore[arg-type]
                          start=now - since, end=now,
                          raw_kept_since=now - settings.storage.retention.raw,
                          progress=lambda done, total: progress.update(task, completed=done,
                                                                       total=total))
    print(f"re-derived {len(slos)} SLO(s): {report.days_rebuilt} days from "
          f"{report.results_read} raw results")
    if report.skipped_before is not None:
        print("older days are beyond raw retention and were kept as they were")
    return EXIT_OK


def _console(tables: list[Table]) -> Console:
    console = Console()
    if not console.is_terminal:
        # piped output has no width to fit (rich assumes 80): print names whole, not "api-av…"
        wide = console.options.update_width(1000)
        width = max(console.measure(t, options=wide).maximum for t in tables)
        console = Console(width=max(console.width, width))
    return console


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    millis = seconds * 1000
    return f"{millis:.0f} ms" if millis >= 10 else f"{millis:.2f} ms"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.3f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
