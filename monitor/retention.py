"""Retention: raw results, minute and hour rollups pruned per `storage.retention`.

Deletes go in bounded batches (a few thousand rows or a few hours of buckets per
transaction) so pruning a large backlog never locks the database for long. Day rollups
are kept: one row per SLO per day is the long-term record.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, select

from monitor.config import Retention
from monitor.storage.models import ProbeResultRow
from monitor.storage.rollups import HOUR, MINUTE, prune_resolution


@dataclass(frozen=True, slots=True)
class PruneReport:
    raw: int
    minute: int
    hour: int


def prune(engine: Engine, retention: Retention, now: float, *, batch: int = 5000) -> PruneReport:
    """Delete everything older than its retention; returns rows deleted per kind."""
    raw = prune_raw(engine, now - retention.raw, batch=batch)
    minute = prune_resolution(engine, MINUTE, int(now - retention.minute))
    hour = prune_resolution(engine, HOUR, int(now - retention.hour))
    return PruneReport(raw, minute, hour)


def prune_raw(engine: Engine, cutoff: float, *, batch: int = 5000) -> int:
    deleted = 0
    while True:
        with engine.begin() as connection:
            ids = list(connection.execute(
                select(ProbeResultRow.id).where(ProbeResultRow.started_at < cutoff)
                .order_by(ProbeResultRow.id).limit(batch)).scalars())
            if not ids:
                return deleted
            connection.execute(delete(ProbeResultRow).where(ProbeResultRow.id.in_(ids)))
            deleted += len(ids)
