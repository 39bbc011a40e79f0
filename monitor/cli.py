"""The `primewatch` command line.

Exit codes: 0 success; 1 the thing checked failed (a probe, an SLO); 2 bad usage or an
invalid config (the errors name file, line and key).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console

from monitor import (
    __version__,
    cli_db,
    cli_export,
    cli_postmortem,
    cli_report,
    cli_slo,
    cli_token,
)
from monitor.config_loader import LoadedConfig, load_config
from monitor.errors import ConfigError, StorageError
from monitor.observability import LogFormat, configure_logging, init_sentry
from monitor.units import format_measure, format_seconds, format_size

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("primewatch")


def _log_format(value: str) -> LogFormat:
    """argparse type for --log-format; also checks $PRIMEWATCH_LOG_FORMAT, which argparse
    passes through here as the default but would not check against `choices`."""
    formats: dict[str, LogFormat] = {"text": "text", "json": "json"}
    if value in formats:
        return formats[value]
    raise argparse.ArgumentTypeError(f"{value!r} is not text or json "
                                     "(from --log-format or $PRIMEWATCH_LOG_FORMAT)")


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--config and --log-format, with their defaults on the top-level parser only.

    Every subcommand takes them too (`primewatch check --config my.yaml`), where they
    default to argparse.SUPPRESS so that one given before the command is not reset.
    """
    parser.add_argument(
        "--config", metavar="FILE",
        default=os.environ.get("PRIMEWATCH_CONFIG", "config.yaml") if defaults
        else argparse.SUPPRESS,
        help="config file (default: config.yaml, or $PRIMEWATCH_CONFIG)")
    parser.add_argument(
        "--log-format", type=_log_format, metavar="{text,json}",
        default=os.environ.get("PRIMEWATCH_LOG_FORMAT", "text") if defaults
        else argparse.SUPPRESS,
        help="log lines on stderr: text, or JSON for log shippers "
             "(default: text, or $PRIMEWATCH_LOG_FORMAT)")


def command_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                    ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command as (words, parser): `("db", "upgrade")`, `("check",)` ..."""
    groups = [action for action in parser._actions
              if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        return [(path, parser)]
    return [leaf for group in groups for name, sub in group.choices.items()
            for leaf in command_parsers(sub, (*path, name))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="primewatch",
        description="Probe targets, keep SLOs with error budgets and burn-rate alerts. "
                    "--config and --log-format may stand before or after the command.",
    )
    parser.add_argument("--version", action="version", version=f"primewatch {__version__}")
    _add_global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="probe, evaluate SLOs and serve API, /metrics")
    run.add_argument("--host", help="listen address (default: server.host in config)")
    run.add_argument("--port", type=int, help="listen port (default: server.port)")
    run.add_argument("--no-migrate", action="store_true",
                     help="do not upgrade the database schema at start")
    run.add_argument("--insecure", action="store_true",
                     help="allow a non-loopback address while dashboard.auth is none "
                          "(only behind a proxy that authenticates)")

    commands.add_parser("check", help="validate the config; exit 2 listing every error")

    probe = commands.add_parser("probe", help="run one target's probe once and print it")
    probe.add_argument("name", help="target name from the config")
    probe.add_argument("--json", action="store_true", help="print the result as JSON")
    probe.add_argument("--gap", type=float, default=2.0, metavar="SECONDS",
                       help="for counter kinds (redis, prometheus): seconds between the "
                            "baseline run and the measured run (default 2)")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="create or migrate the schema to the latest version")
    cli_db.add_parsers(db_commands)

    cli_slo.add_parsers(commands)
    cli_report.add_parsers(commands)
    cli_postmortem.add_parsers(commands)
    cli_export.add_parsers(commands)
    cli_token.add_parsers(commands)

    demo = commands.add_parser("demo-target", help="serve the bundled PrimeTrade-like demo API")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8001)
    for _words, command in command_parsers(parser):
        _add_global_options(command, defaults=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, logging.INFO)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "demo-target":
        from monitor import demo_target
        return demo_target.main(["--host", args.host, "--port", str(args.port)])
    if args.command == "import":
        return cli_export.run_import(args)
    if args.command == "token":  # needs no config
        return cli_token.run(args)
    try:
        loaded = load_config(args.config, os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{args.config}: {len(exc.problems)} error(s)", file=sys.stderr)
        return EXIT_USAGE
    handlers = {"run": _run, "check": _check, "probe": _probe, "db": _db, "slo": _slo,
                "report": cli_report.run, "postmortem": cli_postmortem.run,
                "export": cli_export.run_export}
    try:
        return handlers[args.command](loaded, args)
    except StorageError as exc:  # storage.url names nothing usable: a sentence, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _report_config_notes(loaded: LoadedConfig) -> None:
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for target, slos in loaded.disabled_targets.items():
        skipped = f"; SLOs not evaluated: {', '.join(slos)}" if slos else ""
        print(f"notice: target {target!r} is disabled (enabled: false){skipped}",
              file=sys.stderr)
    for channel, missing in loaded.disabled_channels.items():
        print(f"notice: channel {channel!r} is disabled: {', '.join(missing)} empty",
              file=sys.stderr)


def _check(loaded: LoadedConfig, _args: argparse.Namespace) -> int:
    _report_config_notes(loaded)
    print(loaded.summary())
    return EXIT_OK


def _db(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    if args.db_command in cli_db.ACTIONS:
        return cli_db.run(loaded, args)
    from monitor.storage.engine import check_reachable, current_revision, make_engine, upgrade
    engine = make_engine(loaded.settings.storage.url)
    check_reachable(engine)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)}")
    return EXIT_OK


def _probe(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    import time

    from probes import REGISTRY, HttpClientPool, ProbeContext, build_probe
    target = loaded.settings.target(args.name)
    if target is None:
        names = ", ".join(t.name for t in loaded.settings.targets) or "none"
        print(f"error: no target named {args.name!r} (targets: {names})", file=sys.stderr)
        return EXIT_USAGE

    counters = REGISTRY[target.type].counters  # type: ignore[attr-defined]

    async def once() -> object:
        clients = HttpClientPool()
        probe = build_probe(target, ProbeContext(clients, loaded.settings.region))
        try:
            if counters:  # deltas need a baseline: measure twice, `--gap` apart
                first = await probe.run(time.time())
                if not first.ok:
                    return first
                await asyncio.sleep(max(0.0, args.gap))
            return await probe.run(time.time())
        finally:
            await probe.aclose()
            await clients.aclose()

    result = asyncio.run(once())
    data = result.as_dict()  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console = Console()
        mark = "[green]OK[/]" if data["ok"] else f"[red]FAILED[/] ({data['error_class']})"
        console.print(f"{target.name} ({target.display_url()}): {mark}")
        lines = {"latency": format_seconds(data["latency_ms"] / 1000),
                 "status_code": data["status_code"],
                 "response_size": data["response_bytes"] is not None
                 and format_size(data["response_bytes"]),
                 "cert_days_left": data["cert_days_left"] is not None
                 and f"{data['cert_days_left']:.1f} days",
                 "error": data["error"]}
        for label, text in lines.items():
            if text is not None and text is not False:
                console.print(f"  {label}: {text}")
        for key, value in data["values"].items():
            console.print(f"  {key}: {format_measure(key, value)}")
        for key, count in data["counts"].items():
            console.print(f"  {key}: {format_measure('', count['good'])} good of "
                          f"{format_measure('', count['total'])}")
        for key, text in data["details"].items():
            console.print(f"  {key}: {text}")
    return EXIT_OK if data["ok"] else EXIT_FAILED


def _slo(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    return cli_slo.run(loaded, args)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    name = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any interface


def bind_refusal(host: str, auth: str, *, insecure: bool) -> str | None:
    """Why `run` must not listen on `host`, or None. An open dashboard on a reachable
    address shows every target URL and incident to whoever finds the port."""
    if is_loopback(host) or auth != "none" or insecure:
        return None
    return (f"refusing to listen on {host!r}: it is not a loopback address and "
            "dashboard.auth is 'none', so anyone who can reach it could read the "
            "dashboard. Set dashboard.auth to 'basic' or 'token', listen on 127.0.0.1, "
            "or pass --insecure if a proxy in front authenticates.")


def _run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    import uvicorn

    from monitor.app import create_app
    from monitor.serving import server_config
    from monitor.storage.engine import check_reachable, make_engine, upgrade
    settings = loaded.settings
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    refusal = bind_refusal(host, settings.dashboard.auth, insecure=args.insecure)
    if refusal:  # before touching the database: a refused start changes nothing
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    if args.insecure and not is_loopback(host) and settings.dashboard.auth == "none":
        log.warning("serving the dashboard without authentication on %s (--insecure)", host)
    _report_config_notes(loaded)
    try:
        init_sentry(settings, os.environ)
    except ConfigError as exc:  # a bad SENTRY_DSN is a config error, not a traceback
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    engine = make_engine(settings.storage.url)
    check_reachable(engine)
    if not args.no_migrate:
        upgrade(engine)
    app = create_app(settings, engine)
    log.info("primewatch %s: %s, serving on http://%s:%d", __version__, loaded.summary(),
             host, port)
    uvicorn.Server(server_config(app, settings, host, port)).run()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
