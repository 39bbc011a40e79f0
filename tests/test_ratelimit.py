"""Rate limits on the API and on failed authentication, over real HTTP on loopback.

Time is a FakeClock handed to `create_app(limits_clock=...)`, so "a second later" is a
call, not a sleep. A second client address is real too: Linux routes all of
127.0.0.0/8 to loopback, so binding the client to 127.0.0.2 makes a different peer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.ratelimit import FailedAuthLimiter, TokenBucket
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.servers import serve_asgi

WRITE, READ = "rl-write-token", "rl-read-token"
TOKENS = [{"name": "oncall", "token": WRITE, "scope": "write"},
          {"name": "viewer", "token": READ, "scope": "read"}]


# -- the limiters on their own --------------------------------------------------------


def test_a_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire("a") == pytest.approx(0.5)  # one token every 1/rate seconds
    assert bucket.acquire("b") == 0.0  # another client has its own bucket
    clock.advance(0.5)
    assert bucket.acquire("a") == 0.0
    assert bucket.acquire("a") > 0
    clock.advance(3600)  # idle time refills up to the burst, no further
    assert [bucket.acquire("a") for _ in range(4)][-1] > 0


def test_a_zero_rate_disables_the_bucket() -> None:
    bucket = TokenBucket(rate=0.0, burst=1, clock=FakeClock(0.0))
    assert all(bucket.acquire("a") == 0.0 for _ in range(1000))


def test_the_bucket_forgets_the_least_recent_clients_beyond_its_bound() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, clock=FakeClock(0.0), max_clients=2)
    assert bucket.acquire("a") == 0.0
    assert bucket.acquire("b") == 0.0
    assert bucket.acquire("c") == 0.0  # "a" is forgotten: memory stays bounded
    assert bucket.acquire("a") == 0.0
    assert bucket.acquire("c") > 0  # still remembered


def test_failures_lock_out_for_the_window_then_count_afresh() -> None:
    clock = FakeClock(0.0)
    limiter = FailedAuthLimiter(max_failures=3, window=60.0, clock=clock)
    for _ in range(2):
        limiter.record_failure("a")
        clock.advance(1)
    assert limiter.retry_after("a") is None
    limiter.record_failure("a")
    assert limiter.retry_after("a") == pytest.approx(60.0)
    assert limiter.retry_after("b") is None
    clock.advance(59)
    assert limiter.retry_after("a") == pytest.approx(1.0)
    clock.advance(1)
    assert limiter.retry_after("a") is None
    limiter.record_failure("a")  # counting starts again from zero
    assert limiter.retry_after("a") is None


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = FakeClock(0.0)
    limiter = FailedAuthLimiter(max_failures=3, window=60.0, clock=clock)
    for _ in range(10):
        limiter.record_failure("a")
        clock.advance(31)  # never three within a minute
    assert limiter.retry_after("a") is None


# -- over HTTP ------------------------------------------------------------------------


@contextmanager
def serve(tmp_path: Path, clock: FakeClock, **server: Any) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    settings = make_settings(server={"tokens": TOKENS, **server},
                             dashboard={"auth": "token"})
    app = create_app(settings, engine, clock=FakeClock(), metrics=Metrics(CollectorRegistry()),
                     run_background=False, limits_clock=clock)
    try:
        with serve_asgi(app) as url:
            yield url
    finally:
        engine.dispose()


def client(url: str, address: str = "127.0.0.1", token: str | None = READ) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers,
                        transport=httpx.HTTPTransport(local_address=address))


def test_api_requests_beyond_the_burst_get_429_with_retry_after(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    with serve(tmp_path, clock, rate_limit={"requests_per_second": 0.5, "burst": 3}) as url, \
            client(url) as alice, client(url, "127.0.0.2") as bob:
        assert [alice.get("/api/v1/targets").status_code for _ in range(3)] == [200] * 3
        limited = alice.get("/api/v1/targets")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "2"
        assert limited.json()["error"]["status"] == 429
        assert "slow down" in limited.json()["error"]["message"]
        assert alice.post("/api/v1/silences", json={}).status_code == 429  # writes too
        assert bob.get("/api/v1/targets").status_code == 200  # per client address
        # Health checks, metrics and pages are not the API: never limited.
        for path in ("/healthz", "/readyz", "/metrics", "/"):
            assert all(alice.get(path).status_code == 200 for _ in range(5)), path
        clock.advance(2)
        assert alice.get("/api/v1/targets").status_code == 200
        assert alice.get("/api/v1/targets").status_code == 429


def test_a_zero_rate_turns_the_api_limit_off(tmp_path: Path) -> None:
    with serve(tmp_path, FakeClock(0.0), rate_limit={"requests_per_second": 0, "burst": 1}
               ) as url, client(url) as alice:
        assert all(alice.get("/api/v1/slos").status_code == 200 for _ in range(20))


def test_failed_authentications_lock_the_address_out_even_with_a_valid_token(
        tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    with serve(tmp_path, clock, failed_auth={"max_failures": 3, "window": "1m"}) as url, \
            client(url, token="guess") as guesser, client(url, token=None) as anonymous, \
            client(url, "127.0.0.2", token=WRITE) as colleague:
        # No credentials at all is not a guess: a browser's first visit must not count.
        assert all(anonymous.get("/").status_code == 401 for _ in range(5))
        # Three wrong guesses, on writes, reads and pages alike, are.
        assert guesser.post("/api/v1/silences", json={}).status_code == 401
        assert guesser.get("/api/v1/targets").status_code == 401
        assert guesser.get("/").status_code == 401

        right = {"Authorization": f"Bearer {WRITE}"}
        locked = anonymous.post("/api/v1/silences", json={}, headers=right)
        assert locked.status_code == 429
        assert locked.headers["Retry-After"] == "60"
        assert locked.json()["error"]["status"] == 429
        assert anonymous.get("/api/v1/targets", headers=right).status_code == 429
        assert anonymous.get("/", headers=right).status_code == 429
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/metrics").status_code == 200
        # Another address is not locked out.
        assert colleague.get("/api/v1/targets").status_code == 200

        clock.advance(59)
        assert anonymous.get("/api/v1/targets", headers=right).headers["Retry-After"] == "1"
        clock.advance(1)
        assert anonymous.get("/api/v1/targets", headers=right).status_code == 200
