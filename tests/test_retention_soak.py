"""30 simulated days of 20 targets on a fake clock, through the runtime's own evaluation
tick (which prunes hourly): every pruned tier stops growing at its retention horizon,
day rollups are kept, and the SLOs still evaluate exactly at the end."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.storage.models import LatencyBin, ProbeResultRow, SloRollup
from monitor.storage.rollups import DAY, HOUR, MINUTE
from probes.base import ProbeResult

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TARGETS, INTERVAL, DAYS = 20, 1800, 30
RAW, MINUTES, HOURS = 3, 6, 12  # retention, days
TICK = 12 * HOUR  # evaluation (and so prune) cadence: coarse, to keep the test quick


def settings() -> Settings:
    slos = [{"name": f"t{i}-up", "target": f"t{i}", "sli": "availability", "objective": 99,
             "window": "5d"} for i in range(TARGETS)]
    slos += [{"name": f"t{i}-fast", "target": f"t{i}", "sli": "latency", "threshold": "200ms",
              "objective": 50, "window": "5d"} for i in range(0, TARGETS, 4)]
    return Settings.model_validate({
        "targets": [{"name": f"t{i}", "type": "http", "url": f"http://127.0.0.1:1/{i}",
                     "interval": f"{INTERVAL}s"} for i in range(TARGETS)],
        "slos": slos,
        "storage": {"retention": {"raw": f"{RAW}d", "minute": f"{MINUTES}d",
                                  "hour": f"{HOURS}d"}}})


def schedule(start: float, end: float) -> list[ProbeResult]:
    """Every target every INTERVAL, 7 s into its own minute; the same pattern each day,
    so each tier's rows per day are equal and a bounded tier is exactly flat."""
    out = []
    for i in range(TARGETS):
        offset = i * 60 + 7
        first = start + (offset - start) % INTERVAL
        at = first
        while at < end:
            k = round((at - T0 - offset) / INTERVAL) % 48
            down = i == 3 and 20 <= k < 24  # t3 fails two hours a day
            out.append(ProbeResult(target=f"t{i}", started_at=at, ok=not down,
                                   latency=0.05 + 0.01 * (k % 30)))
            at += INTERVAL
    return out


def tier_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = {"raw": connection.execute(select(func.count()).select_from(ProbeResultRow))
                .scalar_one()}
        for model in (SloRollup, LatencyBin):
            for resolution, name in ((MINUTE, "minute"), (HOUR, "hour"), (3600 * 24, "day")):
                rows[f"{model.__tablename__}/{name}"] = connection.execute(
                    select(func.count()).select_from(model)
                    .where(model.resolution == resolution)).scalar_one()
    return rows


def test_thirty_days_stay_bounded_by_retention_and_slos_still_evaluate(engine: Engine) -> None:
    config = settings()
    clock = FakeClock(T0)
    runtime = Runtime(config, engine, clock, Metrics(CollectorRegistry()))
    service = runtime.service
    writer = ResultWriter(engine, config.slos, service.calendar, service.slo_engine.forget)
    daily: dict[str, list[int]] = defaultdict(list)
    at = T0
    while at < T0 + DAYS * DAY:
        writer(schedule(at, at + TICK))
        at += TICK
        clock.set(at)
        runtime._evaluate_and_publish()  # evaluates every SLO and, an hour on, prunes
        if (at - T0) % DAY == 0:
            for kind, count in tier_rows(engine).items():
                daily[kind].append(count)

    per_day = TARGETS * DAY // INTERVAL
    assert daily["raw"][RAW - 1:] == [RAW * per_day] * (DAYS - RAW + 1)  # flat from day 3
    for table in ("slo_rollups", "latency_bins"):
        for name, horizon in (("minute", MINUTES), ("hour", HOURS)):
            counts = daily[f"{table}/{name}"]
            assert counts[:horizon] == sorted(counts[:horizon])  # grows until the horizon,
            assert counts[horizon - 1:] == [counts[horizon - 1]] * (DAYS - horizon + 1)  # then flat
    slos = len(config.slos)
    assert daily["slo_rollups/day"][-1] == DAYS * slos  # day rows are the long-term record

    end = at + 3 * HOUR + 20 * MINUTE  # mid-day and mid-hour: the window has ragged edges
    writer(schedule(at, end))
    clock.set(end)
    statuses = {s.name: s for s in runtime._evaluate_and_publish()}
    window = schedule(end - 5 * DAY, end)
    for slo in config.slos:
        mine = [r for r in window if r.target == slo.target]
        good = [r for r in mine if r.ok and (slo.sli != "latency" or r.latency <= 0.2)]
        assert (statuses[slo.name].good, statuses[slo.name].total) == (len(good), len(mine))
    assert statuses["t3-up"].state == "breaching"
    assert statuses["t0-up"].state == "ok"
    runtime.leadership.release()  # as `stop` would, while the engine is still open
