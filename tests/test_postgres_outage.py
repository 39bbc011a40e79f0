"""The issue's figure: the machine's PostgreSQL stopped for 60 s while a real
`primewatch run` probes 20 loopback targets every 0.5 s; once it is back, results
written = results produced (0 lost, none twice).

This stops PostgreSQL for everybody on the machine, so it is marked slow and postgres,
restarts the cluster whatever happens, and skips (or fails under
PRIMEWATCH_REQUIRE_SERVICES=1) without root or postgresql-common. The scenario lives in
benchmarks/storage_outage.py, which prints the same figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from benchmarks.storage_outage import Cluster, run_outage
from tests.conftest import POSTGRES_URL, service_missing

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.timeout(600)
def test_postgres_stopped_60s_while_probing_loses_no_result(
        postgres_engine: Engine, tmp_path: Path) -> None:
    reason = Cluster.unavailable()
    if reason:
        service_missing(reason)
    cluster = Cluster(make_url(POSTGRES_URL).port or 5432)
    postgres_engine.dispose()  # its pooled connections would not survive the stop
    try:
        figures = run_outage(POSTGRES_URL, outage=60.0, targets=20, interval=0.5,
                             max_buffer=500, workdir=tmp_path, cluster=cluster)
    finally:
        cluster.start()  # even if the scenario failed before its own restart
    print("\n" + "\n".join(figures.lines()))
    assert figures.written == figures.produced  # 0 lost ...
    assert figures.duplicates == 0  # ... and none stored twice
    assert figures.produced >= 20 * 60 / 0.5  # probing went on through the outage
    assert figures.spilled > 0 and figures.replayed == figures.spilled  # via the spill file
    assert figures.dropped == 0
    assert any(status.startswith("degraded") for status in figures.readyz_during)
    assert figures.drain_s is not None
