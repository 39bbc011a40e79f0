"""The page probe against real servers on loopback: assets found, timed, capped and checked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from monitor.demo_target import create_demo_app
from probes import HttpClientPool, ProbeContext
from probes.base import ErrorClass, ProbeResult
from probes.page import KIND, Asset, PageTarget, find_assets
from tests.servers import route_server, send, serve_asgi

Handler = Callable[[BaseHTTPRequestHandler], None]


def run_probe(**target: Any) -> ProbeResult:
    config = PageTarget.model_validate({"name": "t", "type": "page", "timeout": "5s", **target})

    async def once() -> ProbeResult:
        clients = HttpClientPool()
        try:
            probe = KIND.build(config, ProbeContext(clients, region="test"))
            try:
                return await probe.run(time.time())
            finally:
                await probe.aclose()
        finally:
            await clients.aclose()

    return asyncio.run(once())


def html(body: str | bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    return lambda h: send(h, 200, body, content_type)


def slow(seconds: float, body: str = "x") -> Handler:
    def handler(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        send(h, 200, body)
    return handler


def ok(h: BaseHTTPRequestHandler) -> None:
    send(h, 200, "/* ok */", "text/css")


def test_demo_target_page_loads_with_its_two_assets() -> None:
    with serve_asgi(create_demo_app()) as url:
        result = run_probe(url=url + "/")
    assert result.ok, result.error
    assert result.status_code == 200
    assert result.values["assets"] == 2
    assert result.values["page_load_seconds"] == result.latency
    assert result.values["page_load_seconds"] >= result.values["html_seconds"] > 0
    assert result.details["slowest_asset"] in {"/static/app.css", "/static/app.js"}
    assert result.values["page_bytes"] == result.response_bytes > 200
    assert "failed_assets" not in result.details


def test_slowest_asset_is_named_and_assets_load_concurrently() -> None:
    page = "".join(f'<script src="/s{i}.js"></script>' for i in range(4))
    routes = {"/": html(f'<link rel="stylesheet" href="/fast.css">{page}'), "/fast.css": ok,
              "/s0.js": slow(0.3), "/s1.js": slow(0.3), "/s2.js": slow(0.3),
              "/s3.js": slow(0.45)}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/")
    assert result.ok, result.error
    assert result.values["assets"] == 5
    assert result.details["slowest_asset"] == "/s3.js"
    assert result.values["slowest_asset_seconds"] >= 0.45
    assert 0.45 <= result.latency < 1.0  # one after another would take 1.35 s


def test_concurrency_limit_queues_assets_like_a_browser() -> None:
    page = "".join(f'<img src="/i{i}.png">' for i in range(4))
    routes = {"/": html(page), **{f"/i{i}.png": slow(0.2) for i in range(4)}}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/", concurrency=2)
    assert result.ok, result.error
    assert result.latency >= 0.4  # two rounds of two


def test_only_same_origin_assets_are_fetched() -> None:
    with route_server({"/x.js": ok}) as other, route_server() as server:
        server.routes["/"] = html(
            f'<script src="{other.url}/x.js"></script>'
            f'<script src="http://localhost:{server.port}/y.js"></script>'
            '<script src="https://cdn.example.invalid/lib.js"></script>'
            '<img src="data:image/png;base64,iVBORw0KGgo="><img src="/own.png">')
        server.routes["/own.png"] = ok
        result = run_probe(url=server.url + "/")
    assert result.ok, result.error
    assert result.values["assets"] == 1
    assert result.values["assets_skipped"] == 4
    assert other.hits == {}
    assert server.hits == {"/": 1, "/own.png": 1}


def test_missing_asset_fails_the_probe_naming_it() -> None:
    routes = {"/": html('<link rel="stylesheet" href="/a.css"><img src="/missing.png?v=3">'
                        '<link rel="icon" href="/favicon.ico">'),
              "/a.css": ok}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/")
        tolerant = run_probe(url=server.url + "/", expect={"assets_must_load": False})
    assert not result.ok
    assert result.error_class == ErrorClass.HTTP_STATUS
    assert result.status_code == 200
    assert "/missing.png (status 404)" in (result.error or "")
    assert "favicon" not in (result.error or "")  # an icon is optional
    assert result.details["failed_assets"] == "/missing.png, /favicon.ico"
    assert tolerant.ok
    assert tolerant.details["failed_assets"] == "/missing.png, /favicon.ico"


def test_html_status_and_redirects() -> None:
    def moved(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", "/app/index.html")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def loop(h: BaseHTTPRequestHandler) -> None:
        h.send_response(301)
        h.send_header("Location", "/loop")
        h.send_header("Content-Length", "0")
        h.end_headers()

    routes = {"/": moved, "/app/index.html": html('<script src="main.js"></script>'),
              "/app/main.js": ok, "/down": lambda h: send(h, 503, "busy"), "/loop": loop}
    with route_server(routes) as server:
        followed = run_probe(url=server.url + "/")
        down = run_probe(url=server.url + "/down")
        looping = run_probe(url=server.url + "/loop")
    assert followed.ok, followed.error
    assert followed.details["slowest_asset"] == "/app/main.js"  # resolved after the redirect
    assert (down.ok, down.error_class, down.status_code) == (False, ErrorClass.HTTP_STATUS, 503)
    assert looping.error_class == ErrorClass.REDIRECTS


def test_max_assets_caps_what_is_fetched() -> None:
    page = "".join(f'<img src="/i{i}.png">' for i in range(10))
    routes = {"/": html(page), **{f"/i{i}.png": ok for i in range(10)}}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/", max_assets=3)
    assert result.ok, result.error
    assert result.values["assets"] == 3
    assert result.values["assets_skipped"] == 7
    assert set(server.hits) == {"/", "/i0.png", "/i1.png", "/i2.png"}


def _endless(pause: float) -> Handler:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"x" * 4096
        while True:
            h.wfile.write(b"1000\r\n" + chunk + b"\r\n")
            h.wfile.flush()
            time.sleep(pause)
    return handler


def test_endless_asset_is_bounded_by_size_or_time() -> None:
    routes = {"/": html('<script src="/flood.js"></script><img src="/drip.png">'),
              "/big": html('<img src="/flood.js">'), "/slow": html('<img src="/drip.png">'),
              "/flood.js": _endless(0.0), "/drip.png": _endless(0.05)}
    with route_server(routes) as server:
        started = time.perf_counter()
        flood = run_probe(url=server.url + "/big", max_asset_bytes="64KiB")
        drip = run_probe(url=server.url + "/slow", timeout="600ms")
        elapsed = time.perf_counter() - started
    assert flood.error_class == ErrorClass.TOO_LARGE
    assert "/flood.js" in (flood.error or "")
    assert drip.error_class == ErrorClass.TIMEOUT
    assert "still loading /drip.png" in (drip.error or "")
    assert drip.details["pending_assets"] == "/drip.png"
    assert elapsed < 4


def test_html_over_max_body_is_too_large() -> None:
    with route_server({"/": html("<p>" + "x" * 5000)}) as server:
        result = run_probe(url=server.url + "/", max_body=1024)
    assert result.error_class == ErrorClass.TOO_LARGE


def test_broken_markup_and_non_utf8_bytes_still_parse() -> None:
    page = (b"<html><head><title>caf\xe9 \xff\xfe</title><LINK REL=Stylesheet HREF=a.css>"
            b"<div <p x=1 < 3 ></span></b><script src=\"/b.js\"></script></table></div>"
            b"<img src=/c.png srcset='/c2.png 2x, /c3.png 3x'><![if !IE]><p>\x00\xc3</>"
            b"<img src='/d.png'")  # unterminated final tag: dropped, as browsers do
    routes = {"/": html(page, "text/html; charset=utf-8"), "/a.css": ok, "/b.js": ok,
              "/c.png": ok, "/c2.png": ok}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/")
    assert result.ok, result.error
    assert result.values["assets"] == 4
    assert set(server.hits) == {"/", "/a.css", "/b.js", "/c.png", "/c2.png"}


def test_max_load_time_makes_a_slow_page_a_failure() -> None:
    routes = {"/": html('<script src="/slow.js"></script>'), "/slow.js": slow(0.3)}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/", expect={"max_load_time": "100ms"})
    assert not result.ok
    assert result.error_class == ErrorClass.SLOW
    assert "max_load_time 100 ms" in (result.error or "")
    assert result.values["page_load_seconds"] >= 0.3


def test_find_assets_follows_browser_rules() -> None:
    page = """<base href="/app/">
    <link rel="preload" href="font.woff2" as="font"><link rel="stylesheet" href="font.woff2">
    <link rel="alternate stylesheet" href="alt.css"><link rel="canonical" href="/x">
    <link rel="modulepreload" href="m.js"><script src="main.js#frag"></script>
    <script src="main.js"></script><noscript><img src="pixel.gif"></noscript>
    <img src="lazy.png" loading="lazy"><img srcset="small.png 1x, big.png 2x">
    <template><img src="tpl.png"></template><img src="after.png">"""
    assets, skipped = find_assets(page, "http://h:8080/index.html", 50)
    assert assets == [Asset("http://h:8080/app/font.woff2", required=True),
                      Asset("http://h:8080/app/m.js", required=False),
                      Asset("http://h:8080/app/main.js"),
                      Asset("http://h:8080/app/small.png"),
                      Asset("http://h:8080/app/after.png")]
    assert skipped == 0
    other, skipped = find_assets('<img src="https://h:8080/a.png"><img src="//h:8080/b.png">',
                                 "http://h:8080/", 50)
    assert [a.url for a in other] == ["http://h:8080/b.png"]  # https is another origin
    assert skipped == 1


def test_headers_go_to_the_page_and_its_assets() -> None:
    seen: dict[str, tuple[str | None, str | None]] = {}

    def record(body: str) -> Handler:
        def handler(h: BaseHTTPRequestHandler) -> None:
            seen[h.path] = (h.headers.get("X-Token"), h.headers.get("Accept"))
            send(h, 200, body, "text/html")
        return handler

    routes = {"/": record('<script src="/a.js"></script>'), "/a.js": record("")}
    with route_server(routes) as server:
        result = run_probe(url=server.url + "/", headers={"X-Token": "abc"})
    assert result.ok, result.error
    assert seen["/"][0] == seen["/a.js"][0] == "abc"
    assert "text/html" in (seen["/"][1] or "")  # like a browser, for content negotiation
