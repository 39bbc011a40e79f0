"""Storage on SQLite and PostgreSQL: migrations, batched writes, rollups equal raw counts."""

from __future__ import annotations

import random

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, inspect, select

from monitor.ingest import ResultWriter
from monitor.storage import repository, rollups
from monitor.storage.engine import current_revision, head_revision, make_engine, upgrade
from monitor.storage.models import Base, ProbeResultRow
from probes.base import ProbeResult
from slo.rollup import bucket_start, rollup_deltas
from slo.windows import split_by_resolution
from tests.conftest import make_settings

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, on a minute boundary
HEAD_REVISION = head_revision()


def result(offset: float, ok: bool = True, latency: float = 0.05, target: str = "api",
           **extra: object) -> ProbeResult:
    return ProbeResult(target=target, started_at=T0 + offset, ok=ok, latency=latency,
                       status_code=200 if ok else 500, **extra)  # type: ignore[arg-type]


def test_migrations_create_every_table_and_match_the_models(engine: Engine) -> None:
    assert current_revision(engine) == HEAD_REVISION
    tables = set(inspect(engine).get_table_names())
    assert {"probe_results", "slo_rollups", "latency_bins", "alembic_version"} <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == HEAD_REVISION


def test_sqlite_runs_in_wal_mode(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_results_round_trip_with_every_field(engine: Engine) -> None:
    original = result(1.5, ok=False, latency=0.25, error_class="http_status", error="status 500",
                      cert_days_left=12.5, response_bytes=42, region="eu",
                      values={"x": 1.0}, counts={"cache": (7.0, 10.0)},
                      details={"cdn_cache": "HIT"})
    repository.write_batch(engine, [original], {})
    stored = repository.latest_results(engine)["api"]
    assert stored.result == original


def test_rollup_sums_equal_raw_counts(engine: Engine) -> None:
    settings = make_settings()
    writer = ResultWriter(engine, settings.slos)
    rng = random.Random(7)
    results = [result(i * 7.0, ok=rng.random() > 0.1, latency=rng.uniform(0.01, 0.3))
               for i in range(600)]  # 70 minutes of data, written in uneven batches
    for start in range(0, 600, 97):
        writer(results[start:start + 97])

    end = bucket_start(results[-1].started_at) + 60
    day = split_by_resolution(end - 86400, end)
    hour = split_by_resolution(end - 3600, end)
    counts = rollups.sum_counts(engine, ["api-availability", "api-latency"], day)
    assert counts["api-availability"] == (sum(r.ok for r in results), 600)
    in_last_hour = [r for r in results if r.started_at >= end - 3600]
    assert rollups.sum_counts(engine, ["api-availability"], hour)["api-availability"] == \
        (sum(r.ok for r in in_last_hour), len(in_last_hour))
    latency_good = sum(r.ok and r.latency <= 0.1 for r in results)
    assert counts["api-latency"] == (latency_good, 600)
    bins = rollups.sum_bins(engine, ["api-latency"], day)["api-latency"]
    assert sum(bins.values()) == sum(r.ok for r in results)
    assert repository.count_results(engine, "api") == 600


def test_results_page_is_newest_first_and_continues_with_the_cursor(engine: Engine) -> None:
    repository.write_batch(engine, [result(i) for i in range(25)], {})
    first = repository.results_page(engine, "api", since=None, before_id=None, limit=10)
    second = repository.results_page(engine, "api", since=None, before_id=first[-1].id, limit=10)
    third = repository.results_page(engine, "api", since=None, before_id=second[-1].id, limit=10)
    times = [r.result.started_at for r in first + second + third]
    assert times == sorted(times, reverse=True)
    assert len(times) == len(set(times)) == 25
    recent = repository.results_page(engine, "api", since=T0 + 20, before_id=None, limit=100)
    assert len(recent) == 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(0, 7200), st.booleans(), st.floats(0.001, 2.0)),
                max_size=60),
       st.integers(1, 10))
def test_property_rollups_equal_raw_sums(tmp_path_factory: object, events: list[tuple[float,
                                         bool, float]], batches: int) -> None:
    path = tmp_path_factory.mktemp("prop") / "p.db"  # type: ignore[attr-defined]
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    settings = make_settings()
    writer = ResultWriter(engine, settings.slos)
    results = [result(offset, ok, latency) for offset, ok, latency in events]
    size = max(1, len(results) // batches)
    for start in range(0, len(results), size):
        writer(results[start:start + size])
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ProbeResultRow)).scalar() \
            == len(results)
    expected = rollup_deltas(results, {"api": settings.slos})
    for slo in settings.slos:
        stored = rollups.series(engine, [slo.name], rollups.MINUTE, 0, 2**40)[slo.name]
        want = sorted((start, d.good, d.total) for (name, start), d in expected.items()
                      if name == slo.name)
        assert stored == want
        assert sum(t for _, _, t in stored) == len(results)
    engine.dispose()
