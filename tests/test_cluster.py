"""Several instances, one database: one leader by advisory lock, heartbeats, takeover,
and the leader alone turning alerts into incidents. The two-process kill -9 failover
is in tests/test_cluster_failover.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from alerts.store import list_incidents
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.leadership import Leadership, members
from monitor.metrics import Metrics
from monitor.storage.engine import upgrade
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.servers import serve_asgi
from tests.test_end_to_end import wait_for

T0 = 1_767_225_600.0


@pytest.fixture
def shared(postgres_engine: Engine) -> Engine:
    upgrade(postgres_engine)
    return postgres_engine


@pytest.fixture
def trio(shared: Engine) -> Iterator[list[Leadership]]:
    made = [Leadership(shared, name, region, interval=1.0)
            for name, region in (("a", "eu"), ("b", "us"), ("c", "ap"))]
    yield made
    for one in made:
        one.release(say_goodbye=False)


def leaders(instances: list[Leadership]) -> list[str]:
    return [i.instance for i in instances if i.is_leader]


@pytest.mark.postgres
def test_exactly_one_of_three_leads_and_a_released_lock_passes_on(
        trio: list[Leadership]) -> None:
    for _ in range(3):
        for one in trio:
            one.step()
        assert leaders(trio) == ["a"]  # first come; steady across steps
    trio[0].release()
    for one in trio[1:]:
        one.step()
    assert leaders(trio) == ["b"]
    roles = {m.instance: m.role for m in members(trio[0].engine)}
    assert roles == {"a": "stopped", "b": "leader", "c": "follower"}


@pytest.mark.postgres
def test_a_leader_whose_session_dies_steps_down_and_another_takes_over(
        trio: list[Leadership], shared: Engine) -> None:
    for one in trio:
        one.step()
    assert leaders(trio) == ["a"]
    # The server ends the leader's session (a crash, a network cut, idle timeout).
    with shared.begin() as connection:
        ended = connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'primewatch leader lock a'")).scalars().all()
    assert ended == [True]
    trio[1].step()  # the lock is free at once
    assert trio[1].is_leader
    trio[0].step()  # the old leader finds out on its next step, not later
    assert not trio[0].is_leader
    trio[2].step()
    assert leaders(trio) == ["b"]


@pytest.mark.postgres
def test_the_lock_session_is_bounded_by_idle_session_timeout(trio: list[Leadership],
                                                            shared: Engine) -> None:
    trio[0].step()
    with shared.connect() as connection:
        held = connection.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND a.application_name = "
            "'primewatch leader lock a'")).scalar_one()
    assert held == 1
    timeout = trio[0]._lock_connection.execute("SHOW idle_session_timeout").fetchone()[0]
    assert timeout == "2s"  # 2 × heartbeat interval: a hung leader frees the lock


def down_settings() -> object:
    return make_settings(
        targets=[{"name": "api", "type": "http", "url": "http://127.0.0.1:1/health",
                  "interval": "10s", "down_after": 2}],
        slos=[], cluster={"instance": "me", "heartbeat_interval": "1s"})


@pytest.mark.postgres
def test_a_follower_probes_but_opens_no_incident_until_it_leads(shared: Engine) -> None:
    clock = FakeClock(T0)
    app = create_app(down_settings(), shared, clock=clock, run_background=False)  # type: ignore[arg-type]
    runtime = app.state.runtime
    other = Leadership(shared, "other", "us", interval=1.0)
    try:
        assert other.step()  # someone else leads
        runtime.sink._writer([ProbeResult(target="api", started_at=T0 + i, ok=False,
                                          latency=0.1, error="refused")
                              for i in range(3)])
        clock.advance(10)
        runtime._evaluate_and_publish()
        assert not runtime.leadership.is_leader
        assert list_incidents(shared)[1] == 0
        other.release()  # the leader shuts down
        clock.advance(10)
        runtime._evaluate_and_publish()
        assert runtime.leadership.is_leader
        incidents, total = list_incidents(shared)
        assert total == 1 and "api is down" in incidents[0].title
    finally:
        other.release(say_goodbye=False)


def test_cluster_api_and_readyz_show_region_role_and_heartbeat(engine: Engine) -> None:
    settings = make_settings(region="eu-west", cluster={"instance": "pw-1",
                                                        "heartbeat_interval": "1s"})
    app = create_app(settings, engine, metrics=Metrics(CollectorRegistry()))
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        body = wait_for(lambda: (b := client.get("/api/v1/cluster").json())["leader"] and b,
                        10, "the instance to lead")
        ready = client.get("/readyz").json()
        metrics = client.get("/metrics").text
    assert body["instance"] == "pw-1" and body["region"] == "eu-west"
    assert body["role"] == "leader" and body["leader"] == "pw-1"
    (me,) = body["instances"]
    assert me["this_instance"] and me["alive"] and me["region"] == "eu-west"
    assert me["last_heartbeat"].endswith("Z") and me["heartbeat_age_seconds"] < 60
    assert ready["cluster"] == {"instance": "pw-1", "region": "eu-west", "role": "leader"}
    assert "primewatch_leader 1.0" in metrics
    assert "primewatch_heartbeat_timestamp_seconds 1." in metrics
    # After shutdown the instance says goodbye instead of going silent.
    assert {m.instance: m.role for m in members(engine)} == {"pw-1": "stopped"}
