"""The http probe against hostile and unusual targets: each a failed result with a clear
error class, bounded in time and memory, and the next probe still works."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme

from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ErrorClass, ProbeResult
from probes.http import HttpTarget
from probes.http_signals import ColdStartDetector, cdn_cache_status
from tests.servers import RouteServer, route_server, send


def run_probes(*targets: dict[str, Any], pause: float = 0.0) -> list[ProbeResult]:
    """Run several probe configs one after the other on one shared client pool."""

    async def go() -> list[ProbeResult]:
        clients = HttpClientPool()
        try:
            results = []
            for target in targets:
                config = HttpTarget.model_validate({"name": "t", "type": "http",
                                                    "timeout": "2s", **target})
                probe = build_probe(config, ProbeContext(clients, region="test"))
                results.append(await probe.run(time.time()))
                await asyncio.sleep(pause)
            return results
        finally:
            await clients.aclose()

    return asyncio.run(go())


def ok(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, "ok")


def chunked_forever(handler: BaseHTTPRequestHandler, chunk: bytes, pause: float) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    deadline = time.monotonic() + 30  # the server thread itself is bounded too
    while time.monotonic() < deadline:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
        if pause:
            time.sleep(pause)


def test_a_server_that_drips_one_byte_a_second_times_out_on_schedule() -> None:
    with route_server({"/drip": lambda h: chunked_forever(h, b"x", 1.0), "/ok": ok}) as s:
        started = time.perf_counter()
        dripped, after = run_probes({"url": s.url + "/drip", "timeout": "1500ms"},
                                    {"url": s.url + "/ok"})
        assert time.perf_counter() - started < 5
    assert dripped.error_class == ErrorClass.TIMEOUT
    assert after.ok  # the next probe is unaffected


def test_a_body_that_never_ends_is_cut_at_max_body() -> None:
    with route_server({"/endless": lambda h: chunked_forever(h, b"z" * 16384, 0.0)}) as s:
        [result] = run_probes({"url": s.url + "/endless", "max_body": "512KiB",
                               "timeout": "5s"})
    assert result.error_class == ErrorClass.TOO_LARGE


def test_a_100_mb_body_fails_fast_with_bounded_memory() -> None:
    def huge(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"m" * 1024 * 1024
        for _ in range(100):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    def declared(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(100 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b"d" * 65536)

    with route_server({"/huge": huge, "/declared": declared}) as s:
        tracemalloc.start()
        try:
            streamed, announced = run_probes({"url": s.url + "/huge", "timeout": "10s"},
                                             {"url": s.url + "/declared"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert streamed.error_class == ErrorClass.TOO_LARGE
    assert announced.error_class == ErrorClass.TOO_LARGE
    assert "104857600" in (announced.error or "")
    assert peak < 20 * 1024 * 1024  # the default 1 MiB cap, not 100 MB, was held


def _tls_server(server: RouteServer, cert: trustme.LeafCert) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    return f"https://127.0.0.1:{server.port}/"


def test_expired_certificate_is_a_tls_failure(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = ca.issue_cert("127.0.0.1", not_before=past - dt.timedelta(days=90),
                            not_after=past)
    with route_server({"/": ok}) as server:
        url = _tls_server(server, expired)
        [result] = run_probes({"url": url, "tls": {"ca_file": str(ca_file)}})
    assert result.error_class == ErrorClass.TLS
    assert "expired" in (result.error or "")


def test_certificate_close_to_expiry_fails_cert_min_days(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    soon = ca.issue_cert("127.0.0.1",
                         not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=5))
    with route_server({"/": ok}) as server:
        url = _tls_server(server, soon)
        strict, relaxed = run_probes(
            {"url": url, "tls": {"ca_file": str(ca_file)}, "expect": {"cert_min_days": 14}},
            {"url": url, "tls": {"ca_file": str(ca_file)}, "expect": {"cert_min_days": 2}})
    assert strict.error_class == ErrorClass.CERT_EXPIRING
    assert strict.cert_days_left is not None and 4 < strict.cert_days_left < 5.1
    assert relaxed.ok


def test_a_self_signed_certificate_is_refused_unless_verification_is_off() -> None:
    cert = trustme.CA().issue_cert("127.0.0.1")
    with route_server({"/": ok}) as server:
        url = _tls_server(server, cert)
        verified, unverified = run_probes({"url": url}, {"url": url, "tls": {"verify": False}})
    assert verified.error_class == ErrorClass.TLS
    assert unverified.ok


def redirect(to: str, status: int = 302) -> Any:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return handler


def test_redirects_are_followed_counted_and_limited() -> None:
    routes = {"/a": redirect("/b"), "/b": redirect("/c", 301), "/c": ok,
              "/loop1": redirect("/loop2"), "/loop2": redirect("/loop1")}
    routes.update({f"/chain{i}": redirect(f"/chain{i + 1}") for i in range(10)})
    with route_server(routes) as s:
        followed, loop, too_many, not_followed = run_probes(
            {"url": s.url + "/a"}, {"url": s.url + "/loop1"},
            {"url": s.url + "/chain0", "max_redirects": 3},
            {"url": s.url + "/a", "follow_redirects": False, "expect": {"status": [302]}})
    assert followed.ok and followed.values["redirects"] == 2
    assert followed.details["final_url"].endswith("/c")
    assert loop.error_class == ErrorClass.REDIRECTS and "loop" in (loop.error or "")
    assert too_many.error_class == ErrorClass.REDIRECTS and "3" in (too_many.error or "")
    assert not_followed.ok and not_followed.status_code == 302


def test_malformed_json_and_non_utf8_are_clean_failures() -> None:
    with route_server({"/bad": lambda h: send(h, 200, b'{"status": "ok"', "application/json"),
                       "/bin": lambda h: send(h, 200, b"\xff\xfe\xfa", "application/json")}) as s:
        truncated, binary = run_probes(
            {"url": s.url + "/bad", "expect": {"json": {"status": "ok"}}},
            {"url": s.url + "/bin", "expect": {"json": {"status": "ok"}}})
    assert truncated.error_class == ErrorClass.INVALID_JSON
    assert binary.error_class == ErrorClass.INVALID_JSON


def test_a_server_that_closes_without_answering_is_a_protocol_or_connection_error() -> None:
    def hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(2)

    with route_server({"/": hang_up}) as s:
        [result] = run_probes({"url": s.url + "/"})
    assert result.error_class in (ErrorClass.PROTOCOL, ErrorClass.CONNECTION)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"cf-cache-status": "HIT"}, ("cf-cache-status: HIT", True)),
    ({"cf-cache-status": "DYNAMIC"}, ("cf-cache-status: DYNAMIC", False)),
    ({"x-vercel-cache": "STALE"}, ("x-vercel-cache: STALE", True)),
    ({"x-cache": "Miss from cloudfront"}, ("x-cache: Miss from cloudfront", False)),
    ({"age": "120"}, ("age: 120", True)),
    ({"age": "0"}, ("age: 0", False)),
    ({"server": "nginx"}, None),
])
def test_cdn_cache_status_is_read_from_vendor_headers(headers: dict[str, str],
                                                      expected: Any) -> None:
    assert cdn_cache_status(headers) == expected


def test_cdn_status_and_chosen_headers_are_recorded() -> None:
    def cached(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("cf-cache-status", "HIT")
        handler.send_header("x-request-id", "abc123")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    with route_server({"/": cached, "/plain": ok}) as s:
        hit, plain = run_probes({"url": s.url + "/", "record_headers": ["X-Request-Id"]},
                                {"url": s.url + "/plain"})
    assert hit.counts["cdn"] == (1.0, 1.0)
    assert hit.details["cdn_cache"] == "cf-cache-status: HIT"
    assert hit.details["header.x-request-id"] == "abc123"
    assert "cdn" not in plain.counts


def test_cold_start_detector_by_factor_and_by_absolute_latency() -> None:
    detector = ColdStartDetector(idle_after=60, factor=3, min_latency=None, history=10)
    warm = [detector.observe(t, 0.05, True) for t in (0, 10, 20, 30)]
    assert warm == [False, False, False, False]  # not idle long enough, or no history yet
    assert detector.observe(40, 0.5, True) is False  # slow but not after idle: a spike
    assert detector.observe(200, 0.5, True) is True  # idle 160 s, 10x the median
    assert detector.observe(400, 0.06, True) is False  # idle, but as fast as usual
    absolute = ColdStartDetector(idle_after=0, factor=3, min_latency=1.0, history=10)
    assert absolute.observe(0, 1.2, True) is True  # first request, over the absolute bar
    assert absolute.observe(1, 1.2, False) is False  # a failure is not a cold start


def test_cold_starts_of_the_demo_target_are_detected_and_counted() -> None:
    from monitor.demo_target import Faults, create_demo_app
    from tests.servers import serve_asgi

    faults = Faults(cold_start_after_idle=0.4, cold_start_delay=0.6)
    with serve_asgi(create_demo_app(faults)) as url:
        target = {"url": url + "/health",
                  "cold_start": {"idle_after": "300ms", "factor": 4,
                                 "min_cold_latency": "300ms"}}

        async def go() -> list[ProbeResult]:
            clients = HttpClientPool()
            try:
                config = HttpTarget.model_validate({"name": "api", "type": "http",
                                                    "timeout": "3s", **target})
                probe = build_probe(config, ProbeContext(clients))
                results = []
                for gap in (0, 0.1, 0.1, 0.1, 0.1, 0.6):  # warm-up, then idle past 0.4 s
                    await asyncio.sleep(gap)
                    results.append(await probe.run(time.time()))
                return results
            finally:
                await clients.aclose()

        results = asyncio.run(go())
    flags = [r.values["cold_start"] for r in results]
    assert flags[-1] == 1.0
    assert flags[1:-1] == [0.0, 0.0, 0.0, 0.0]
    assert results[-1].counts["warm"] == (0.0, 1.0)
    assert results[2].counts["warm"] == (1.0, 1.0)
