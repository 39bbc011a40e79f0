"""Epoch seconds ↔ ISO 8601, as the API, the audit log and the notifiers write them.

Stored times are epoch seconds (monitor/storage/models.py); one formatter keeps every
JSON answer and outgoing message in the same UTC, millisecond form.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(timestamp: float) -> str:
    """`2026-11-26T08:11:38.833+00:00`."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def epoch(value: datetime) -> float:
    """Epoch seconds of a parsed query time; a time without a zone is taken as UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
