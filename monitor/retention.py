"""Retention: raw results, minute and hour rollups and the write audit pruned per
`storage.retention`; cluster instances silent for a week forgotten.

Every transaction deletes at most `batch` rows, so pruning a large backlog never holds
SQLite's single write lock (or PostgreSQL row locks) for long: the result sink's writes
interleave. Each batch is picked by index range seeks, per target on (target,
started_at) and per SLO on the (slo, resolution, bucket_start) primary keys, so a pass
costs what it deletes rather than the size of the tables: "resolution = ? AND
bucket_start < ?" over all SLOs, or raw rows picked by id, scanned the whole table for
every batch. Day rollups are kept: one row per SLO per day is the long-term record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Engine,
    Table,
    delete,
    select,
    text,
    tuple_,
)

from monitor.config import Retention
from monitor.storage.models import AuditRow, InstanceRow, ProbeResultRow
from monitor.storage.rollups import BINS, HOUR, MINUTE, ROLLUPS

RESULTS: Table = ProbeResultRow.__table__  # type: ignore[assignment]
NAMES_PER_STATEMENT = 500  # targets or SLOs per IN list: far below SQLite's 32,766 limit
FORGET_INSTANCES_AFTER = 7 * 86400.0  # instances silent this long leave /api/v1/cluster


@dataclass(frozen=True, slots=True)
class PruneReport:
    """Rows deleted per kind, and in how many transactions."""

    raw: int
    minute: int
    hour: int
    transactions: int = 0
    audit: int = 0
    instances: int = 0


def prune(engine: Engine, retention: Retention, now: float, *, batch: int = 5000) -> PruneReport:
    """Delete everything older than its retention; returns rows deleted per kind."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    with engine.connect() as connection:
        targets = distinct_values(connection, "probe_results", "target")
        # Bins are written with their rollup row, but a bin without one is pruned too.
        slos = sorted(set(distinct_values(connection, "slo_rollups", "slo"))
                      | set(distinct_values(connection, "latency_bins", "slo")))
    raw, transactions = _drain(engine, RESULTS, targets,
                               RESULTS.c.started_at < now - retention.raw, batch)
    deleted: dict[int, int] = {}
    for resolution, kept in ((MINUTE, retention.minute), (HOUR, retention.hour)):
        deleted[resolution] = 0
        for table in (ROLLUPS, BINS):
            rows, count = _drain(engine, table, slos, (table.c.resolution == resolution)
                                 & (table.c.bucket_start < int(now - kept)), batch)
            deleted[resolution] += rows
            transactions += count
    audit, count = prune_audit(engine, now - retention.audit, batch)
    instances = forget_instances(engine, now - FORGET_INSTANCES_AFTER)
    return PruneReport(raw, deleted[MINUTE], deleted[HOUR],
                       transactions + count + (1 if instances else 0), audit, instances)


def prune_audit(engine: Engine, cutoff: float, batch: int) -> tuple[int, int]:
    """Audit entries older than `cutoff`, `batch` per transaction by the `at` index:
    (rows, transactions)."""
    some = select(AuditRow.id).where(AuditRow.at < cutoff).limit(batch)
    return _repeat(engine, delete(AuditRow).where(AuditRow.id.in_(some)), batch)


def forget_instances(engine: Engine, cutoff: float) -> int:
    """Cluster instances silent since `cutoff` (replaced or renamed for good): a handful
    of rows, one statement. Here, once per pass by the leader, not by every instance on
    every heartbeat."""
    with engine.begin() as connection:
        return connection.execute(
            delete(InstanceRow).where(InstanceRow.heartbeat_at < cutoff)).rowcount


def _drain(engine: Engine, table: Table, names: Sequence[str],
           expired: ColumnElement[bool], batch: int) -> tuple[int, int]:
    """Delete `table`'s expired rows of these targets or SLOs (its first key column),
    `batch` rows per transaction: (rows, transactions)."""
    key = table.primary_key.columns.values()
    name = table.c.target if table is RESULTS else table.c.slo
    deleted = transactions = 0
    for first in range(0, len(names), NAMES_PER_STATEMENT):
        chunk = list(names[first:first + NAMES_PER_STATEMENT])
        # Which rows does not matter, only that they expired: no ORDER BY, no sort.
        some = select(*key).where(name.in_(chunk), expired).limit(batch)
        statement = delete(table).where(
            key[0].in_(some) if len(key) == 1 else tuple_(*key).in_(some))
        rows, count = _repeat(engine, statement, batch)
        deleted += rows
        transactions += count
    return deleted, transactions


def _repeat(engine: Engine, statement: Delete, batch: int) -> tuple[int, int]:
    """Run a DELETE of at most `batch` rows, one transaction each, until one deletes
    fewer: (rows, transactions that deleted any)."""
    deleted = transactions = 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(statement).rowcount
        if rows > 0:
            deleted += rows
            transactions += 1
        if rows < batch:
            return deleted, transactions


def distinct_values(connection: Connection, table: str, column: str) -> list[str]:
    """Distinct values of an indexed leading column, one index seek each (a "loose index
    scan"): SELECT DISTINCT would read every index entry, millions for results."""
    query = text(f"""
        WITH RECURSIVE walk(value) AS (
            SELECT min({column}) FROM {table}
            UNION ALL
            SELECT (SELECT min({column}) FROM {table} WHERE {column} > walk.value)
            FROM walk WHERE walk.value IS NOT NULL)
        SELECT value FROM walk WHERE value IS NOT NULL""")
    return [str(value) for value in connection.execute(query).scalars()]
