"""The demo target, exercised through a real uvicorn server on loopback."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from monitor.demo_target import UNMATCHED_PATH, Faults, create_demo_app, main


class FakeClock:
    """A monotonic clock the test moves by hand, so idleness costs no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def serve(app: Starlette) -> Iterator[httpx.Client]:
    """Run `app` on a free loopback port in a thread; yield a client bound to it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = client.get(path)
    return response, time.perf_counter() - start


def samples(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Scrape /metrics and index every sample by name and label set."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def requests_total(found: dict[tuple[str, frozenset[tuple[str, str]]], float],
                   path: str, code: str, method: str = "GET") -> float:
    key = frozenset({"method": method, "path": path, "code": code}.items())
    return found.get(("http_requests_total", key), 0.0)


def test_health_ok() -> None:
    with serve(create_demo_app(rng=random.Random(1))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "primetrade-demo"}


def test_tasks_page_and_static_assets() -> None:
    with serve(create_demo_app(rng=random.Random(1))) as client:
        tasks = client.get("/api/tasks")
        page = client.get("/")
        css = client.get("/static/app.css")
        js = client.get("/static/app.js")
    assert tasks.status_code == 200
    assert len(tasks.json()) == 5
    assert tasks.headers["x-cache"] in {"hit", "miss"}
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/static/app.css"' in page.text and 'src="/static/app.js"' in page.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_error_ratio_one_fails_health_and_api_only() -> None:
    faults = Faults(error_ratio=1.0)
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        assert client.get("/health").status_code == 500
        assert client.get("/api/tasks").status_code == 500
        assert client.get("/").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/admin/faults").status_code == 200


def test_outage_answers_503_except_admin_and_can_be_lifted() -> None:
    faults = Faults(outage=True)
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        for path in ("/health", "/api/tasks", "/metrics", "/", "/static/app.js", "/nope"):
            assert client.get(path).status_code == 503, path
        assert client.get("/admin/faults").json()["outage"] is True
        assert client.post("/admin/faults", json={"outage": False}).status_code == 200
        assert client.get("/health").status_code == 200
    assert faults.outage is False


def test_added_latency_delays_requests() -> None:
    faults = Faults()
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        client.get("/health")  # open the connection before timing
        _, baseline = timed_get(client, "/health")
        client.post("/admin/faults", json={"added_latency": 0.3})
        slowed, slow = timed_get(client, "/health")
    assert slowed.status_code == 200
    assert baseline < 0.2
    assert slow >= 0.3


def test_cold_start_delays_only_the_first_request_after_idle() -> None:
    clock = FakeClock()
    faults = Faults(cold_start_after_idle=0.2, cold_start_delay=0.3)
    with serve(create_demo_app(faults, clock, rng=random.Random(1))) as client:
        client.get("/admin/faults")  # connect; admin requests never wake the instance
        _, warm = timed_get(client, "/health")
        clock.now += 1.0
        client.get("/metrics")  # scrapes do not count as traffic either
        _, cold = timed_get(client, "/health")
        clock.now += 0.35  # the warm-up has passed; less than the idle threshold since
        _, warm_again = timed_get(client, "/health")
    assert warm < 0.2
    assert cold >= 0.3
    assert warm_again < 0.2


def test_a_warm_up_longer_than_the_idle_threshold_is_not_idleness() -> None:
    # real clock: the cold request takes 0.3 s, longer than the 0.2 s idle threshold
    faults = Faults(cold_start_after_idle=0.2, cold_start_delay=0.3)
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        time.sleep(0.25)
        _, cold = timed_get(client, "/health")
        _, warm = timed_get(client, "/health")
    assert cold >= 0.3
    assert warm < 0.2


def test_requests_arriving_during_warm_up_wait_for_the_rest_of_it() -> None:
    clock = FakeClock()
    faults = Faults(cold_start_after_idle=0.2, cold_start_delay=0.3)
    app = create_demo_app(faults, clock, rng=random.Random(1))
    with serve(app) as client, serve(app) as second:
        clock.now += 1.0
        first = threading.Thread(target=client.get, args=("/health",))
        first.start()  # starts the warm-up at the current (frozen) time
        time.sleep(0.05)
        clock.now += 0.1
        _, waited = timed_get(second, "/health")
        first.join()
    assert 0.15 <= waited < 0.28


def test_metrics_parse_and_counters_increase() -> None:
    with serve(create_demo_app(rng=random.Random(7))) as client:
        before = samples(client)
        for _ in range(3):
            client.get("/health")
        for _ in range(20):
            client.get("/api/tasks")
        client.get("/does/not/exist/42")
        after = samples(client)
    assert requests_total(before, "/health", "200") == 0
    assert requests_total(after, "/health", "200") == 3
    assert requests_total(after, "/api/tasks", "200") == 20
    assert requests_total(after, UNMATCHED_PATH, "404") == 1
    assert requests_total(after, "/metrics", "200") == 1  # the first scrape
    hits = after[("cache_hits_total", frozenset())]
    misses = after[("cache_misses_total", frozenset())]
    assert hits + misses == 20
    assert hits > misses > 0 or misses == 0
    histogram_key = ("http_request_duration_seconds_count",
                     frozenset({"method": "GET", "path": "/health"}.items()))
    assert after[histogram_key] == 3
    assert 10 <= after[("active_users", frozenset())] <= 150


def test_post_faults_sets_a_subset() -> None:
    faults = Faults()
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        response = client.post("/admin/faults", json={"error_ratio": 0.25, "cold_start_delay": 2})
        shown = client.get("/admin/faults").json()
    assert response.status_code == 200
    assert shown == {"error_ratio": 0.25, "added_latency": 0.0, "outage": False,
                     "cold_start_after_idle": 0.0, "cold_start_delay": 2.0}
    assert faults.error_ratio == 0.25 and faults.cold_start_delay == 2.0


BAD_BODIES = [
    b'{"error_ratio": 1.5}',
    b'{"error_ratio": -0.1}',
    b'{"error_ratio": "0.5"}',
    b'{"error_ratio": NaN}',
    b'{"added_latency": -1}',
    b'{"cold_start_after_idle": true}',
    b'{"outage": "yes"}',
    b'{"unknown": 1}',
    b'{"added_latency": 0.5, "error_ratio": 2}',  # one bad field rejects the whole update
    b'[1, 2]',
    b'not json',
]


def test_post_faults_rejects_bad_input_and_changes_nothing() -> None:
    faults = Faults(error_ratio=0.1)
    before = faults.as_dict()
    # one server for every body keeps the test fast; each body is checked on its own
    with serve(create_demo_app(faults, rng=random.Random(1))) as client:
        for body in BAD_BODIES:
            response = client.post("/admin/faults", content=body,
                                   headers={"content-type": "application/json"})
            assert response.status_code == 422, body
            assert "error" in response.json(), body
            assert client.get("/admin/faults").json() == before, body
            assert faults.as_dict() == before, body


def test_faults_validate_at_construction() -> None:
    with pytest.raises(ValueError, match="error_ratio"):
        Faults(error_ratio=2)
    with pytest.raises(ValueError, match="cold_start_delay"):
        Faults(cold_start_delay=-1)


def test_main_rejects_bad_faults_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--error-ratio", "2"])
    assert exited.value.code == 2
    assert "error_ratio" in capsys.readouterr().err


def test_main_runs_uvicorn_with_parsed_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Starlette, str, int, str]] = []

    def fake_run(app: Starlette, *, host: str, port: int, log_level: str) -> None:
        calls.append((app, host, port, log_level))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert main(["--port", "9001", "--latency", "0.05", "--error-ratio", "0.1"]) == 0
    [(app, host, port, log_level)] = calls
    assert (host, port, log_level) == ("127.0.0.1", 9001, "warning")
    assert app.state.faults.added_latency == pytest.approx(0.05)
    assert app.state.faults.error_ratio == pytest.approx(0.1)
