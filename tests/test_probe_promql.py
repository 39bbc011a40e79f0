"""The promql probe: the Prometheus query API's real answer shapes, and a real Prometheus.

A loopback server answers `/api/v1/query` with the JSON Prometheus sends (vector, scalar,
empty, errors); one test starts the Debian `prometheus` binary scraping the demo target.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from monitor.demo_target import create_demo_app
from probes.base import ErrorClass, ProbeContext, ProbeResult
from probes.http_client import HttpClientPool
from probes.promql import KIND, PromqlTarget, parse_answer
from tests.conftest import service_missing
from tests.servers import RouteServer, free_port, route_server, send, serve_asgi

Answer = tuple[int, str | bytes]  # status, body


def vector(*values: str) -> str:
    result = [{"metric": {"code": str(200 + i)}, "value": [1_700_000_000.123, value]}
              for i, value in enumerate(values)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def scalar(value: str) -> str:
    return json.dumps({"status": "success",
                       "data": {"resultType": "scalar", "result": [1_700_000_000, value]}})


def error(message: str, kind: str = "bad_data") -> str:
    return json.dumps({"status": "error", "errorType": kind, "error": message})


class FakePrometheus:
    """Answers /api/v1/query from a table keyed by the query text; records the params."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.params: list[dict[str, list[str]]] = []

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        params = parse_qs(urlsplit(handler.path).query)
        self.params.append(params)
        status, body = self.answers.get(params.get("query", [""])[0],
                                        (400, error("unknown query in test table")))
        send(handler, status, body, "application/json")
        # a probe may hang up on a partly read answer; then a reset while waiting for the
        # next request on this connection would print a traceback
        handler.close_connection = True


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RouteServer]:
    with route_server() as server:
        yield server


@pytest.fixture
def prometheus(shared_server: RouteServer) -> Callable[..., tuple[str, FakePrometheus]]:
    """Install a fake query API; return its base URL and the fake (for recorded params)."""

    def install(answers: dict[str, Answer], prefix: str = "") -> tuple[str, FakePrometheus]:
        fake = FakePrometheus(answers)
        shared_server.routes[f"{prefix}/api/v1/query"] = fake
        return shared_server.url + prefix, fake

    return install


def run_probe(**fields: Any) -> ProbeResult:
    config = PromqlTarget.model_validate({"name": "slo", "type": "promql", "timeout": "3s",
                                          **fields})

    async def once() -> ProbeResult:
        pool = HttpClientPool()
        try:
            return await KIND.build(config, ProbeContext(pool, region="test")).run(time.time())
        finally:
            await pool.aclose()

    return asyncio.run(once())


GOOD, TOTAL = 'sum(increase(x_total{code!~"5.."}[1m]))', "sum(increase(x_total[1m]))"


def test_vectors_are_summed_into_counts(prometheus: Any) -> None:
    url, fake = prometheus({GOOD: (200, vector("990", "7.5")), TOTAL: (200, vector("1000"))})
    result = run_probe(url=url, good=GOOD, total=TOTAL, stream="requests")
    assert result.ok, result.error
    assert result.counts == {"requests": (997.5, 1000.0)}
    assert result.status_code == 200
    assert result.details == {}
    assert result.response_bytes == len(vector("990", "7.5")) + len(vector("1000"))
    assert 0 < result.latency < 3
    assert fake.params[0]["timeout"] == ["3000ms"]  # Prometheus stops when we give up


def test_default_stream_name_and_scalars(prometheus: Any) -> None:
    url, _ = prometheus({"good": (200, scalar("3")), "total": (200, scalar("4"))})
    result = run_probe(url=url, good="good", total="total")
    assert result.counts == {"ratio": (3.0, 4.0)}


@pytest.mark.parametrize(("good", "total", "empty"), [
    (vector(), vector("10"), "good"),
    (vector("1"), vector(), "total"),
    (vector(), vector(), "good, total"),
    (scalar("NaN"), scalar("4"), "good"),
    (vector("1"), vector("+Inf"), "total"),
])
def test_empty_or_nan_answers_give_no_counts(prometheus: Any, good: str, total: str,
                                             empty: str) -> None:
    url, _ = prometheus({"g": (200, good), "t": (200, total)})
    result = run_probe(url=url, good="g", total="t")
    assert result.ok, result.error  # the query worked; there was nothing to count
    assert result.counts == {}
    assert result.details["empty"] == empty


def test_query_error_is_reported_with_prometheus_text(prometheus: Any) -> None:
    message = 'invalid parameter "query": 1:10: parse error: unclosed left parenthesis'
    url, _ = prometheus({"sum(x": (400, error(message)), "x": (200, vector("1"))})
    result = run_probe(url=url, good="sum(x", total="x")
    assert not result.ok
    assert result.error_class == ErrorClass.QUERY
    assert result.status_code == 400
    assert result.error == f"good query: bad_data: {message}"


@pytest.mark.parametrize(("status", "body", "error_class", "fragment"), [
    (200, "<html>not json</html>", ErrorClass.INVALID_JSON, "not JSON"),
    (502, "<html>Bad Gateway</html>", ErrorClass.HTTP_STATUS, "status 502"),
    (401, "Unauthorized", ErrorClass.AUTH, "status 401"),
    (403, error("forbidden", "unauthorized"), ErrorClass.AUTH, "status 403"),
    (200, json.dumps({"data": {}}), ErrorClass.INVALID_JSON, "not a Prometheus API answer"),
    (200, json.dumps([1, 2]), ErrorClass.INVALID_JSON, "not a Prometheus API answer"),
    (200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}),
     ErrorClass.QUERY, "range vector"),
    (200, json.dumps({"status": "success", "data": {"resultType": "string",
                                                    "result": [1, "x"]}}),
     ErrorClass.QUERY, "string"),
    (200, json.dumps({"status": "success", "data": {"resultType": "vector",
                                                    "result": [{"value": [1, "many"]}]}}),
     ErrorClass.INVALID_JSON, "'many' is not a number"),
    (503, error("query timed out in expression evaluation", "timeout"), ErrorClass.QUERY,
     "timeout: query timed out"),
    (200, b'{"status": "\xff"}', ErrorClass.INVALID_JSON, "not JSON"),
])
def test_failures_are_classified(prometheus: Any, status: int, body: str | bytes,
                                 error_class: str, fragment: str) -> None:
    url, _ = prometheus({"g": (status, body), "t": (200, vector("1"))})
    result = run_probe(url=url, good="g", total="t")
    assert not result.ok
    assert result.error_class == error_class
    assert fragment in (result.error or "")


def test_gauges_and_warnings(prometheus: Any) -> None:
    warned = json.dumps({"status": "success", "warnings": ["results truncated"],
                         "data": {"resultType": "vector",
                                  "result": [{"metric": {}, "value": [1, "42"]}]}})
    url, _ = prometheus({"sum(active_users)": (200, warned), "absent": (200, vector())})
    result = run_probe(url=url, gauges={"users": "sum(active_users)", "gone": "absent"})
    assert result.ok, result.error
    assert result.values == {"users": 42.0}
    assert result.counts == {}
    assert result.details == {"empty": "gauge gone", "warnings": "results truncated"}


def test_a_failing_gauge_fails_the_run(prometheus: Any) -> None:
    url, _ = prometheus({"g": (200, vector("1")), "t": (200, vector("2")),
                         "bad(": (400, error("parse error"))})
    result = run_probe(url=url, good="g", total="t", gauges={"broken": "bad("})
    assert result.error_class == ErrorClass.QUERY
    assert (result.error or "").startswith("gauge broken query:")


def test_base_url_with_a_path_prefix_and_trailing_slash(prometheus: Any) -> None:
    url, fake = prometheus({"g": (200, vector("1")), "t": (200, vector("2"))}, prefix="/prom")
    assert run_probe(url=url + "/", good="g", total="t").counts == {"ratio": (1.0, 2.0)}
    assert len(fake.params) == 2


def test_slow_prometheus_times_out(shared_server: RouteServer) -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        time.sleep(2)
        send(handler, 200, vector("1"), "application/json")

    shared_server.routes["/slow/api/v1/query"] = slow
    result = run_probe(url=shared_server.url + "/slow", good="g", total="t", timeout="300ms")
    assert result.error_class == ErrorClass.TIMEOUT


def test_oversized_answer_is_too_large(prometheus: Any) -> None:
    huge = vector(*["1"] * 5000)
    url, _ = prometheus({"g": (200, huge), "t": (200, vector("1"))})
    result = run_probe(url=url, good="g", total="t", max_body="64KiB")
    assert result.error_class == ErrorClass.TOO_LARGE


def test_refused() -> None:
    result = run_probe(url=f"http://127.0.0.1:{free_port()}", good="g", total="t")
    assert result.error_class == ErrorClass.REFUSED


@pytest.mark.parametrize(("fields", "message"), [
    ({"good": "x"}, "`good` and `total` go together"),
    ({"total": "x"}, "`good` and `total` go together"),
    ({}, "nothing to query"),
    ({"good": "", "total": "x"}, "at least 1 character"),
    ({"good": "x", "total": "x", "stream": "has space"}, "pattern"),
    ({"good": "x", "total": "x", "url": "prometheus:9090"}, "invalid URL"),
])
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PromqlTarget.model_validate({"name": "slo", "type": "promql",
                                     "url": "http://127.0.0.1:9090", **fields})


def test_parse_answer_sums_vectors() -> None:
    assert parse_answer(json.loads(vector("1", "2", "3.5"))) == (6.5, ())
    assert parse_answer(json.loads(vector())) == (None, ())


# --- against a real Prometheus -------------------------------------------------------

PROMETHEUS = "/usr/bin/prometheus"


@dataclass
class RealPrometheus:
    """A running Prometheus scraping the demo target every second."""

    url: str
    demo_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_for(self, query: str, at_least: float, limit: float = 20.0) -> None:
        """Poll an instant query until its summed value reaches `at_least` (bounded)."""
        deadline = time.monotonic() + limit
        with httpx.Client(timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"prometheus exited: {self.log.read_text()[-2000:]}")
                try:
                    data = client.get(f"{self.url}/api/v1/query", params={"query": query}).json()
                    values = [float(s["value"][1]) for s in data["data"]["result"]]
                    if values and sum(values) >= at_least:
                        return
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    pass  # not up yet, or not scraped yet
                time.sleep(0.2)
        pytest.fail(f"{query} did not reach {at_least} within {limit:g}s: "
                    f"{self.log.read_text()[-2000:]}")


@pytest.fixture
def real_prometheus(tmp_path: Path) -> Iterator[RealPrometheus]:
    """The demo target under uvicorn, scraped every second by a real Prometheus."""
    binary = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).exists() else None)
    if binary is None:
        service_missing("prometheus binary not installed")
        return
    with serve_asgi(create_demo_app(rng=random.Random(3))) as demo_url:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: demo\n"
            f"    static_configs: [{{targets: ['{demo_url.removeprefix('http://')}']}}]\n")
        log_path = tmp_path / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        server = RealPrometheus(f"http://127.0.0.1:{port}", demo_url, process, log_path)
        try:
            server.wait_for("up", 1)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_against_a_real_prometheus(real_prometheus: RealPrometheus) -> None:
    with httpx.Client(base_url=real_prometheus.demo_url, trust_env=False) as client:
        for _ in range(5):
            assert client.get("/health").status_code == 200
        client.post("/admin/faults", json={"error_ratio": 1})
        for _ in range(3):
            assert client.get("/health").status_code == 500
    health = 'http_requests_total{path="/health"}'
    real_prometheus.wait_for(f"sum({health})", 8)  # scraped after the traffic

    result = run_probe(url=real_prometheus.url,
                       good='sum(http_requests_total{path="/health",code!~"5.."})',
                       total=f"sum({health})", stream="health",
                       gauges={"users": "sum(active_users)"})
    assert result.ok, result.error
    assert result.counts == {"health": (5.0, 8.0)}
    assert 10 <= result.values["users"] <= 150

    broken = run_probe(url=real_prometheus.url, good="sum(http_requests_total", total="up")
    assert broken.error_class == ErrorClass.QUERY
    assert "parse error" in (broken.error or "")
    assert broken.status_code == 400
