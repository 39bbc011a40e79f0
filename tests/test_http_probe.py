"""The http probe against real servers on loopback: each outcome and error class."""

from __future__ import annotations

import asyncio
import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme

from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ErrorClass, ProbeResult
from probes.http import HttpTarget, json_path
from probes.urls import redact_url
from tests.servers import free_port, route_server, send


def run_probe(**target: Any) -> ProbeResult:
    config = HttpTarget.model_validate({"name": "t", "type": "http", "timeout": "2s", **target})

    async def once() -> ProbeResult:
        clients = HttpClientPool()
        try:
            probe = build_probe(config, ProbeContext(clients, region="test-region"))
            return await probe.run(time.time())
        finally:
            await clients.aclose()

    return asyncio.run(once())


def ok_json(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, json.dumps({"status": "ok", "data": {"items": [{"id": 7}]}}),
         "application/json")


def test_200_is_a_success_with_measurements() -> None:
    with route_server({"/health": ok_json}) as server:
        result = run_probe(url=f"{server.url}/health",
                           expect={"status": [200], "body_contains": "ok",
                                   "json": {"status": "ok", "data.items.0.id": 7}})
    assert result.ok, result.error
    assert result.status_code == 200
    assert result.error_class is None
    assert result.region == "test-region"
    assert result.response_bytes == len(json.dumps({"status": "ok",
                                                    "data": {"items": [{"id": 7}]}}))
    assert 0 < result.latency < 2


def test_500_fails_with_http_status() -> None:
    with route_server({"/": lambda h: send(h, 500, "boom")}) as server:
        result = run_probe(url=server.url + "/")
    assert not result.ok
    assert result.error_class == ErrorClass.HTTP_STATUS
    assert result.status_code == 500
    assert "500" in (result.error or "")


def test_unexpected_status_even_if_2xx() -> None:
    with route_server({"/": lambda h: send(h, 204, "")}) as server:
        assert run_probe(url=server.url + "/", expect={"status": [200]}).error_class \
            == ErrorClass.HTTP_STATUS
        assert run_probe(url=server.url + "/").ok  # default accepts any 2xx


def test_body_mismatch_is_an_assertion_failure() -> None:
    with route_server({"/": lambda h: send(h, 200, "degraded")}) as server:
        result = run_probe(url=server.url + "/", expect={"body_contains": "ok"})
    assert not result.ok
    assert result.error_class == ErrorClass.ASSERTION
    assert "'ok'" in (result.error or "")


def test_json_field_mismatch_names_the_field() -> None:
    with route_server({"/": ok_json}) as server:
        wrong = run_probe(url=server.url + "/", expect={"json": {"status": "down"}})
        missing = run_probe(url=server.url + "/", expect={"json": {"data.nope": 1}})
    assert wrong.error_class == ErrorClass.ASSERTION and "'status'" in (wrong.error or "")
    assert missing.error_class == ErrorClass.ASSERTION and "missing" in (missing.error or "")


def test_bad_json_is_invalid_json() -> None:
    with route_server({"/": lambda h: send(h, 200, "{not json", "application/json")}) as server:
        result = run_probe(url=server.url + "/", expect={"json": {"status": "ok"}})
    assert not result.ok
    assert result.error_class == ErrorClass.INVALID_JSON


def test_non_utf8_body_does_not_break_body_contains() -> None:
    with route_server({"/": lambda h: send(h, 200, b"\xff\xfe ok \xc3")}) as server:
        assert run_probe(url=server.url + "/", expect={"body_contains": "ok"}).ok


def test_timeout_against_a_server_that_sleeps() -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(2)
        send(handler, 200, "late")

    with route_server({"/": slow}) as server:
        started = time.perf_counter()
        result = run_probe(url=server.url + "/", timeout="300ms")
        elapsed = time.perf_counter() - started
    assert not result.ok
    assert result.error_class == ErrorClass.TIMEOUT
    assert elapsed < 1.5  # bounded by the probe's deadline, not the server


def test_timeout_covers_a_body_dripped_slowly() -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.05)

    with route_server({"/": drip}) as server:
        result = run_probe(url=server.url + "/", timeout="400ms")
    assert result.error_class == ErrorClass.TIMEOUT


def test_refused_port() -> None:
    result = run_probe(url=f"http://127.0.0.1:{free_port()}/")
    assert not result.ok
    assert result.error_class == ErrorClass.REFUSED


def test_unresolvable_host_is_dns() -> None:
    result = run_probe(url="http://no-such-host.invalid/")
    assert result.error_class == ErrorClass.DNS


def test_oversized_body_declared_in_content_length() -> None:
    with route_server({"/": lambda h: send(h, 200, b"x" * 5000)}) as server:
        result = run_probe(url=server.url + "/", max_body="1KiB")
    assert result.error_class == ErrorClass.TOO_LARGE


def test_oversized_body_without_content_length_stops_reading() -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"y" * 65536
        for _ in range(2000):  # 128 MiB if the probe kept reading
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    with route_server({"/": endless}) as server:
        result = run_probe(url=server.url + "/", max_body="256KiB", timeout="5s")
    assert result.error_class == ErrorClass.TOO_LARGE


def test_max_latency_exceeded_is_slow() -> None:
    def sluggish(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.15)
        send(handler, 200, "ok")

    with route_server({"/": sluggish}) as server:
        result = run_probe(url=server.url + "/", expect={"max_latency": "50ms"})
    assert result.error_class == ErrorClass.SLOW
    assert result.status_code == 200


def test_post_with_headers_and_body_reaches_the_server() -> None:
    seen: dict[str, Any] = {}

    def echo(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        seen["body"] = handler.rfile.read(length)
        seen["token"] = handler.headers.get("X-Token")
        seen["method"] = handler.command
        send(handler, 201, "created")

    with route_server({"/orders": echo}) as server:
        result = run_probe(url=server.url + "/orders", method="POST",
                           headers={"X-Token": "abc"}, body='{"qty": 1}',
                           expect={"status": [201]})
    assert result.ok
    assert seen == {"body": b'{"qty": 1}', "token": "abc", "method": "POST"}


def test_https_records_certificate_days_left(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with route_server({"/": lambda h: send(h, 200, "ok")}) as server:
        context = __import__("ssl").SSLContext(__import__("ssl").PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        url = f"https://127.0.0.1:{server.port}/"
        trusted = run_probe(url=url, tls={"ca_file": str(ca_file)})
        untrusted = run_probe(url=url)
    assert trusted.ok, trusted.error
    assert trusted.cert_days_left is not None and trusted.cert_days_left > 300
    assert untrusted.error_class == ErrorClass.TLS


def test_invalid_target_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid URL"):
        HttpTarget.model_validate({"name": "x", "type": "http", "url": "ftp://host/"})


def test_json_path_and_redaction() -> None:
    doc = {"a": {"b": [1, {"c": True}]}}
    assert json_path(doc, "a.b.1.c") is True
    assert json_path(doc, "a.b.5") is not True
    assert redact_url("https://user:secret@host:8443/x?q=1") == "https://***@host:8443/x?q=1"
    assert redact_url("http://host/x") == "http://host/x"
