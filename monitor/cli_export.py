"""`primewatch export KIND` and `primewatch import openslo FILE`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.config_loader import LoadedConfig
from monitor.exports import EXPORTERS, renderer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write Prometheus rules, a Grafana dashboard or OpenSLO documents",
        description="Write an artefact derived from the config for another tool.")
    export.add_argument("kind", choices=sorted(EXPORTERS), help="; ".join(
        f"{kind}: {help_}" for kind, (_, help_, _) in sorted(EXPORTERS.items())))
    export.add_argument("--output", "-o", metavar="FILE",
                        help="file to write ('-' for stdout); default: stdout, except "
                             "grafana-dashboard → dashboards/grafana/primewatch.json")
    imported = commands.add_parser(
        "import", help="turn OpenSLO documents into primewatch config",
        description="Read OpenSLO v1 YAML (SLOs with their SLIs) and print the `slos:` "
                    "section primewatch would use; what cannot be mapped is an error.")
    imported.add_argument("format", choices=["openslo"])
    imported.add_argument("file", help="OpenSLO YAML file (several documents allowed)")
    imported.add_argument("--output", "-o", metavar="FILE", help="write here, not stdout")


def run_export(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    text = renderer(args.kind)(loaded.settings)
    default = EXPORTERS[args.kind][2]
    target = args.output or default
    return _write(text, target, what=args.kind)


def run_import(args: argparse.Namespace) -> int:
    """Runs without a config: importing is how a config starts."""
    from monitor.exports.openslo import OpenSloImportError, import_openslo
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = import_openslo(source, origin=args.file)
    except OpenSloImportError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return _write(text, args.output, what="slos")


def _write(text: str, target: str | None, *, what: str) -> int:
    if target in (None, "-"):
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {what} to {path}", file=sys.stderr)
    return EXIT_OK
