"""Make any probe result storable, on SQLite and PostgreSQL alike.

Much of a result's text comes from the probed endpoint (a JSON field quoted in an
error, a recorded header, a scraped metric's name), so it is attacker-controlled: one
NUL byte, lone surrogate or NaN used to make PostgreSQL refuse the whole batch, which
the sink then retried forever, blinding monitoring of every target. This module is the
one place that closes that hole: `repository.write_batch` passes every result through
`storable` while building rows, whether it comes from the write buffer or the spill
file, so no probe kind or call site has to remember it.

What changes, and why:
- NUL becomes U+FFFD: PostgreSQL text cannot hold it at all. So do the other control
  characters except tab and line breaks (C0, DEL, C1): an endpoint's ESC would
  otherwise reach every terminal that prints a stored result (`primewatch probe`,
  `results`, a `tail` of the log) as an escape sequence.
- Lone surrogates (from a JSON `"\\ud800"` escape, or bytes decoded with
  `surrogateescape`) become U+FFFD: they cannot be encoded as UTF-8, so neither
  driver can send them; bytes are decoded as UTF-8 with replacement for the same reason.
- Strings are capped at their column's length (PostgreSQL refuses longer VARCHARs;
  SQLite would keep a megabyte per row), and `details`, `values` and `counts` at a
  bounded number of entries and characters, so one row stays small.
- NaN and infinities are left out of `values` and `counts`: PostgreSQL's JSON has no
  such tokens. The SLO rollups were classified from the measured result before this,
  so only the raw row loses them. `cert_days_left` that is not finite is dropped.
- Integers outside their column's range (`status_code`, `response_bytes`) become NULL.

`started_at`, `latency` and `ok` are measured by primewatch itself, never sent by an
endpoint: they are left alone, and a row the database still refuses is quarantined by
the sink (monitor/storage/isolate.py) rather than guessed at.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import cast

from sqlalchemy import String

from monitor.storage.models import ProbeResultRow
from probes.base import ProbeResult

REPLACEMENT = "\ufffd"
ELLIPSIS = "\u2026"
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _column_length(name: str) -> int:
    """The VARCHAR length of a `probe_results` column: caps follow the schema."""
    column_type = ProbeResultRow.__table__.c[name].type
    length = cast(String, column_type).length
    assert length is not None, f"probe_results.{name} has no length"
    return int(length)


TARGET_CHARS = _column_length("target")
REGION_CHARS = _column_length("region")
ERROR_CLASS_CHARS = _column_length("error_class")
ERROR_CHARS = _column_length("error")
KEY_CHARS = 100
"""Longest key kept in `details`, `values` and `counts` (a header or metric name)."""
DETAIL_CHARS = 1000
"""Longest `details` value (a recorded header, a final URL, a query's first row)."""
MAX_ENTRIES = 100
"""Entries kept per JSON column: more is a bug or an endpoint flooding us."""
DETAILS_BUDGET = 16 * 1024
"""Characters of keys and values kept in `details` in all: one row stays small."""
TRUNCATED_KEY = "truncated"
"""`details` entry saying how many entries were left out for size."""
_INT32 = 2**31
_INT64 = 2**63


def clean_text(value: object, limit: int) -> str:
    """`value` as text PostgreSQL and SQLite both accept, at most `limit` characters
    (the last one an ellipsis when cut, so a reader sees it was)."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = value if isinstance(value, str) else str(value)
    if _UNSTORABLE.search(text) is not None:
        text = _UNSTORABLE.sub(REPLACEMENT, text)
    if len(text) > limit:
        text = text[:max(0, limit - 1)] + ELLIPSIS
    return text


def storable(result: ProbeResult) -> ProbeResult:
    """A copy of `result` that any supported database stores (see the module doc);
    `result` itself when nothing needed to change, the common case."""
    cleaned = dataclasses.replace(
        result,
        target=clean_text(result.target, TARGET_CHARS),
        region=clean_text(result.region, REGION_CHARS),
        error_class=_optional_text(result.error_class, ERROR_CLASS_CHARS),
        error=_optional_text(result.error, ERROR_CHARS),
        status_code=_bounded_int(result.status_code, -_INT32, _INT32),
        response_bytes=_bounded_int(result.response_bytes, -_INT64, _INT64),
        cert_days_left=_finite(result.cert_days_left),
        values=_values(result.values),
        counts=_counts(result.counts),
        details=_details(result.details),
    )
    return result if cleaned == result else cleaned


def _optional_text(value: object, limit: int) -> str | None:
    return None if value is None else clean_text(value, limit)


def _bounded_int(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value < high else None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _values(values: Mapping[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        number = _finite(value)
        if number is not None and len(out) < MAX_ENTRIES:
            out[clean_text(key, KEY_CHARS)] = number
    return out


def _counts(counts: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for key, pair in counts.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            continue
        good, total = _finite(pair[0]), _finite(pair[1])
        if good is not None and total is not None and len(out) < MAX_ENTRIES:
            out[clean_text(key, KEY_CHARS)] = (good, total)
    return out


def _details(details: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    budget = DETAILS_BUDGET
    left_out = 0
    for key, value in details.items():
        name = clean_text(key, KEY_CHARS)
        text = clean_text(value, DETAIL_CHARS)
        if len(out) >= MAX_ENTRIES or len(name) + len(text) > budget:
            left_out += 1
            continue
        budget -= len(name) + len(text)
        out[name] = text
    if left_out:
        out[TRUNCATED_KEY] = f"{left_out} more entries not stored"
    return out
