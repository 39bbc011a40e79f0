"""The browser probe: real headless Chromium against loopback servers, and its clear
"unavailable" answers when Chromium or Playwright is missing."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from monitor.demo_target import create_demo_app
from probes import HttpClientPool, ProbeContext
from probes.base import ErrorClass, ProbeResult
from probes.browser import KIND, BrowserProbe, BrowserTarget
from tests.conftest import service_missing
from tests.servers import free_port, route_server, send, serve_asgi

CHROMIUM = "/usr/bin/chromium"


def config(**target: Any) -> BrowserTarget:
    return BrowserTarget.model_validate({"name": "b", "type": "browser", "timeout": "15s",
                                         **target})


def run_once(**target: Any) -> ProbeResult:
    async def once() -> ProbeResult:
        clients = HttpClientPool()
        probe = KIND.build(config(**target), ProbeContext(clients, region="test"))
        try:
            return await probe.run(time.time())
        finally:
            await probe.aclose()
            await clients.aclose()

    return asyncio.run(once())


@pytest.fixture
def chromium() -> None:
    """Skip (or fail in CI) the tests that drive a real browser when it cannot run here."""
    if not os.access(CHROMIUM, os.X_OK):
        service_missing("chromium not installed at /usr/bin/chromium")
    if importlib.util.find_spec("playwright") is None:
        service_missing("playwright not installed: pip install 'primewatch[browser]'")


def test_missing_chromium_is_unavailable_with_a_clear_message() -> None:
    started = time.perf_counter()
    result = run_once(url="http://127.0.0.1:1/", executable_path="/nonexistent/chromium")
    assert not result.ok
    assert result.error_class == ErrorClass.UNAVAILABLE
    assert "browser probe needs Chromium at /nonexistent/chromium: apt-get install chromium" \
        in (result.error or "")
    assert time.perf_counter() - started < 1


def test_missing_playwright_is_unavailable_and_never_imported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # makes `import playwright` fail
    result = run_once(url="http://127.0.0.1:1/", executable_path=sys.executable)
    assert result.error_class == ErrorClass.UNAVAILABLE
    assert "pip install 'primewatch[browser]'" in (result.error or "")


def test_an_executable_that_is_not_a_browser_is_unavailable() -> None:
    if importlib.util.find_spec("playwright") is None:
        service_missing("playwright not installed: pip install 'primewatch[browser]'")
    result = run_once(url="http://127.0.0.1:1/", executable_path="/bin/false", timeout="10s")
    assert result.error_class == ErrorClass.UNAVAILABLE
    assert "could not launch Chromium at /bin/false" in (result.error or "")


@pytest.mark.usefixtures("chromium")
def test_demo_page_loads_in_one_reused_browser_relaunched_after_a_crash() -> None:
    async def scenario(url: str) -> list[ProbeResult]:
        clients = HttpClientPool()
        probe = KIND.build(config(url=url + "/", viewport={"width": 800, "height": 600}),
                           ProbeContext(clients, region="test"))
        assert isinstance(probe, BrowserProbe)
        try:
            first = await probe.run(time.time())
            browser = probe._browser
            second = await probe.run(time.time())
            assert probe._browser is browser  # one browser, a fresh context per run
            assert browser is not None
            await browser.close()  # as if Chromium had crashed
            third = await probe.run(time.time())
            assert probe._browser is not None and probe._browser is not browser
            return [first, second, third]
        finally:
            await probe.aclose()
            await clients.aclose()

    with serve_asgi(create_demo_app()) as url:
        results = asyncio.run(scenario(url))
    for result in results:
        assert result.ok, result.error
        assert result.status_code == 200
        assert result.latency == result.values["page_load_seconds"] > 0
        assert 0 < result.values["ttfb_seconds"] <= result.values["dom_content_loaded_seconds"]
        assert result.values["dom_content_loaded_seconds"] <= result.latency
        assert result.values["requests"] >= 3  # the page, app.css, app.js
        assert result.values["transfer_bytes"] > 0
        assert result.values["failed_requests"] == 0
        assert "failed_requests" not in result.details
        assert "console_errors" not in result.details


@pytest.mark.usefixtures("chromium")
def test_failed_image_and_console_errors_are_reported() -> None:
    page = ('<html><body><img src="/missing.png?v=1"><img src="/ok.png">'
            '<script>console.error("boom")</script></body></html>')
    routes = {"/": lambda h: send(h, 200, page, "text/html"),
              "/ok.png": lambda h: send(h, 200, b"", "image/png")}
    with route_server(routes) as server:
        result = run_once(url=server.url + "/", expect={"no_failed_requests": True})
    assert not result.ok
    assert result.error_class == ErrorClass.HTTP_STATUS
    assert "/missing.png (status 404)" in (result.error or "")
    assert result.details["failed_requests"] == "/missing.png (status 404)"
    assert result.details["console_errors"] == "1"
    assert "boom" in result.details["first_console_error"]
    assert result.values["page_load_seconds"] > 0


@pytest.mark.usefixtures("chromium")
def test_refused_error_page_and_slow_load_are_classified() -> None:
    def slow_image(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        send(h, 200, b"", "image/png")

    routes = {"/": lambda h: send(h, 200, '<img src="/slow.png">', "text/html"),
              "/slow.png": slow_image, "/down": lambda h: send(h, 503, "busy")}

    async def scenario(url: str) -> list[ProbeResult]:
        clients = HttpClientPool()
        probes = [KIND.build(config(**target), ProbeContext(clients, region="test"))
                  for target in ({"url": url + "/", "expect": {"max_load_time": "100ms"}},
                                 {"url": url + "/down"},
                                 {"url": f"http://127.0.0.1:{free_port()}/"})]
        try:
            return [await probe.run(time.time()) for probe in probes]
        finally:
            for probe in probes:
                await probe.aclose()
            await clients.aclose()

    with route_server(routes) as server:
        slow, down, refused = asyncio.run(scenario(server.url))
    assert slow.error_class == ErrorClass.SLOW, slow.error
    assert slow.values["page_load_seconds"] >= 0.3
    assert (down.error_class, down.status_code) == (ErrorClass.HTTP_STATUS, 503)
    assert refused.error_class == ErrorClass.REFUSED, refused.error
    assert "ERR_CONNECTION_REFUSED" in (refused.error or "")


@pytest.mark.usefixtures("chromium")
def test_a_hung_load_times_out_and_the_browser_stays_usable() -> None:
    hang = threading.Event()

    def hangs_once(h: BaseHTTPRequestHandler) -> None:
        if hang.is_set():
            hang.clear()
            time.sleep(3)
        send(h, 200, b"", "image/png")

    routes = {"/": lambda h: send(h, 200, '<img src="/hang.png">', "text/html"),
              "/hang.png": hangs_once}

    async def scenario(url: str) -> tuple[ProbeResult, ProbeResult]:
        clients = HttpClientPool()
        probe = KIND.build(config(url=url + "/", timeout="1500ms"),
                           ProbeContext(clients, region="test"))
        try:
            warm = await probe.run(time.time())  # launches the browser before the timed run
            assert warm.ok, warm.error
            hang.set()
            started = time.perf_counter()
            hung = await probe.run(time.time())
            assert time.perf_counter() - started < 4
            return hung, await probe.run(time.time())
        finally:
            await probe.aclose()
            await clients.aclose()

    with route_server(routes) as server:
        hung, after = asyncio.run(scenario(server.url))
    assert hung.error_class == ErrorClass.TIMEOUT, hung.error
    assert "within 1.5s" in (hung.error or "")
    assert after.ok, after.error
