"""Tell "the database refuses this batch" from "the database is down", and when it
refuses one, split the batch until the refused rows are found, storing all the others.

Why: the sink retries a failed write until it succeeds, which is right for an outage
(nothing is lost, the write lands once storage is back) but wrong for a row the
database will never accept: retried forever at the head of the queue, it used to stop
every other target's results from being stored. `monitor/storage/sanitize.py` makes
every known poison storable; this is the net for whatever it does not know of.

A batch is written in one transaction (`repository.write_batch`), so a refused one
leaves nothing behind and its halves can be written on their own. Halves are tried in
order, so what is written or quarantined is always a prefix of the batch: when storage
goes down in the middle, the rest (`Isolated.unwritten`) is retried as usual and the
spill file can save its offset past the prefix.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from probes.base import ProbeResult

Writer = Callable[[Sequence[ProbeResult]], None]

_REFUSED_BY_DATABASE = (DataError, IntegrityError, psycopg.DataError, psycopg.IntegrityError,
                        sqlite3.DataError, sqlite3.IntegrityError)
_UNSENDABLE = (ValueError, TypeError, OverflowError)
"""Raised before anything reaches the database: a value the driver cannot encode
(UnicodeEncodeError is a ValueError), serialise (TypeError) or fit (OverflowError)."""


def is_rejection(exc: BaseException) -> bool:
    """True when these rows can never be written as they are, however often retried;
    False for everything else (connection refused or lost, locked database, timeouts,
    a missing table), which is an outage: keep the rows and retry."""
    if isinstance(exc, _REFUSED_BY_DATABASE):
        return True
    if isinstance(exc, StatementError):  # SQLAlchemy's wrapper: judge what it wraps
        return isinstance(exc.orig, _REFUSED_BY_DATABASE + _UNSENDABLE)
    return isinstance(exc, _UNSENDABLE)


def describe(exc: BaseException) -> str:
    """The kind of a refusal, safe to log: the exception's class and SQLSTATE, never
    its message, which quotes the refused row (the endpoint's payload)."""
    name = type(exc).__name__
    orig = exc.orig if isinstance(exc, StatementError) else None
    if orig is not None and type(orig).__name__ != name:
        name = f"{name}: {type(orig).__name__}"  # e.g. IntegrityError: CheckViolation
    state = getattr(orig, "sqlstate", None)
    return f"{name}, SQLSTATE {state}" if isinstance(state, str) else name


@dataclass(slots=True)
class Quarantined:
    """A result the database refused on its own, and why (see `describe`)."""

    result: ProbeResult
    reason: str


@dataclass(slots=True)
class Isolated:
    """What became of a batch: `written` results stored, `quarantined` ones refused,
    and `unwritten` (a suffix of the batch) left over because storage failed with
    `error` (an outage) in the middle of the search."""

    written: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    unwritten: list[ProbeResult] = field(default_factory=list)
    error: Exception | None = None

    @property
    def done(self) -> int:
        """Results of the batch's prefix that need no further write."""
        return self.written + len(self.quarantined)


def write_isolating(writer: Writer, batch: Sequence[ProbeResult]) -> Isolated:
    """Write `batch`; if the database refuses it, write it by halves down to single
    rows and quarantine those refused alone. An outage on the first attempt raises as
    before (nothing was written); one during the search is returned in `error`."""
    if not batch:
        return Isolated()
    try:
        writer(batch)
        return Isolated(written=len(batch))
    except Exception as exc:
        if not is_rejection(exc):
            raise
        if len(batch) == 1:
            return Isolated(quarantined=[Quarantined(batch[0], describe(exc))])
    outcome = Isolated()
    middle = len(batch) // 2
    chunks: deque[Sequence[ProbeResult]] = deque([batch[:middle], batch[middle:]])
    while chunks:
        chunk = chunks.popleft()
        try:
            writer(chunk)
        except Exception as exc:
            if not is_rejection(exc):
                outcome.unwritten = [*chunk, *(result for rest in chunks for result in rest)]
                outcome.error = exc
                return outcome
            if len(chunk) == 1:
                outcome.quarantined.append(Quarantined(chunk[0], describe(exc)))
            else:
                middle = len(chunk) // 2
                chunks.appendleft(chunk[middle:])
                chunks.appendleft(chunk[:middle])
            continue
        outcome.written += len(chunk)
    return outcome
