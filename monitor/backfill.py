"""Re-deriving SLO rollups from the raw results still retained.

Used after an SLO's definition changes (`primewatch slo backfill`) and when a
maintenance window or correction is added or removed for the past. Works a day at a
time, each day in one transaction, so readers never see a half-rebuilt day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from monitor.config_slo import SloConfig
from monitor.ingest import Classifier
from monitor.storage.models import ProbeResultRow
from monitor.storage.repository import stored_result
from monitor.storage.rollups import DAY, add_deltas, delete_span


@dataclass(frozen=True, slots=True)
class BackfillReport:
    days_rebuilt: int
    results_read: int
    first_day: int | None
    skipped_before: int | None  # days older than raw retention were left as they were


def backfill(engine: Engine, classifier: Classifier, slos: Sequence[SloConfig], *,
             start: float, end: float, raw_kept_since: float,
             progress: Callable[[int, int], None] | None = None) -> BackfillReport:
    """Rebuild every day touching [start, end) whose raw results are fully retained."""
    first = int(start // DAY) * DAY
    last = int(-(-end // DAY)) * DAY
    kept_from = int(-(-raw_kept_since // DAY)) * DAY  # the first whole retained day
    skipped = first if first < kept_from else None
    first = max(first, kept_from)
    names = [slo.name for slo in slos]
    targets = sorted({slo.target for slo in slos})
    by_target = {t: [s for s in slos if s.target == t] for t in targets}
    scoped = Classifier([], classifier.calendar)
    scoped.slos_by_target = by_target
    days = list(range(first, last, DAY))
    read = 0
    for index, day in enumerate(days):
        with engine.begin() as connection:
            delete_span(connection, names, day, day + DAY)
            rows = connection.execute(
                select(ProbeResultRow).where(ProbeResultRow.target.in_(targets),
                                             ProbeResultRow.started_at >= day,
                                             ProbeResultRow.started_at < day + DAY)
            ).mappings().all()
            results = [stored_result(row).result for row in rows]
            read += len(results)
            add_deltas(connection, scoped.deltas(results))
        if progress is not None:
            progress(index + 1, len(days))
    return BackfillReport(len(days), read, first if days else None, skipped)
