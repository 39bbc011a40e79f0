"""Rollup tiers: every write adds to minute, hour and day buckets at once.

Why all three at ingest: counts are additive, so late results (a buffer flushed after a
database outage) land in the right hour and day without a compaction pass, and a 30-day
window is read from ~30 day rows plus the hour and minute rows at its ragged edges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from monitor.storage.models import LatencyBin, SloRollup
from slo.rollup import BucketDelta

MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS = (MINUTE, HOUR, DAY)
Range = tuple[int, int, int]
"""(resolution, first bucket start, end exclusive): buckets of one size covering a span."""

MAX_PARAMETERS = 20_000  # per statement; SQLite allows 32,766
ROLLUPS: Table = SloRollup.__table__  # type: ignore[assignment]
BINS: Table = LatencyBin.__table__  # type: ignore[assignment]


def tiered(deltas: Mapping[tuple[str, int], BucketDelta]
           ) -> dict[tuple[str, int, int], BucketDelta]:
    """Minute deltas summed into minute, hour and day buckets: key (slo, resolution, start)."""
    out: dict[tuple[str, int, int], BucketDelta] = {}
    for (slo, start), delta in deltas.items():
        for resolution in RESOLUTIONS:
            key = (slo, resolution, start - start % resolution)
            into = out.get(key)
            if into is None:
                into = out[key] = BucketDelta()
            into.good += delta.good
            into.total += delta.total
            for bin_index, count in delta.bins.items():
                into.bins[bin_index] = into.bins.get(bin_index, 0) + count
    return out


def add_deltas(connection: Connection, deltas: Mapping[tuple[str, int], BucketDelta]) -> None:
    """Add minute deltas to all tiers (INSERT ... ON CONFLICT DO UPDATE SET x = x + new)."""
    tiers = tiered(deltas)
    rollups = [{"slo": slo, "resolution": res, "bucket_start": start, "good": d.good,
                "total": d.total} for (slo, res, start), d in tiers.items()]
    bins = [{"slo": slo, "resolution": res, "bucket_start": start, "bin": b, "count": c}
            for (slo, res, start), d in tiers.items() for b, c in d.bins.items()]
    if rollups:
        _upsert_add(connection, ROLLUPS, rollups, ("slo", "resolution", "bucket_start"),
                    ("good", "total"))
    if bins:
        _upsert_add(connection, BINS, bins, ("slo", "resolution", "bucket_start", "bin"),
                    ("count",))


def _upsert_add(connection: Connection, table: Table, rows: list[dict[str, Any]],
                keys: Sequence[str], counters: Sequence[str]) -> None:
    dialect = connection.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"storage backend {dialect!r} is not supported")
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + statement.excluded[c] for c in counters},
    )
    connection.execute(statement, rows)


def sum_counts(engine: Engine, slos: Sequence[str], ranges: Sequence[Range]
               ) -> dict[str, tuple[int, int]]:
    """(good, total) per SLO over the union of `ranges`."""
    return sum_counts_many(engine, [(slos, ranges)])[0]


def sum_counts_many(engine: Engine, requests: Sequence[tuple[Sequence[str], Sequence[Range]]]
                    ) -> list[dict[str, tuple[int, int]]]:
    """Several window sums in ONE statement: each (SLOs, ranges) request answered as
    {slo: (good, total)}.

    Every range is its own UNION ALL branch, an index range seek on (slo, resolution,
    bucket_start). OR-ing ranges in one WHERE made SQLite scan every row of the SLOs (cost
    growing with history), and one query per window cost PostgreSQL a round trip each.
    """
    found = [dict.fromkeys(slos, (0, 0)) for slos, _ in requests]

    def aggregate(rows: Any) -> Any:
        return (select(rows.c.request, rows.c.slo, func.sum(rows.c.good),
                       func.sum(rows.c.total)).group_by(rows.c.request, rows.c.slo))

    for index, slo, good, total in _union_rows(engine, requests, SloRollup,
                                               (SloRollup.good, SloRollup.total), aggregate):
        found[int(index)][slo] = (int(good or 0), int(total or 0))
    return found


def sum_bins(engine: Engine, slos: Sequence[str], ranges: Sequence[Range]
             ) -> dict[str, dict[int, int]]:
    """Value histograms per SLO summed over the union of `ranges` (one seek per range)."""
    return sum_bins_many(engine, [(slos, ranges)])[0]


def sum_bins_many(engine: Engine, requests: Sequence[tuple[Sequence[str], Sequence[Range]]]
                  ) -> list[dict[str, dict[int, int]]]:
    """Several histogram sums in one statement, like `sum_counts_many`."""
    found: list[dict[str, dict[int, int]]] = [{slo: {} for slo in slos} for slos, _ in requests]

    def aggregate(rows: Any) -> Any:
        return (select(rows.c.request, rows.c.slo, rows.c.bin, func.sum(rows.c.count))
                .group_by(rows.c.request, rows.c.slo, rows.c.bin))

    for index, slo, bin_index, count in _union_rows(
            engine, requests, LatencyBin, (LatencyBin.bin, LatencyBin.count), aggregate):
        found[int(index)][slo][int(bin_index)] = int(count)
    return found


def _union_rows(engine: Engine, requests: Sequence[tuple[Sequence[str], Sequence[Range]]],
                model: Any, columns: Sequence[Any], aggregate: Callable[[Any], Any]
                ) -> Iterator[Any]:
    """One UNION ALL branch (an index range seek) per (request, range), tagged with the
    request's index, aggregated by `aggregate`; batched under SQLite's bound-parameter
    limit."""
    batches: list[list[Any]] = [[]]
    parameters = 0
    for index, (slos, ranges) in enumerate(requests):
        for resolution, first, end in ranges if slos else ():
            cost = len(slos) + 4
            if parameters + cost > MAX_PARAMETERS and batches[-1]:
                batches.append([])
                parameters = 0
            parameters += cost
            batches[-1].append(
                select(literal(index).label("request"), model.slo, *columns)
                .where(model.slo.in_(list(slos)), model.resolution == resolution,
                       model.bucket_start >= first, model.bucket_start < end))
    with engine.connect() as connection:
        for branches in batches:
            if branches:
                yield from connection.execute(aggregate(union_all(*branches).subquery()))


def series(engine: Engine, slos: Sequence[str], resolution: int, start: int, end: int
           ) -> dict[str, list[tuple[int, int, int]]]:
    """(bucket_start, good, total) rows per SLO at one resolution in [start, end), oldest first."""
    found: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    if not slos:
        return {}
    query = (select(SloRollup.slo, SloRollup.bucket_start, SloRollup.good, SloRollup.total)
             .where(SloRollup.slo.in_(list(slos)), SloRollup.resolution == resolution,
                    SloRollup.bucket_start >= start, SloRollup.bucket_start < end)
             .order_by(SloRollup.slo, SloRollup.bucket_start))
    with engine.connect() as connection:
        for slo, bucket, good, total in connection.execute(query):
            found[slo].append((int(bucket), int(good), int(total)))
    return {slo: found.get(slo, []) for slo in slos}


def delete_span(connection: Connection, slos: Iterable[str], start: int, end: int) -> None:
    """Remove every tier's rows of these SLOs whose bucket lies in [start, end) (backfill).

    `start` and `end` must be day-aligned so no hour or day row is left half-counted.
    """
    if start % DAY or end % DAY:
        raise ValueError("delete_span needs day-aligned bounds")
    names = list(slos)
    for table in (ROLLUPS, BINS):
        connection.execute(delete(table).where(table.c.slo.in_(names),
                                               table.c.bucket_start >= start,
                                               table.c.bucket_start < end))



def first_buckets(engine: Engine, slos: Sequence[str]) -> dict[str, int]:
    """When each SLO's stored data begins (epoch seconds), for "collecting since".

    The minute tier gives the exact start; a day row older than the first retained
    minute means the data reaches back further than minute retention, and that day is
    the best answer left. SLOs without any row are absent.
    """
    if not slos:
        return {}
    names = list(slos)
    query = (select(SloRollup.slo, SloRollup.resolution, func.min(SloRollup.bucket_start))
             .where(SloRollup.slo.in_(names), SloRollup.resolution.in_((MINUTE, DAY)))
             .group_by(SloRollup.slo, SloRollup.resolution))
    minutes: dict[str, int] = {}
    days: dict[str, int] = {}
    with engine.connect() as connection:
        for slo, resolution, first in connection.execute(query):
            (minutes if resolution == MINUTE else days)[slo] = int(first)
    found: dict[str, int] = {}
    for slo in names:
        minute, day = minutes.get(slo), days.get(slo)
        if minute is not None and (day is None or day >= minute - minute % DAY):
            found[slo] = minute
        elif day is not None:
            found[slo] = day
    return found
