"""The `browser` probe kind: headless Chromium loads the page; its Navigation Timing says how
long the user waited.

Why a browser as well as the `page` kind: only a browser runs the scripts, loads what they
load and fires the `load` event that "page load time" means. Why one browser per probe,
kept running: launching Chromium costs about a second of CPU, while a fresh context per run
still gives a cold cache and no cookies, i.e. a first visit. Playwright is an optional
extra (`pip install 'primewatch[browser]'`), imported only when a run needs it, and it
never downloads a browser: it drives the system's Chromium at `executable_path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from monitor.units import Duration
from probes.base import (
    ErrorClass,
    ProbeContext,
    ProbeKind,
    ProbeResult,
    Signals,
    StrictModel,
    TargetConfig,
)
from probes.page import join_capped
from probes.urls import HttpUrlStr, redact_text, redact_url

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Playwright,
        Request,
        Response,
        ViewportSize,
    )

log = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
    "--disable-dev-shm-usage",
)
"""No sandbox because services often run as root in containers, where Chromium's sandbox
cannot start; the rest stop background traffic that would skew timings."""

LAUNCH_TIMEOUT = 30.0
"""Seconds Chromium may take to start; apart from `timeout`, which is the target's budget."""
_CLOSE_TIMEOUT = 5.0
_DETAIL_CHARS = 300
_LOADED_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  return !!nav && nav.loadEventEnd > 0;
}"""
_TIMING_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  return {
    load: nav.loadEventEnd, dcl: nav.domContentLoadedEventEnd, ttfb: nav.responseStart,
    bytes: nav.transferSize + resources.reduce((sum, r) => sum + (r.transferSize || 0), 0),
    requests: 1 + resources.length,
  };
}"""
# Chromium network errors (net::ERR_...) by error class; the first matching prefix wins
_NET_ERRORS = (
    ("ERR_NAME_NOT_RESOLVED", ErrorClass.DNS), ("ERR_NAME_RESOLUTION", ErrorClass.DNS),
    ("ERR_CONNECTION_REFUSED", ErrorClass.REFUSED), ("ERR_CERT_", ErrorClass.TLS),
    ("ERR_SSL_", ErrorClass.TLS), ("ERR_TOO_MANY_REDIRECTS", ErrorClass.REDIRECTS),
    ("ERR_TIMED_OUT", ErrorClass.TIMEOUT), ("ERR_CONNECTION_TIMED_OUT", ErrorClass.TIMEOUT),
    ("ERR_EMPTY_RESPONSE", ErrorClass.PROTOCOL), ("ERR_INVALID_", ErrorClass.PROTOCOL),
    ("ERR_", ErrorClass.CONNECTION),
)


class BrowserExpect(StrictModel):
    """What a good page load looks like in the browser; every condition must hold."""

    max_load_time: Duration | None = None
    no_failed_requests: bool = False


class Viewport(StrictModel):
    """Window size in CSS pixels; responsive pages load different images per size."""

    width: int = Field(default=1280, ge=200, le=7680)
    height: int = Field(default=720, ge=200, le=4320)


class BrowserTarget(TargetConfig):
    """A web page loaded in headless Chromium, scripts and all."""

    type: Literal["browser"] = "browser"
    interval: Duration = 60.0
    timeout: Duration = 30.0
    url: HttpUrlStr
    executable_path: str = "/usr/bin/chromium"
    expect: BrowserExpect = Field(default_factory=BrowserExpect)
    viewport: Viewport | None = None

    def display_url(self) -> str:
        return redact_url(self.url)

    def signals(self) -> Signals:
        return Signals(values=frozenset({
            "page_load_seconds", "dom_content_loaded_seconds", "ttfb_seconds",
            "transfer_bytes", "requests", "failed_requests", "console_errors"}))


class _Unavailable(Exception):
    """This machine cannot run a browser probe now (no Playwright, no Chromium, no launch)."""


@dataclass  # no slots: Playwright stores bookkeeping on the owner of a bound-method handler
class _Observed:
    """What the page's event handlers saw while it loaded."""

    origin: tuple[str, str | None, int | None]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (where, why), in order
    console_errors: list[str] = field(default_factory=list)

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append((self.where(response.url), f"status {response.status}"))

    def on_request_failed(self, request: Request) -> None:
        self.failed.append((self.where(request.url), request.failure or "failed"))

    def on_console(self, kind: str, text: str) -> None:
        # Chromium also logs each failed load ("Failed to load resource"): those are counted
        # as failed requests already, and the favicon's, which no user notices, is ignored
        if kind == "error" and not text.startswith("Failed to load resource"):
            self.console_errors.append(redact_text(text))  # scripts log URLs with tokens

    def where(self, url: str) -> str:
        """The path for this page's own origin, host and path for others; never the query."""
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) == self.origin:
            return parts.path or "/"
        return f"{parts.scheme}://{parts.hostname}{parts.path}"


class BrowserProbe:
    """Runs one BrowserTarget in a Chromium it launches on first use and keeps."""

    def __init__(self, config: BrowserTarget, *, region: str) -> None:
        self.config = config
        self.region = region
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()

    async def run(self, started_at: float) -> ProbeResult:
        t0 = time.perf_counter()
        missing = self._missing()
        if missing:
            return self._fail(started_at, t0, ErrorClass.UNAVAILABLE, missing)
        try:  # launching is our cost, not the target's: it has its own deadline
            async with asyncio.timeout(LAUNCH_TIMEOUT):
                browser = await self._ensure_browser()
        except TimeoutError:
            return self._fail(started_at, t0, ErrorClass.UNAVAILABLE,
                              f"Chromium did not start within {LAUNCH_TIMEOUT:g}s")
        except _Unavailable as exc:
            return self._fail(started_at, t0, ErrorClass.UNAVAILABLE, str(exc))
        t0 = time.perf_counter()
        context: BrowserContext | None = None
        try:
            async with asyncio.timeout(self.config.timeout):
                context = await browser.new_context(viewport=self._viewport(),
                                                    service_workers="block")
                return await self._measure(context, started_at, t0)
        except TimeoutError:
            return self._fail(started_at, t0, ErrorClass.TIMEOUT,
                              f"page did not load within {self.config.timeout:g}s")
        except Exception as exc:  # boundary: a probe never raises into the scheduler
            return await self._on_error(started_at, t0, exc)
        finally:
            if context is not None:
                await self._close_context(context)

    async def _measure(self, context: BrowserContext, started_at: float,
                       t0: float) -> ProbeResult:
        config = self.config
        page = await context.new_page()
        parts = urlsplit(config.url)
        seen = _Observed(origin=(parts.scheme, parts.hostname, parts.port))
        page.on("response", seen.on_response)
        page.on("requestfailed", seen.on_request_failed)
        page.on("console", lambda message: seen.on_console(message.type, message.text))
        page.on("pageerror", lambda error: seen.on_console("error", str(error)))
        page.set_default_timeout(config.timeout * 1000)  # asyncio.timeout is the real bound
        response = await page.goto(config.url, wait_until="load")
        status = response.status if response is not None else None
        if status is not None and status >= 400:
            return self._fail(started_at, t0, ErrorClass.HTTP_STATUS,
                              f"status {status}, expected < 400", status)
        await page.wait_for_function(_LOADED_JS)  # `load` fired; wait for its handlers to end
        timing: dict[str, Any] = await page.evaluate(_TIMING_JS)
        failed, console_errors = list(seen.failed), list(seen.console_errors)

        latency = _seconds(timing.get("load"))
        result = ProbeResult(
            target=config.name, started_at=started_at, ok=True, latency=latency,
            region=self.region, status_code=status,
            response_bytes=int(timing.get("bytes") or 0),
        )
        result.values = {
            "page_load_seconds": latency,
            "dom_content_loaded_seconds": _seconds(timing.get("dcl")),
            "ttfb_seconds": _seconds(timing.get("ttfb")),
            "transfer_bytes": float(timing.get("bytes") or 0),
            "requests": float(timing.get("requests") or 0),
            "failed_requests": float(len(failed)),
            "console_errors": float(len(console_errors)),
        }
        if failed:
            result.details["failed_requests"] = join_capped(
                [f"{where} ({why})" for where, why in failed])
        if console_errors:
            result.details["console_errors"] = str(len(console_errors))
            result.details["first_console_error"] = console_errors[0][:_DETAIL_CHARS]
        failure = self._check(failed, latency)
        if failure is not None:
            result.ok = False
            result.error_class, result.error = failure
        return result

    def _check(self, failed: list[tuple[str, str]], latency: float) -> tuple[str, str] | None:
        expect = self.config.expect
        if expect.no_failed_requests and failed:
            why = failed[0][1]
            error_class = ErrorClass.HTTP_STATUS if why.startswith("status ") else _net_class(why)
            named = join_capped([f"{w} ({y})" for w, y in failed], 250)
            noun = "request" if len(failed) == 1 else f"{len(failed)} requests"
            return error_class, f"{noun} failed: {named}"
        if expect.max_load_time is not None and latency > expect.max_load_time:
            return (ErrorClass.SLOW,
                    f"page took {latency * 1000:.0f} ms to load, over max_load_time "
                    f"{expect.max_load_time * 1000:.0f} ms")
        return None

    def _viewport(self) -> ViewportSize | None:
        size = self.config.viewport
        return None if size is None else {"width": size.width, "height": size.height}

    def _missing(self) -> str | None:
        """Why this machine cannot run the probe, checked every run so installing fixes it."""
        problems = []
        path = self.config.executable_path
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            problems.append(f"browser probe needs Chromium at {path}: apt-get install chromium "
                            "(or set executable_path)")
        if importlib.util.find_spec("playwright") is None:
            problems.append("browser probe needs Playwright: pip install 'primewatch[browser]'")
        return "; ".join(problems) or None

    async def _ensure_browser(self) -> Browser:
        """The running browser; (re)launched when absent or crashed."""
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            await self._discard_browser()
            try:
                from playwright.async_api import async_playwright
            except ImportError as exc:
                raise _Unavailable("browser probe needs Playwright: "
                                   "pip install 'primewatch[browser]'") from exc
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.config.executable_path, args=list(CHROMIUM_ARGS),
                    headless=True, timeout=LAUNCH_TIMEOUT * 1000,
                )
            except asyncio.CancelledError:
                await self.aclose()  # the driver may yet finish a launch nobody would own
                raise
            except Exception as exc:
                await self.aclose()  # a driver that failed once is not trusted again
                first_line = _first_line(str(exc).strip()) if str(exc).strip() else ""
                raise _Unavailable(f"could not launch Chromium at {self.config.executable_path}"
                                   f": {first_line or type(exc).__name__}") from exc
            log.info("launched Chromium %s for browser probe %s", self._browser.version,
                     self.config.name)
            return self._browser

    async def _on_error(self, started_at: float, t0: float, exc: Exception) -> ProbeResult:
        """Classify a Playwright error; anything else is a bug, logged with its traceback."""
        message = str(exc).strip()
        if type(exc).__module__.startswith("playwright"):
            if self._browser is None or not self._browser.is_connected():
                await self._discard_browser()
                return self._fail(started_at, t0, ErrorClass.UNAVAILABLE,
                                  f"Chromium stopped during the run: {_first_line(message)}")
            if type(exc).__name__ == "TimeoutError":
                return self._fail(started_at, t0, ErrorClass.TIMEOUT,
                                  f"page did not load within {self.config.timeout:g}s")
            return self._fail(started_at, t0, _net_class(message), _first_line(message))
        log.exception("browser probe %s failed unexpectedly", self.config.name)
        return self._fail(started_at, t0, ErrorClass.INTERNAL,
                          f"internal error: {type(exc).__name__}")

    async def _close_context(self, context: BrowserContext) -> None:
        """Close a run's context; a browser that cannot do that within seconds is replaced."""
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await context.close()
        except Exception:
            log.warning("browser probe %s: closing a context failed; relaunching Chromium",
                        self.config.name)
            await self._discard_browser()

    async def _discard_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await browser.close()

    def _fail(self, started_at: float, t0: float, error_class: str, message: str,
              status_code: int | None = None) -> ProbeResult:
        return ProbeResult(
            target=self.config.name, started_at=started_at, ok=False,
            latency=time.perf_counter() - t0, region=self.region, status_code=status_code,
            error_class=error_class, error=message[:_DETAIL_CHARS],
        )

    async def aclose(self) -> None:
        """Close the browser and stop Playwright's driver process."""
        await self._discard_browser()
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await playwright.stop()


def _net_class(message: str) -> str:
    """Error class of a Chromium network error message (`net::ERR_CONNECTION_REFUSED ...`)."""
    _, _, code = message.partition("net::")
    for prefix, error_class in _NET_ERRORS:
        if code.startswith(prefix):
            return error_class
    return ErrorClass.CONNECTION if code else ErrorClass.INTERNAL


def _seconds(milliseconds: Any) -> float:
    return max(0.0, float(milliseconds or 0)) / 1000.0


def _first_line(text: str) -> str:
    """The first line of a Playwright message, its URLs redacted: `page.goto: net::ERR_...
    at https://user:pw@host/?token=...` quotes the URL it was given."""
    return redact_text(text.splitlines()[0]) if text.strip() else "unknown error"


def _build(config: BrowserTarget, ctx: ProbeContext) -> BrowserProbe:
    return BrowserProbe(config, region=ctx.region)


KIND = ProbeKind(BrowserTarget, _build)
