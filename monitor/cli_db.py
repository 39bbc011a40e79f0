"""`primewatch db backup PATH` and `primewatch db restore PATH` (logic: `monitor.backup`).

Exit codes: 0 done; 1 the backup or restore failed (a tool failed, the database could
not be reached); 2 refused (missing or damaged file, existing destination, data in the
way without --force). On 1 and 2 nothing was changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from monitor.backup import BackupError, BackupRefused, Summary, backup, restore, safe_url
from monitor.config_loader import LoadedConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ACTIONS = ("backup", "restore")

BACKUP_HELP = """\
Write a consistent copy of the database named by storage.url to PATH, safe to run
while primewatch runs and writes.

SQLite: SQLite's online backup API copies the database as of one instant into a
self-contained SQLite file (integrity-checked after writing).
PostgreSQL: pg_dump --format=custom (install the PostgreSQL client tools, the server's
major version or newer). Host, user and password go to pg_dump through PG* environment
variables, never on its command line.

PATH appears only once the copy is complete; an existing PATH is kept unless --force.

Exit status: 0 written; 1 failed (database unreachable, pg_dump failed or missing);
2 refused (PATH exists, its directory is missing or not writable). On 1 and 2 no PATH
was written.
"""

RESTORE_HELP = """\
Replace the database named by storage.url with the backup at PATH (a file written by
`primewatch db backup` from the same kind of database). Stop primewatch first: a
running instance would keep caches of the data being replaced.

The backup is checked before the database is touched (readable, undamaged, a
primewatch schema this version knows). A database that already holds data is replaced
only with --force.

SQLite: pages are copied back in one write transaction.
PostgreSQL: pg_restore --clean --if-exists --single-transaction --no-owner, so a failed
restore leaves the database as it was.

A backup from an older primewatch restores as it was; `primewatch db upgrade` (or
`primewatch run`) then migrates it.

Exit status: 0 restored; 1 failed (database unreachable, pg_restore failed or missing);
2 refused (missing, damaged or foreign file, data in the way without --force). On 1
and 2 the database is as it was.
"""


def add_parsers(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `backup` and `restore` under `primewatch db`."""
    for name, summary, text, force in (
            ("backup", "copy the database to a file (safe while primewatch runs)",
             BACKUP_HELP, "overwrite PATH if it exists"),
            ("restore", "replace the database with a backup file", RESTORE_HELP,
             "replace a database that already holds data")):
        parser = actions.add_parser(name, help=summary, description=text,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("path", type=Path, metavar="PATH", help="the backup file")
        parser.add_argument("--force", action="store_true", help=force)


def run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    url = loaded.settings.storage.url
    try:
        if args.db_command == "backup":
            summary = backup(url, args.path, environ=os.environ, overwrite=args.force,
                             progress=_progress)
            print(f"backed up {safe_url(url)} to {summary.path}: {_describe(summary)}")
        else:
            summary = restore(url, args.path, environ=os.environ, force=args.force,
                              progress=_progress)
            replaced = (f"; replaced {sum(summary.replaced.values()):,} rows in "
                        f"{len(summary.replaced)} tables" if summary.replaced else "")
            print(f"restored {summary.path} into {safe_url(url)}: {_describe(summary)}"
                  f"{replaced}")
            for name, rows in sorted(summary.tables.items()):
                if rows and name != "alembic_version":
                    print(f"  {name}: {rows:,} rows")
    except BackupRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _describe(summary: Summary) -> str:
    counted = {name: rows for name, rows in summary.tables.items() if rows >= 0}
    rows = f", {sum(counted.values()):,} rows" if counted else ""
    return (f"{summary.backend}, {len(summary.tables)} tables{rows}, "
            f"{summary.size / 1e6:,.1f} MB, schema revision {summary.revision or 'none'}, "
            f"{summary.seconds:.1f} s")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
