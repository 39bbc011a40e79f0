"""Reads for the targets page: last result, uptime, latency, error classes, TLS and cold
starts of every target.

Bounded by construction, whatever the history: each read is one statement for all
targets or an index seek per target on (target, started_at); charts have at most
`MAX_POINTS` buckets, read from the coarsest rollups that fit; raw rows read for a chart
are capped. `summaries` is cached per range for a few seconds (`cache_of`).

Where numbers come from:

- Uptime prefers the target's availability SLO rollups (kept for months, maintenance
  left out, the same events as its SLO); without one it counts raw results, which are
  kept `storage.retention.raw` (14 days by default), so a longer window is marked
  partial. No events: None ("—"), never 100%.
- Latency: for short ranges the raw latencies; else p50/p95 per bucket from the
  latency bins of an availability or latency SLO of the target, else from raw results.
  Only successful probes count (a timeout is not a response time), as in the SLO bins.
- Error classes and cold starts can only come from raw results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, and_, case, false, func, select

from dashboards.ranges import TimeRange
from monitor.config import Settings
from monitor.config_slo import SloConfig
from monitor.storage import rollups
from monitor.storage.models import ProbeResultRow
from monitor.storage.repository import stored_result
from probes.base import ProbeResult, TargetConfig
from slo.sketch import quantile
from slo.windows import split_by_resolution

WINDOWS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MAX_POINTS = 300
RAW_RANGE = 3600  # ranges up to this long chart every raw latency
MAX_RAW_POINTS = 750
MAX_RAW_ROWS = 20_000
STEPS = (60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)
TLS_LOOKBACK = 86400  # the newest certificate reading is searched this far back
Point = tuple[float, float | None]


@dataclass(frozen=True, slots=True)
class Uptime:
    """Share of good probes in one window; None when the window holds no events."""

    value: float | None
    total: int
    partial: bool = False  # raw results do not reach back over the whole window


@dataclass(frozen=True, slots=True)
class Latency:
    """A chart's series in milliseconds, and a sentence saying where they come from."""

    kind: Literal["raw", "percentiles"]
    series: dict[str, list[Point]]
    source: str
    step: int = 0
    capped: bool = False


@dataclass(frozen=True, slots=True)
class TargetSummary:
    config: TargetConfig
    last: ProbeResult | None
    uptime: dict[str, Uptime]
    uptime_source: str  # "SLO <name>" or "raw results"
    latency: Latency
    errors: list[tuple[str, int]]  # failed probes per error class in the range, most first
    raw_from: float  # raw results (errors, cold starts) cover the range from here
    tls: bool
    cert_days_left: float | None
    cold_starts: int | None  # None: the target does not detect cold starts


def availability_slo(settings: Settings, target: str) -> SloConfig | None:
    """The first availability SLO over all of the target's regions."""
    return next((s for s in settings.slos if s.target == target and s.sli == "availability"
                 and s.region is None), None)


def binned_slo(settings: Settings, target: str) -> SloConfig | None:
    """An SLO whose bins hold the latency of the target's successful probes."""
    return availability_slo(settings, target) or next(
        (s for s in settings.slos if s.target == target and s.sli == "latency"
         and s.region is None), None)


def uptime_end(now: float) -> int:
    """Windows end after the current minute, like the range picker's."""
    return int(now // 60 * 60 + 60)


# --- reads -----------------------------------------------------------------------------


def last_results(engine: Engine, targets: Sequence[str]) -> dict[str, ProbeResult]:
    """Newest result per target: an index seek each (a GROUP BY over the whole table
    would read every stored result)."""
    found: dict[str, ProbeResult] = {}
    with engine.connect() as connection:
        for name in targets:
            row = connection.execute(
                select(ProbeResultRow).where(ProbeResultRow.target == name)
                .order_by(ProbeResultRow.started_at.desc(), ProbeResultRow.id.desc())
                .limit(1)).mappings().first()
            if row is not None:
                found[name] = stored_result(row).result
    return found


def slo_uptimes(engine: Engine, slos: Sequence[str], end: int
                ) -> dict[str, dict[str, Uptime]]:
    """Uptime per window from SLO rollups: one statement for every SLO and window."""
    if not slos:
        return {}
    answers = rollups.sum_counts_many(engine, [
        (slos, split_by_resolution(end - seconds, end)) for seconds in WINDOWS.values()])
    out: dict[str, dict[str, Uptime]] = {slo: {} for slo in slos}
    for key, answer in zip(WINDOWS, answers, strict=True):
        for slo, (good, total) in answer.items():
            out[slo][key] = Uptime(good / total if total else None, total)
    return out


def raw_uptimes(engine: Engine, targets: Sequence[str], end: int, kept_from: float
                ) -> dict[str, dict[str, Uptime]]:
    """Uptime per window counted from raw results: one statement for every target."""
    if not targets:
        return {}
    row = ProbeResultRow
    columns: list[Any] = [row.target]
    for seconds in WINDOWS.values():
        inside = row.started_at >= end - seconds
        columns.append(func.sum(case((inside, 1), else_=0)))
        columns.append(func.sum(case((and_(inside, row.ok.is_(True)), 1), else_=0)))
    query = (select(*columns).where(row.target.in_(list(targets)),
                                    row.started_at >= end - max(WINDOWS.values()),
                                    row.started_at < end)
             .group_by(row.target))
    out: dict[str, dict[str, Uptime]] = {
        name: {key: Uptime(None, 0, end - seconds < kept_from)
               for key, seconds in WINDOWS.items()} for name in targets}
    with engine.connect() as connection:
        for target, *sums in connection.execute(query):
            for index, (key, seconds) in enumerate(WINDOWS.items()):
                total, good = int(sums[2 * index] or 0), int(sums[2 * index + 1] or 0)
                out[target][key] = Uptime(good / total if total else None, total,
                                          end - seconds < kept_from)
    return out


def error_counts(engine: Engine, targets: Sequence[str], start: float, end: float
                 ) -> dict[str, list[tuple[str, int]]]:
    """Failed probes per error class and target in [start, end), most frequent first."""
    out: dict[str, list[tuple[str, int]]] = {name: [] for name in targets}
    if not targets:
        return out
    row = ProbeResultRow
    query = (select(row.target, row.error_class, func.count())
             .where(row.target.in_(list(targets)), row.started_at >= start,
                    row.started_at < end,
                    row.ok == false())  # `ok = 0`: the partial index ix_probe_results_failures
             .group_by(row.target, row.error_class))
    with engine.connect() as connection:
        for target, error_class, count in connection.execute(query):
            out[target].append((error_class or "unclassified", int(count)))
    for counts in out.values():
        counts.sort(key=lambda item: (-item[1], item[0]))
    return out


def cold_start_counts(engine: Engine, targets: Sequence[str], start: float, end: float
                      ) -> dict[str, int]:
    """Probes flagged `values.cold_start` per target in [start, end)."""
    if not targets:
        return {}
    row = ProbeResultRow
    flagged = row.values["cold_start"].as_float() >= 1.0
    query = (select(row.target, func.count())
             .where(row.target.in_(list(targets)), row.started_at >= start,
                    row.started_at < end, flagged)
             .group_by(row.target))
    out = dict.fromkeys(targets, 0)
    with engine.connect() as connection:
        for target, count in connection.execute(query):
            out[target] = int(count)
    return out


def cert_days(engine: Engine, targets: Sequence[str], now: float) -> dict[str, float]:
    """Certificate days left from each target's newest result that measured them
    (a refused connection measures none) within `TLS_LOOKBACK`."""
    found: dict[str, float] = {}
    row = ProbeResultRow
    with engine.connect() as connection:
        for name in targets:
            value = connection.execute(
                select(row.cert_days_left)
                .where(row.target == name, row.started_at >= now - TLS_LOOKBACK,
                       row.cert_days_left.is_not(None))
                .order_by(row.started_at.desc()).limit(1)).scalar_one_or_none()
            if value is not None:
                found[name] = float(value)
    return found


def raw_latencies(engine: Engine, target: str, start: float, end: float, limit: int
                  ) -> tuple[list[tuple[float, float]], bool]:
    """(started_at, latency s) of successful probes, oldest first: the newest `limit`,
    and whether more were left out."""
    row = ProbeResultRow
    query = (select(row.started_at, row.latency)
             .where(row.target == target, row.started_at >= start, row.started_at < end,
                    row.ok.is_(True))
             .order_by(row.started_at.desc()).limit(limit + 1))
    with engine.connect() as connection:
        rows = [(float(at), float(latency)) for at, latency in connection.execute(query)]
    return rows[:limit][::-1], len(rows) > limit


def chart_step(span: TimeRange) -> int:
    """The finest bucket that keeps a chart under `MAX_POINTS` points."""
    return next((s for s in STEPS if span.seconds / s <= MAX_POINTS), STEPS[-1])


def buckets(span: TimeRange, step: int) -> list[int]:
    first = int(span.start // step * step)
    return list(range(first, int(span.end), step))


def binned_percentiles(engine: Engine, slos: Sequence[str], span: TimeRange, step: int
                       ) -> dict[str, dict[str, list[Point]]]:
    """p50/p95 per bucket of each SLO's latency bins, in ms; None where a bucket had no
    successful probe. One statement: a range seek per bucket, on hour rows when the
    step is whole hours, else on minute rows."""
    if not slos:
        return {}
    resolution = rollups.HOUR if step % rollups.HOUR == 0 else rollups.MINUTE
    starts = buckets(span, step)
    answers = rollups.sum_bins_many(
        engine, [(slos, [(resolution, start, start + step)]) for start in starts])
    out: dict[str, dict[str, list[Point]]] = {s: {"p50": [], "p95": []} for s in slos}
    for start, answer in zip(starts, answers, strict=True):
        for slo in slos:
            bins = answer.get(slo, {})
            for label, q in (("p50", 0.5), ("p95", 0.95)):
                value = quantile(bins, q) if bins else None
                out[slo][label].append((start + step / 2,
                                        None if value is None else value * 1000))
    return out


def raw_percentiles(samples: Sequence[tuple[float, float]], span: TimeRange, step: int
                    ) -> dict[str, list[Point]]:
    """p50/p95 per bucket of raw latencies (s) → ms; the lower-rank quantile, like the
    bins, so both sources draw the same line for the same probes."""
    grouped: dict[int, list[float]] = defaultdict(list)
    for at, latency in samples:
        grouped[int(at // step * step)].append(latency)
    out: dict[str, list[Point]] = {"p50": [], "p95": []}
    for start in buckets(span, step):
        values = sorted(grouped.get(start, []))
        for label, q in (("p50", 0.5), ("p95", 0.95)):
            value = values[int(q * (len(values) - 1))] * 1000 if values else None
            out[label].append((start + step / 2, value))
    return out


def latency(engine: Engine, settings: Settings, target: str, span: TimeRange,
            binned: dict[str, dict[str, list[Point]]], step: int) -> Latency:
    """The chart of one target (`binned`: the SLO percentiles read for every target)."""
    if span.seconds <= RAW_RANGE:
        rows, capped = raw_latencies(engine, target, span.start, span.end, MAX_RAW_POINTS)
        return Latency("raw", {"latency": [(at, value * 1000) for at, value in rows]},
                       "every successful probe's latency", capped=capped)
    slo = binned_slo(settings, target)
    if slo is not None and slo.name in binned:
        return Latency("percentiles", binned[slo.name],
                       f"p50 and p95 of successful probes from the bins of SLO {slo.name}",
                       step=step)
    rows, capped = raw_latencies(engine, target, span.start, span.end, MAX_RAW_ROWS)
    return Latency("percentiles", raw_percentiles(rows, span, step),
                   "p50 and p95 of successful probes from raw results", step=step,
                   capped=capped)


def summaries(engine: Engine, settings: Settings, span: TimeRange, now: float
              ) -> list[TargetSummary]:
    """Everything the targets page shows, for every configured target."""
    targets = list(settings.targets)
    names = [t.name for t in targets]
    end = uptime_end(now)
    kept_from = now - settings.storage.retention.raw
    uptime_slos = {name: availability_slo(settings, name) for name in names}
    by_slo = slo_uptimes(engine, [s.name for s in uptime_slos.values() if s is not None], end)
    raw = raw_uptimes(engine, [n for n, s in uptime_slos.items() if s is None], end, kept_from)
    step = chart_step(span)
    binned = {} if span.seconds <= RAW_RANGE else binned_percentiles(
        engine, sorted({s.name for n in names if (s := binned_slo(settings, n))}), span, step)
    raw_from = max(span.start, kept_from)
    errors = error_counts(engine, names, raw_from, span.end)
    tracked = [t.name for t in targets if getattr(t, "cold_start", None) is not None]
    colds = cold_start_counts(engine, tracked, raw_from, span.end)
    last = last_results(engine, names)
    tls_targets = [t.name for t in targets if t.display_url().startswith("https://")]
    certs = cert_days(engine, tls_targets, now)
    out = []
    for config in targets:
        name = config.name
        slo = uptime_slos[name]
        out.append(TargetSummary(
            config=config, last=last.get(name),
            uptime=by_slo[slo.name] if slo is not None else raw[name],
            uptime_source=f"SLO {slo.name}" if slo is not None else "raw results",
            latency=latency(engine, settings, name, span, binned, step),
            errors=errors[name], raw_from=raw_from,
            tls=name in tls_targets,
            cert_days_left=certs.get(name), cold_starts=colds.get(name)))
    return out
