"""`primewatch postmortem INCIDENT_ID`: print or save an incident's post-mortem draft.

The draft is normally written when the incident resolves (`alerts/facts.py`); this
command shows it, and writes it first when there is none yet (an open incident, or one
resolved before drafts existed) or when asked to regenerate it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from monitor.config_loader import LoadedConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "postmortem", help="print an incident's post-mortem draft (Markdown)",
        description="Print the post-mortem draft of incident INCIDENT_ID. Drafts are written "
                    "when an incident resolves; when there is none yet, or with "
                    "--regenerate, one is generated from the incident's facts (timeline, "
                    "SLO counts, budget, p95 against the week before) and stored. An open "
                    "incident's draft shows its status and counts impact up to now. Exits "
                    "1 when there is no such incident.")
    parser.add_argument("incident_id", type=int, metavar="INCIDENT_ID",
                        help="the incident's number, as in the API and notifications")
    parser.add_argument("--output", metavar="FILE",
                        help="write the draft to FILE instead of printing it")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate the draft again from the current facts and template, "
                             "replacing the stored one (and any edits made to it)")


def run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from monitor.storage.engine import current_revision, make_engine
    engine = make_engine(loaded.settings.storage.url)
    try:
        if current_revision(engine) is None:
            return _error("the database has no schema yet; run `primewatch db upgrade` "
                          "(or `primewatch run`) first", EXIT_USAGE)
        text = _draft(engine, loaded, args.incident_id, args.regenerate)
    except (OperationalError, ProgrammingError) as exc:
        return _error(f"cannot read the database (try `primewatch db upgrade`): "
                      f"{exc.orig or exc}", EXIT_FAILED)
    finally:
        engine.dispose()
    if text is None:
        return _error(f"no incident {args.incident_id}", EXIT_FAILED)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote the post-mortem draft of incident {args.incident_id} to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _draft(engine: Engine, loaded: LoadedConfig, incident_id: int,
           regenerate: bool) -> str | None:
    """The stored draft, written first if missing or asked for; None: no such incident."""
    from alerts.facts import write_postmortem
    from alerts.store import get_incident, postmortem_text
    if get_incident(engine, incident_id) is None:
        return None
    stored = None if regenerate else postmortem_text(engine, incident_id)
    if stored is not None:
        return stored
    return write_postmortem(engine, loaded.settings, incident_id, time.time())


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
