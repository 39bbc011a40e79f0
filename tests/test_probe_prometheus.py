"""The prometheus probe: counter deltas between real scrapes, gauges, and hostile endpoints.

Hand-written exposition text on a loopback server pins exact deltas (resets, new series,
histogram buckets); the bundled demo target under uvicorn shows the same on a real
prometheus_client registry driven by real traffic.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor.demo_target import create_demo_app
from probes.base import ErrorClass, ProbeContext, ProbeResult
from probes.http_client import HttpClientPool
from probes.prometheus import KIND, PrometheusTarget, counter_deltas
from tests.servers import Handler, RouteServer, free_port, route_server, send, serve_asgi

ERRORS_OK = {"good": 'http_requests_total{code!~"5.."}', "total": "http_requests_total"}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RouteServer]:
    """One loopback server for the module: starting and stopping one costs ~0.5 s."""
    with route_server() as server:
        yield server


@pytest.fixture
def serve(shared_server: RouteServer, request: pytest.FixtureRequest) -> Any:
    """Install a /metrics handler under a path unique to the test; return its URL."""
    path = f"/{request.node.name}/metrics"

    def install(handler: Handler) -> str:
        shared_server.routes[path] = handler
        return shared_server.url + path

    return install


def answer(handler: BaseHTTPRequestHandler, status: int, body: str | bytes,
           content_type: str = "text/plain; version=0.0.4; charset=utf-8") -> None:
    """Send a response and close: a probe that hangs up on an unread body would otherwise
    reset the connection while the server waits for the next request, printing noise."""
    send(handler, status, body, content_type)
    handler.close_connection = True


def target(**fields: Any) -> PrometheusTarget:
    return PrometheusTarget.model_validate(
        {"name": "metrics", "type": "prometheus", "timeout": "3s", **fields})


class Exposition:
    """A /metrics handler serving whatever text the test put in `text` last."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        answer(handler, 200, self.text)


def scrape_each(config: PrometheusTarget, bodies: Sequence[str | None],
                exposition: Exposition, step: float = 10.0) -> list[ProbeResult]:
    """Scrape once per body with one probe, `step` seconds apart; None keeps the body."""

    async def scenario() -> list[ProbeResult]:
        pool = HttpClientPool()
        try:
            probe = KIND.build(config, ProbeContext(pool, region="test"))
            results = []
            for index, body in enumerate(bodies):
                if body is not None:
                    exposition.text = body
                results.append(await probe.run(1000.0 + index * step))
            return results
        finally:
            await pool.aclose()

    return asyncio.run(scenario())


def run_once(config: PrometheusTarget) -> ProbeResult:
    async def once() -> ProbeResult:
        pool = HttpClientPool()
        try:
            return await KIND.build(config, ProbeContext(pool, region="test")).run(time.time())
        finally:
            await pool.aclose()

    return asyncio.run(once())


def requests_text(ok: float, failed: float, extra: str = "") -> str:
    return ("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {ok}\n'
            f'http_requests_total{{code="500"}} {failed}\n'
            f'http_requests_created{{code="200"}} 1.7e+09\n{extra}')


def ratio_scrapes(serve: Any, bodies: Sequence[str | None], ratios: dict[str, Any],
                  step: float = 10.0) -> list[ProbeResult]:
    exposition = Exposition()
    url = serve(exposition)
    return scrape_each(target(url=url, ratios=ratios), bodies, exposition, step)


def test_first_scrape_is_a_baseline_then_exact_deltas_and_throughput(serve: Any) -> None:
    first, second = ratio_scrapes(serve, [requests_text(10, 2), requests_text(25, 5)],
                                  {"errors_ok": ERRORS_OK})
    assert first.ok, first.error
    assert first.counts == {}
    assert first.details["baseline"] == "first scrape"
    assert first.values["samples"] == 3
    assert second.ok, second.error
    assert second.counts == {"errors_ok": (15.0, 18.0)}
    assert second.values["errors_ok_rate_per_second"] == pytest.approx(1.8)
    assert "baseline" not in second.details and "counter_reset" not in second.details
    assert second.status_code == 200
    assert second.response_bytes == len(requests_text(25, 5))
    assert 0 < second.latency < 3


def test_no_traffic_gives_zero_throughput_and_no_counts(serve: Any) -> None:
    _, idle = ratio_scrapes(serve, [requests_text(10, 2), None], {"errors_ok": ERRORS_OK})
    assert idle.counts == {}  # nothing happened: no events, not a perfect score
    assert idle.values["errors_ok_rate_per_second"] == 0


def test_counter_reset_counts_from_zero_not_negative(serve: Any) -> None:
    _, after_restart = ratio_scrapes(serve, [requests_text(1000, 40), requests_text(7, 1)],
                                     {"errors_ok": ERRORS_OK})
    assert after_restart.ok
    assert after_restart.counts == {"errors_ok": (7.0, 8.0)}
    assert after_restart.details["counter_reset"] == "true"


def test_partial_reset_only_affects_the_reset_series(serve: Any) -> None:
    _, second = ratio_scrapes(serve, [requests_text(100, 40), requests_text(130, 3)],
                              {"errors_ok": ERRORS_OK})
    assert second.counts == {"errors_ok": (30.0, 33.0)}


def test_a_series_appearing_after_the_first_scrape_counts_fully(serve: Any) -> None:
    first_error = 'http_requests_total{code="503"} 3\n'
    _, second = ratio_scrapes(serve, [requests_text(10, 0), requests_text(12, 0, first_error)],
                              {"errors_ok": ERRORS_OK})
    assert second.counts == {"errors_ok": (2.0, 5.0)}
    assert second.details["new_series"] == "1"


def test_a_failed_scrape_keeps_the_baseline_so_no_event_is_lost(serve: Any) -> None:
    broken = "this is not exposition text\n"
    _, failed, recovered = ratio_scrapes(
        serve, [requests_text(10, 0), broken, requests_text(30, 4)], {"errors_ok": ERRORS_OK})
    assert failed.error_class == ErrorClass.INVALID_METRICS
    assert recovered.counts == {"errors_ok": (20.0, 24.0)}
    assert recovered.values["errors_ok_rate_per_second"] == pytest.approx(24 / 20)


def test_only_cumulative_samples_feed_ratios(serve: Any) -> None:
    def page(requests: float, inflight: float, created: float) -> str:
        return ("# TYPE api_requests_total counter\n"
                f"api_requests_total {requests}\n"
                "# TYPE api_requests_created gauge\n"
                f"api_requests_created {created}\n"
                "# TYPE api_requests_inflight gauge\n"
                f"api_requests_inflight {inflight}\n"
                "# TYPE api_requests_legacy untyped\n"
                f"api_requests_legacy {inflight}\n")

    ratio = {"good": "api_requests_total", "total": '{__name__=~"api_requests.*"}'}
    _, second = ratio_scrapes(serve, [page(10, 5, 1.7e9), page(15, 50, 1.8e9)], {"all": ratio})
    assert second.counts == {"all": (5.0, 5.0)}  # gauges, untyped and _created left out


def test_counters_without_total_suffix_keep_their_exposed_name(serve: Any) -> None:
    def page(ok: float, failed: float) -> str:  # as older exporters write counters
        return ("# TYPE jobs counter\n"
                f'jobs{{result="ok"}} {ok}\njobs{{result="failed"}} {failed}\n'
                "# TYPE jobs_created counter\njobs_created 9\n")

    ratio = {"good": 'jobs{result="ok"}', "total": "jobs"}
    _, second = ratio_scrapes(serve, [page(1, 1), page(9, 3)], {"jobs": ratio})
    assert second.counts == {"jobs": (8.0, 10.0)}


def test_histogram_buckets_make_a_latency_ratio(serve: Any) -> None:
    def page(fast: float, count: float) -> str:
        return ("# TYPE rpc_seconds histogram\n"
                f'rpc_seconds_bucket{{le="0.25"}} {fast}\n'
                f'rpc_seconds_bucket{{le="+Inf"}} {count}\n'
                f"rpc_seconds_sum {count * 0.1}\nrpc_seconds_count {count}\n")

    ratio = {"good": 'rpc_seconds_bucket{le="0.25"}', "total": "rpc_seconds_count"}
    _, second = ratio_scrapes(serve, [page(90, 100), page(185, 200)], {"fast": ratio})
    assert second.counts == {"fast": (95.0, 100.0)}


def test_total_as_a_list_adds_series_once(serve: Any) -> None:
    def page(hits: float, misses: float) -> str:
        return ("# TYPE cache_hits_total counter\n"
                f"cache_hits_total {hits}\n"
                "# TYPE cache_misses_total counter\n"
                f"cache_misses_total {misses}\n")

    cache = {"good": "cache_hits_total",
             "total": ["cache_hits_total", "cache_misses_total", '{__name__="cache_hits_total"}']}
    _, second = ratio_scrapes(serve, [page(100, 20), page(170, 50)], {"cache": cache}, step=5)
    assert second.counts == {"cache": (70.0, 100.0)}
    assert second.values["cache_rate_per_second"] == pytest.approx(20.0)


def test_gauges_sum_matching_samples_and_report_no_match(serve: Any) -> None:
    text = ("# TYPE active_users gauge\n"
            'active_users{region="eu"} 30\nactive_users{region="us"} 12\n'
            "# TYPE queue_depth gauge\nqueue_depth NaN\n")
    gauges = {"users": "active_users", "eu_users": 'active_users{region="eu"}',
              "queue": "queue_depth", "gone": "renamed_metric"}
    result = run_once(target(url=serve(Exposition(text)), gauges=gauges))
    assert result.ok, result.error
    assert result.values == {"samples": 3, "users": 42, "eu_users": 30}
    assert result.details["no_match"] == "queue, gone"  # NaN is no value either


def test_against_the_demo_target_under_real_traffic() -> None:
    ratios = {
        "health_ok": {"good": 'http_requests_total{path="/health",code!~"5.."}',
                      "total": 'http_requests_total{path="/health"}'},
        "cache": {"good": "cache_hits_total", "total": ["cache_hits_total", "cache_misses_total"]},
    }

    async def scenario(url: str) -> tuple[ProbeResult, ProbeResult, int]:
        pool = HttpClientPool()
        try:
            config = target(url=f"{url}/metrics", ratios=ratios, gauges={"users": "active_users"})
            probe = KIND.build(config, ProbeContext(pool, region="test"))
            async with httpx.AsyncClient(base_url=url) as client:
                for _ in range(3):
                    assert (await client.get("/health")).status_code == 200
                first = await probe.run(1000.0)
                hits = 0
                for _ in range(6):
                    response = await client.get("/api/tasks")
                    hits += response.headers["X-Cache"] == "hit"
                await client.post("/admin/faults", json={"error_ratio": 1})
                for _ in range(4):
                    assert (await client.get("/health")).status_code == 500
                second = await probe.run(1010.0)
            return first, second, hits
        finally:
            await pool.aclose()

    with serve_asgi(create_demo_app(rng=random.Random(7))) as url:
        first, second, hits = asyncio.run(scenario(url))
    assert first.ok and second.ok, (first.error, second.error)
    assert first.counts == {}
    assert second.counts["health_ok"] == (0.0, 4.0)  # the 500s are a new series: all count
    assert second.counts["cache"] == (float(hits), 6.0)
    assert second.values["cache_rate_per_second"] == pytest.approx(0.6)
    assert 10 <= second.values["users"] <= 150
    assert second.values["samples"] > 10


# --- hostile and failing endpoints ---------------------------------------------------


def test_text_that_is_not_exposition_is_invalid_metrics_naming_the_line(serve: Any) -> None:
    body = "# TYPE up gauge\nup 1\n<html><body>Login required</body></html>\n"
    result = run_once(target(url=serve(lambda h: answer(h, 200, body, "text/html"))))
    assert not result.ok
    assert result.error_class == ErrorClass.INVALID_METRICS
    assert "line 3" in (result.error or "")
    assert "text/html" in (result.error or "")


def test_non_utf8_bytes_are_invalid_metrics_not_a_crash(serve: Any) -> None:
    body = b'up{instance="caf\xe9"} 1\n'
    result = run_once(target(url=serve(lambda h: answer(h, 200, body))))
    assert result.error_class == ErrorClass.INVALID_METRICS
    assert "not UTF-8" in (result.error or "")
    assert "0xe9" in (result.error or "")


def test_an_endless_100mb_stream_stops_at_max_body(serve: Any) -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"filler_total 1\n" * 4369  # ~64 KiB of valid lines
        for _ in range(1600):  # ~100 MB if the probe kept reading
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    result = run_once(target(url=serve(endless), timeout="8s"))
    assert result.error_class == ErrorClass.TOO_LARGE
    assert "4194304" in (result.error or "")  # the 4 MiB default


def test_declared_oversized_body_is_refused_before_reading(serve: Any) -> None:
    result = run_once(target(url=serve(lambda h: answer(h, 200, "x 1\n" * 400)), max_body="1KiB"))
    assert result.error_class == ErrorClass.TOO_LARGE
    assert "1600 bytes" in (result.error or "")


def test_a_server_dripping_a_byte_a_second_times_out(serve: Any) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(30):
            handler.wfile.write(b"#")
            handler.wfile.flush()
            time.sleep(1)

    result = run_once(target(url=serve(drip), timeout="1s"))
    assert result.error_class == ErrorClass.TIMEOUT
    assert "1s" in (result.error or "")


@pytest.mark.parametrize(("status", "error_class"), [
    (401, ErrorClass.AUTH), (403, ErrorClass.AUTH), (500, ErrorClass.HTTP_STATUS),
    (404, ErrorClass.HTTP_STATUS),
])
def test_error_statuses(serve: Any, status: int, error_class: str) -> None:
    result = run_once(target(url=serve(lambda h: answer(h, status, "no"))))
    assert result.error_class == error_class
    assert result.status_code == status


def test_refused_connection() -> None:
    result = run_once(target(url=f"http://127.0.0.1:{free_port()}/metrics"))
    assert result.error_class == ErrorClass.REFUSED


def test_headers_are_sent_and_accept_asks_for_text_format(serve: Any) -> None:
    seen: dict[str, str] = {}

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.update({k.lower(): v for k, v in handler.headers.items()})
        answer(handler, 200, "up 1\n")

    result = run_once(target(url=serve(record), headers={"Authorization": "Bearer s3cret"}))
    assert result.ok, result.error
    assert seen["authorization"] == "Bearer s3cret"
    assert seen["accept"].startswith("text/plain;version=0.0.4")


# --- config validation and the pure delta function ------------------------------------


@pytest.mark.parametrize(("fields", "loc", "message"), [
    ({"ratios": {"e": {"good": "x{code=500}", "total": "x"}}},
     ("ratios", "e", "good"), "expected a quoted value for label 'code'"),
    ({"ratios": {"e": {"good": "x", "total": ["x", "rate(y[5m])"]}}},
     ("ratios", "e", "total", 1), "functions are not supported"),
    ({"ratios": {"e": {"good": "x", "total": []}}}, ("ratios", "e", "total"), "at least 1"),
    ({"ratios": {"e": {"good": "x"}}}, ("ratios", "e", "total"), "Field required"),
    ({"gauges": {"users": "{}"}}, ("gauges", "users"), "matches every series"),
    ({"gauges": {"samples": "x"}}, (), "clashes with a value the probe records"),
    ({"ratios": {"e": {"good": "x", "total": "x"}}, "gauges": {"e_rate_per_second": "y"}},
     (), "clashes"),
    ({"ratios": {"bad name": {"good": "x", "total": "x"}}}, ("ratios", "bad name"),
     "pattern"),
    ({"url": "ftp://host/metrics"}, ("url",), "invalid URL"),
])
def test_config_errors_name_the_key(fields: dict[str, Any], loc: tuple[Any, ...],
                                    message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        target(**{"url": "http://127.0.0.1:1/metrics", **fields})
    error = caught.value.errors()[0]
    assert error["loc"][:len(loc)] == loc
    assert message in error["msg"]


def test_config_serializes_selectors_back_to_text() -> None:
    config = target(url="http://127.0.0.1:1/metrics",
                    ratios={"cache": {"good": "hits_total",
                                      "total": ["hits_total", "misses_total"]}})
    assert config.model_dump()["ratios"] == {
        "cache": {"good": ("hits_total",), "total": ("hits_total", "misses_total")}}


def test_counter_deltas_table() -> None:
    a, b, c = ("x_total", (("code", "200"),)), ("x_total", (("code", "500"),)), ("y_total", ())
    deltas, resets, new = counter_deltas({a: 10, b: 5}, {a: 12, b: 2, c: 4})
    assert deltas == {a: 2, b: 2, c: 4}
    assert (resets, new) == (1, 1)
