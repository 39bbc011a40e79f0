"""Shared pieces of the dashboard tests: a populated app on loopback, and a real
headless Chromium (system package, driven by Playwright's sync API) that records
console errors and failed requests and writes a screenshot of every page it checks.

Usage in a test module:

    (the fixtures `site` and `browser` are registered in tests/conftest.py)

    def test_x(site: Site, browser: Browser) -> None:
        page = open_page(browser, site.url + "/")       # fails on console errors
        ...
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.rules import ActiveAlert
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.ingest import ResultWriter
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade
from probes.base import ProbeResult
from tests.conftest import make_settings, service_missing
from tests.servers import serve_asgi

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("PRIMEWATCH_SCREENSHOTS",
                                  Path(__file__).resolve().parent.parent / "build"
                                  / "screenshots"))
T0 = 1_767_225_600.0  # 2026-01-01T00:00Z; the site's clock stands at T0 + 3 days
NOW = T0 + 3 * 86400


def site_settings(**overrides: Any) -> Settings:
    """Two targets, four SLOs (availability, latency, labels), a page policy."""
    data: dict[str, Any] = {
        "targets": [
            # Probed every minute, as `populate` writes them: budgets rest on the schedule.
            {"name": "api", "type": "http", "url": "http://127.0.0.1:1/health",
             "interval": "1m"},
            {"name": "web", "type": "http", "url": "http://127.0.0.1:1/", "down_after": 3,
             "interval": "1m"},
        ],
        "slos": [
            {"name": "api-availability", "target": "api", "sli": "availability",
             "objective": 99.9, "window": "30d", "labels": {"team": "trading"}},
            {"name": "api-latency", "target": "api", "sli": "latency", "threshold": "200ms",
             "objective": 95, "window": "30d", "labels": {"team": "trading"}},
            {"name": "web-availability", "target": "web", "sli": "availability",
             "objective": 99.5, "window": "7d", "labels": {"team": "frontend"}},
            {"name": "web-latency", "target": "web", "sli": "latency", "threshold": "2s",
             "objective": 90, "window": "7d", "labels": {"team": "frontend"}},
        ],
        "server": {"tokens": [{"name": "oncall", "token": "write-token", "scope": "write"},
                              {"name": "viewer", "token": "read-token", "scope": "read"}]},
        "alerting": {"policies": [{"name": "default",
                                   "steps": [{"after": "0m", "notify": ["hook"]}]}],
                     "channels": [{"name": "hook", "type": "webhook",
                                   "url": "http://127.0.0.1:9/"}]},
        "dashboard": {"status_page": {"title": "PrimeTrade status", "components": [
            {"name": "Trading API", "slos": ["api-availability"], "targets": ["api"]},
            {"name": "Web app", "targets": ["web"]}]}},
    }
    data.update(overrides)
    return make_settings(**data)


def populate(engine: Engine, settings: Settings) -> None:
    """Three days of results every minute: api mostly healthy with a bad hour (errors
    and slow answers) on day 2; web healthy; then one evaluation and one incident."""
    writer = ResultWriter(engine, settings.slos)
    results = []
    for minute in range(int(T0), int(NOW), 60):
        bad = T0 + 86400 + 3600 <= minute < T0 + 86400 + 7200
        results.append(ProbeResult(target="api", started_at=minute, ok=not bad or minute % 120 == 0,
                                   latency=0.9 if bad else 0.05 + (minute % 7) * 0.01,
                                   status_code=200 if not bad else 503,
                                   error_class=None if not bad else "http_status"))
        results.append(ProbeResult(target="web", started_at=minute + 7, ok=True,
                                   latency=0.4 + (minute % 5) * 0.05, status_code=200))
    writer(results)


@dataclass
class Site:
    url: str
    settings: Settings
    engine: Engine
    clock: FakeClock
    runtime: Any
    incident_id: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


@contextmanager
def separate_app(folder: Path, settings: Settings, *, populated: bool = False,
                 evaluated: bool = False, prepare: Callable[[Any], None] | None = None
                 ) -> Iterator[tuple[str, Any]]:
    """An app of its own on loopback (URL, runtime): a fresh SQLite database in
    `folder`, optionally holding the site's three days of results, evaluated once, or
    prepared by `prepare(runtime)` before it serves; closed afterwards."""
    engine = make_engine(f"sqlite:///{folder / 'separate.db'}")
    upgrade(engine)
    if populated:
        populate(engine, settings)
    app = create_app(settings, engine, clock=FakeClock(NOW),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    runtime = app.state.runtime
    try:
        if evaluated:
            runtime._evaluate_and_publish()
        if prepare is not None:
            prepare(runtime)
        with serve_asgi(app) as url:
            yield url, runtime
    finally:
        runtime.outbox.close()
        engine.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A migrated SQLite database with data, the app evaluating once, served on loopback."""
    settings = site_settings()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('site') / 'pw.db'}")
    upgrade(engine)
    populate(engine, settings)
    clock = FakeClock(NOW)
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    runtime = app.state.runtime
    runtime._evaluate_and_publish()
    runtime.incidents.tick([ActiveAlert(
        key="slo:api-availability", kind="burn_rate", severity="page",
        title="SLO api-availability is burning its error budget",
        summary="burn 20x over 1h and 5m", slo="api-availability", target="api",
        labels={"alertname": "burn_rate", "severity": "page", "slo": "api-availability",
                "target": "api", "team": "trading"}, burn_rate=20.0,
        budget_remaining=0.4, since=NOW - 600)], NOW - 300)
    runtime.statuses = {s.name: s for s in runtime.service.slo_statuses()}
    with serve_asgi(app) as url:
        yield Site(url, settings, engine, clock, runtime, incident_id=1)
    runtime.outbox.close()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        service_missing(f"chromium not installed at {CHROMIUM}")
    if importlib.util.find_spec("playwright") is None:
        service_missing("playwright not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Visit:
    page: Page
    console_errors: list[str]
    failed_requests: list[str]


def open_page(browser: Browser, url: str, *, screenshot: str | None = None,
              width: int = 1280, extra_headers: dict[str, str] | None = None,
              expect_clean: bool = True) -> Visit:
    """Load `url` in a fresh context; assert no console errors and no failed requests
    (unless `expect_clean=False`); write `build/screenshots/<screenshot>.png`."""
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  extra_http_headers=extra_headers or {},
                                  timezone_id="Europe/Berlin", locale="en-GB")
    page = context.new_page()
    visit = Visit(page, [], [])
    page.on("console", lambda m: visit.console_errors.append(m.text)
            if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.console_errors.append(str(e)))
    page.on("requestfailed", lambda r: visit.failed_requests.append(r.url))
    page.on("response", lambda r: visit.failed_requests.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]', '_', screenshot)}.png"),
                        full_page=True)
    if expect_clean:
        assert visit.console_errors == [], visit.console_errors
        assert visit.failed_requests == [], visit.failed_requests
    return visit
