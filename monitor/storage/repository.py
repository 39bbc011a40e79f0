"""Every read and write of primewatch's data, as typed functions over an Engine.

Routes, the CLI and the SLO service call these; no SQL lives anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, text

from monitor.storage.models import ProbeResultRow
from monitor.storage.rollups import add_deltas
from monitor.storage.sanitize import storable
from probes.base import ProbeResult
from slo.rollup import BucketDelta

_RESULT_COLUMNS = ("target", "region", "started_at", "ok", "latency", "status_code",
                   "error_class", "error", "cert_days_left", "response_bytes")


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A probe result read back from storage, with its id (the pagination cursor)."""

    id: int
    result: ProbeResult


def write_batch(engine: Engine, results: Sequence[ProbeResult],
                deltas: Mapping[tuple[str, int], BucketDelta]) -> None:
    """Store raw results and add their rollup deltas (every tier), in one transaction.

    Every row passes through `storable` (monitor/storage/sanitize.py): text an endpoint
    sent can hold NUL, lone surrogates or a megabyte, which would make the database
    refuse the whole batch."""
    with engine.begin() as connection:
        if results:
            connection.execute(insert(ProbeResultRow), [_row(r) for r in results])
        add_deltas(connection, deltas)


def _row(probed: ProbeResult) -> dict[str, Any]:
    result = storable(probed)
    row = {name: getattr(result, name) for name in _RESULT_COLUMNS}
    row["values"] = result.values or None
    row["counts"] = {k: list(v) for k, v in result.counts.items()} or None
    row["details"] = result.details or None
    return row


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def latest_results(engine: Engine) -> dict[str, StoredResult]:
    """The newest result of every target that has one."""
    newest = (select(ProbeResultRow.target, func.max(ProbeResultRow.id).label("id"))
              .group_by(ProbeResultRow.target).subquery())
    query = select(ProbeResultRow).join(newest, ProbeResultRow.id == newest.c.id)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return {row["target"]: stored_result(row) for row in rows}


def results_page(engine: Engine, target: str, *, since: float | None, before_id: int | None,
                 limit: int) -> list[StoredResult]:
    """Newest-first results of one target, `limit` at a time, continuing below `before_id`."""
    conditions = [ProbeResultRow.target == target]
    if since is not None:
        conditions.append(ProbeResultRow.started_at >= since)
    if before_id is not None:
        conditions.append(ProbeResultRow.id < before_id)
    query = (select(ProbeResultRow).where(and_(*conditions))
             .order_by(ProbeResultRow.id.desc()).limit(limit))
    with engine.connect() as connection:
        return [stored_result(row) for row in connection.execute(query).mappings()]


def stored_result(row: Any) -> StoredResult:
    counts = {k: (float(v[0]), float(v[1])) for k, v in (row["counts"] or {}).items()}
    return StoredResult(row["id"], ProbeResult(
        target=row["target"], started_at=row["started_at"], ok=bool(row["ok"]),
        latency=row["latency"], region=row["region"], status_code=row["status_code"],
        error_class=row["error_class"], error=row["error"],
        cert_days_left=row["cert_days_left"], response_bytes=row["response_bytes"],
        values=dict(row["values"] or {}), counts=counts, details=dict(row["details"] or {})))


def count_results(engine: Engine, target: str | None = None) -> int:
    query = select(func.count()).select_from(ProbeResultRow)
    if target is not None:
        query = query.where(ProbeResultRow.target == target)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
