"""Retention pruning in batches, and `slo backfill` after an SLO definition changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select

from monitor.cli import main
from monitor.config import Retention
from monitor.ingest import ResultWriter
from monitor.retention import prune
from monitor.storage import repository, rollups
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import AuditRow, LatencyBin, ProbeResultRow, SloRollup
from probes.base import ProbeResult
from tests.conftest import make_settings

DAY = 86400


def test_prune_keeps_each_tier_for_its_retention(engine: Engine) -> None:
    now = 1_767_225_600 + 40 * DAY
    settings = make_settings()
    results = [ProbeResult(target="api", started_at=now - d * DAY - 600, ok=True,
                           latency=0.05) for d in range(40)]
    ResultWriter(engine, settings.slos)(results)
    report = prune(engine, Retention(raw=7 * DAY, minute=14 * DAY, hour=30 * DAY), now,
                   batch=3)
    assert report.raw == 33  # results older than 7 days, deleted 3 at a time
    assert repository.count_results(engine) == 7
    with engine.connect() as connection:
        def rows(resolution: int) -> int:
            return int(connection.execute(select(func.count()).select_from(SloRollup).where(
                SloRollup.resolution == resolution, SloRollup.slo == "api-availability"))
                .scalar_one())
        assert rows(rollups.MINUTE) == 14
        assert rows(rollups.HOUR) == 30
        assert rows(rollups.DAY) == 40  # day rows are the long-term record


def test_backfill_rederives_rollups_after_a_threshold_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "pw.db"
    config = tmp_path / "config.yaml"

    def write_config(threshold: str) -> None:
        config.write_text(f"""
storage: {{url: "sqlite:///{db}"}}
targets: [{{name: api, type: http, url: "http://127.0.0.1:1/", interval: 100m}}]
slos:
  - {{name: fast, target: api, sli: latency, threshold: {threshold}, objective: 90,
     window: 7d}}
""")

    write_config("100ms")
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    engine = make_engine(f"sqlite:///{db}")
    now = time.time()
    from monitor.config_loader import load_config
    slos = load_config(config, {}).settings.slos
    # A week of probes every 100 minutes, all 150 ms: over a 100 ms threshold, the
    # week's budget (10% of its ~101 probes) is overspent.
    ResultWriter(engine, slos)([ProbeResult(target="api", started_at=now - i * 6000, ok=True,
                                            latency=0.15) for i in range(100)])
    capsys.readouterr()
    assert main(["--config", str(config), "slo", "status", "--json"]) == 1  # all slow
    write_config("200ms")
    assert main(["--config", str(config), "slo", "backfill"]) == 0
    out = capsys.readouterr().out
    assert "re-derived 1 SLO(s)" in out and "100 raw results" in out
    assert main(["--config", str(config), "slo", "status", "--json"]) == 0
    import json
    [fast] = json.loads(capsys.readouterr().out)["slos"]
    assert (fast["good"], fast["total"]) == (100, 100)
    assert main(["--config", str(config), "slo", "backfill", "--slo", "nope"]) == 2
    engine.dispose()


def test_backfill_needs_a_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f'storage: {{url: "sqlite:///{tmp_path / "none.db"}"}}\n')
    assert main(["--config", str(config), "slo", "backfill"]) == 2
    assert "db upgrade" in capsys.readouterr().err


def test_upgrade_is_idempotent_on_a_migrated_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    upgrade(engine)
    engine.dispose()


def test_a_large_backlog_is_pruned_completely_in_bounded_transactions(engine: Engine) -> None:
    now = 1_767_225_600 + 30 * DAY
    retention = Retention(raw=2 * DAY, minute=5 * DAY, hour=10 * DAY)
    slos = [{"name": f"{t}-{kind}", "target": t, "sli": kind, "objective": 90, "window": "1d",
             **({"threshold": "200ms"} if kind == "latency" else {})}
            for t in ("api", "web", "gone") for kind in ("availability", "latency")]
    targets = [{"name": t, "type": "http", "url": "http://127.0.0.1:1/"}
               for t in ("api", "web", "gone")]
    writer = ResultWriter(engine, make_settings(targets=targets, slos=slos).slos)

    def span(start: float, count: int) -> list[ProbeResult]:
        return [ProbeResult(target=t, started_at=start + i * 600, ok=i % 50 != 0,
                            latency=0.01 * (1 + i % 40)) for t in ("api", "web", "gone")
                for i in range(count)]

    writer(span(now - 3 * DAY, 3 * 144))  # the newest 3 days, written first
    writer(span(now - 20 * DAY, 17 * 144))  # a late backlog: old times, higher ids
    cutoffs = {"raw": now - retention.raw, rollups.MINUTE: now - retention.minute,
               rollups.HOUR: now - retention.hour, rollups.DAY: 0}
    kept_before = _kept(engine, cutoffs)

    deletes: list[int] = [0]
    per_transaction: list[int] = []

    def count(_conn: object, cursor: Any, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes[0] += max(cursor.rowcount, 0)

    def commit(_conn: object) -> None:
        per_transaction.append(deletes[0])
        deletes[0] = 0

    event.listen(engine, "after_cursor_execute", count)
    event.listen(engine, "commit", commit)
    try:
        report = prune(engine, retention, now, batch=300)
    finally:
        event.remove(engine, "after_cursor_execute", count)
        event.remove(engine, "commit", commit)

    assert _kept(engine, cutoffs) == kept_before  # everything within retention untouched
    with engine.connect() as connection:
        oldest_raw = connection.execute(select(func.min(ProbeResultRow.started_at))).scalar()
        assert oldest_raw is not None and oldest_raw >= cutoffs["raw"]
        for resolution in (rollups.MINUTE, rollups.HOUR):
            for model in (SloRollup, LatencyBin):
                oldest = connection.execute(select(func.min(model.bucket_start)).where(
                    model.resolution == resolution)).scalar()
                assert oldest is not None and oldest >= cutoffs[resolution]
    assert report.raw == 3 * (20 - 2) * 144
    assert sum(per_transaction) == report.raw + report.minute + report.hour
    assert max(per_transaction) <= 300  # no transaction deletes more than `batch` rows
    assert report.transactions >= (report.raw + report.minute + report.hour) / 300


def _kept(engine: Engine, cutoffs: dict[Any, float]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row each kind keeps at these cutoffs."""
    with engine.connect() as connection:
        kept = {"raw": sorted(tuple(r) for r in connection.execute(
            select(ProbeResultRow).where(ProbeResultRow.started_at >= cutoffs["raw"])))}
        for model in (SloRollup, LatencyBin):
            for resolution in (rollups.MINUTE, rollups.HOUR, rollups.DAY):
                kept[f"{model.__tablename__}/{resolution}"] = sorted(
                    tuple(r) for r in connection.execute(select(model.__table__).where(
                        model.resolution == resolution,
                        model.bucket_start >= cutoffs[resolution])))
    return kept


def test_the_write_audit_is_kept_for_its_retention_then_pruned(engine: Engine) -> None:
    now = 1_767_225_600.0
    day = 86400.0
    with engine.begin() as connection:
        connection.execute(insert(AuditRow), [
            {"at": now - age * day, "actor": "oncall", "method": "POST",
             "path": f"/api/v1/incidents/{age}/ack", "status": 200, "client": "127.0.0.1",
             "summary": "ack"} for age in (1, 399, 401, 500)])
    retention = Retention(raw=14 * day, minute=35 * day, hour=400 * day, audit=400 * day)
    report = prune(engine, retention, now, batch=1)
    assert report.audit == 2
    with engine.connect() as connection:
        kept = sorted(connection.execute(select(AuditRow.path)).scalars())
    assert kept == ["/api/v1/incidents/1/ack", "/api/v1/incidents/399/ack"]
