"""The scaling-phases page and the public status page in a real browser; the config
checks of status components, time zone and refresh; `primewatch run` refusing to serve
an open dashboard on a reachable address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event

from alerts.rules import ActiveAlert
from dashboards.status_page import component_state, overall
from monitor.app import create_app
from monitor.cli import EXIT_USAGE, bind_refusal, is_loopback, main
from monitor.clock import FakeClock
from monitor.config import ServerSection
from monitor.config_loader import parse_config
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.storage import alert_events
from monitor.storage.alert_events import AlertEvent
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.dashboard_support import (
    NOW,
    T0,
    Site,
    open_page,
    populate,
    separate_app,
    site_settings,
)
from tests.servers import serve_asgi

if TYPE_CHECKING:
    from playwright.sync_api import Browser

BAD_HOUR_END = T0 + 86400 + 7200  # the api's bad hour is 01:00-02:00 on 2026-01-02
SLOS: list[dict[str, Any]] = [
    {"name": "api-availability", "target": "api", "sli": "availability", "objective": 99.9,
     "window": "30d"},
    {"name": "api-latency", "target": "api", "sli": "latency", "threshold": "200ms",
     "objective": 95, "window": "30d"},
    {"name": "web-availability", "target": "web", "sli": "availability", "objective": 99.5,
     "window": "7d"},
    {"name": "web-latency", "target": "web", "sli": "latency", "threshold": "2s",
     "objective": 90, "window": "7d"},
    {"name": "p1-latency", "target": "api", "sli": "latency", "threshold": "500ms",
     "objective": 95, "window": "30d"},
    {"name": "p2-uptime", "target": "api", "sli": "availability", "objective": 99,
     "window": "30d"},
    # The bad hour's 30 failed probes overspend a week's 99.9% (10 of 10,080 allowed).
    {"name": "p3-uptime", "target": "api", "sli": "availability", "objective": 99.9,
     "window": "7d"},
    {"name": "cache-hit-rate", "target": "api", "sli": "ratio", "stream": "cache",
     "objective": 70, "window": "7d"},  # never measured: no data
]
PHASES = [
    {"name": "phase-1", "title": "Phase 1: Foundation", "slos": ["p1-latency",
                                                                 "web-availability"]},
    {"name": "phase-2", "title": "Phase 2: Growth", "slos": ["api-latency", "p2-uptime"]},
    {"name": "phase-3", "title": "Phase 3: Scale", "slos": ["api-availability", "p3-uptime",
                                                            "cache-hit-rate"]},
]
TRIGGERS = [
    {"name": "slow-responses", "description": "Response times > 500ms", "phase": "phase-2",
     "target": "api", "measure": "latency", "stat": "p95", "above": "500ms",
     "window": "1h"},
    {"name": "errors-this-week", "description": "Uptime is critical", "phase": "phase-3",
     "target": "api", "measure": "error", "stat": "mean", "above": 0.001, "window": "7d"},
    {"name": "web-slow", "description": "Slow load times", "phase": "phase-1",
     "target": "web", "measure": "latency", "stat": "p95", "above": "3s", "window": "1d"},
]


@pytest.fixture(scope="module")
def strategy_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The dashboard site with three phases and three triggers. The triggers were first
    judged just after the bad hour (two fired), then at NOW (one resolved)."""
    settings = site_settings(slos=SLOS, phases=PHASES, triggers=TRIGGERS)
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('phases') / 'pw.db'}")
    upgrade(engine)
    populate(engine, settings)
    clock = FakeClock(NOW)
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    runtime = app.state.runtime
    earlier = runtime.service.triggers.evaluate(engine, BAD_HOUR_END)
    alert_events.record(engine, [
        AlertEvent(f"trigger:{t.name}", "trigger", "ticket", t.transition, BAD_HOUR_END,
                   f"{t.description}: {t.value}") for t in earlier if t.transition])
    runtime.statuses = {s.name: s for s in runtime._evaluate_and_publish()}
    with serve_asgi(app) as url:
        yield Site(url, settings, engine, clock, runtime)
    runtime.outbox.close()
    engine.dispose()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_phases_page_agrees_with_the_api(strategy_site: Site, browser: Browser) -> None:
    visit = open_page(browser, strategy_site.url + "/phases", screenshot="phases")
    page = visit.page
    api = httpx.get(strategy_site.url + "/api/v1/phases").json()
    assert [p["state"] for p in api["phases"]] == ["met", "met", "not_met"]  # one miss decides
    met = {"ok": "met", "no_data": "no_data", "breaching": "not_met"}
    for phase in api["phases"]:
        column = page.locator(f'th[data-phase="{phase["name"]}"]')
        assert column.get_attribute("data-state") == phase["state"]
        for slo in phase["slos"]:
            cell = page.locator(f'td[data-phase="{phase["name"]}"] [data-slo="{slo["name"]}"]')
            assert cell.get_attribute("data-state") == met[slo["state"]]
    # Not only colour: every verdict and cell has words and an icon.
    assert "✓ Targets met" in page.locator('th[data-phase="phase-2"]').inner_text()
    assert "✕ Not met" in page.locator('[data-slo="p3-uptime"]').inner_text()
    assert "◌ No data" in page.locator('[data-slo="cache-hit-rate"]').inner_text()
    for trigger in api["triggers"]:
        row = page.locator(f'tr[data-trigger="{trigger["name"]}"]')
        assert row.get_attribute("data-firing") == str(trigger["firing"]).lower()
        shown = row.get_attribute("data-value")
        assert (float(shown) if shown else None) == trigger["value"]
        assert float(row.get_attribute("data-threshold") or "nan") == trigger["threshold"]
        if trigger["since"]:
            since = row.locator("[data-since] time").get_attribute("datetime") or ""
            assert _when(since) == _when(trigger["since"])
    firing = {t["name"] for t in api["triggers"] if t["firing"]}
    assert firing == {"errors-this-week"}
    assert page.locator('tr[data-trigger="errors-this-week"] td').nth(1).inner_text() \
        == "mean of error on api over 7d > 0.10%"


def test_phases_page_says_what_to_decide_and_what_fired(strategy_site: Site,
                                                        browser: Browser) -> None:
    page = open_page(browser, strategy_site.url + "/phases").page
    assert page.locator("[data-headline]").inner_text() == (
        "Phase 2 targets met; trigger errors-this-week fired 1d 22h ago → consider Phase 3.")
    history = page.locator("tr[data-event]").evaluate_all(
        "rows => rows.map(r => [r.dataset.event, r.dataset.transition])")
    assert history == [["slow-responses", "resolved"], ["errors-this-week", "fired"],
                       ["slow-responses", "fired"]]
    assert "Uptime is critical: 1.92%" in page.locator("tr[data-event]").nth(1).inner_text()
    resolved = page.locator('tr[data-trigger="slow-responses"] [data-since]').inner_text()
    assert resolved.startswith("last fired")


def test_status_page_shows_components_bars_and_the_open_incident(site: Site,
                                                                 browser: Browser) -> None:
    page = open_page(browser, site.url + "/status", screenshot="status").page
    components = page.locator("[data-component]")
    assert components.evaluate_all("els => els.map(e => e.dataset.component)") == [
        "Trading API", "Web app"]
    assert page.locator("[data-overall]").inner_text() == "✓ All systems operational"
    for name in ("Trading API", "Web app"):
        assert page.locator(f'[data-component="{name}"] rect.day').count() == 90
    api = page.locator('[data-component="Trading API"]')
    bad_day = api.locator("rect.day", has=page.locator("title", has_text="2026-01-02"))
    assert bad_day.locator("title").text_content() == "2026-01-02: 97.92% up"
    assert "ok" not in (bad_day.get_attribute("class") or "").split()
    assert "nodata" in (api.locator("rect.day").first.get_attribute("class") or "")
    assert api.locator("[data-uptime]").inner_text() == "99.31%"
    # The site has a week of data: the uptime says it is over those days, not 90.
    measured = api.locator("[data-measured-days]").inner_text()
    assert re.fullmatch(r"the \d days? with data \(of 90\)", measured), measured
    assert "2026-01-02 (97.92%)" in api.locator("[data-bad-days]").inner_text()  # in words
    assert "No day under" in page.locator('[data-component="Web app"] [data-bad-days]'
                                          ).inner_text()
    assert page.locator('[data-component="Web app"] [data-uptime]').inner_text() == "100.00%"
    [incident] = page.locator("[data-incident]").all()
    assert incident.locator("h3").inner_text() == "Elevated error rates on Trading API"
    assert "Investigating" in incident.inner_text()
    # The page is public: no internal names, addresses, numbers or wording.
    for html in (page.content(), httpx.get(site.url + "/status").text):
        for secret in ("api-availability", "127.0.0.1", "burning", "hook", "#1", "/slos/",
                       "trading"):
            assert secret not in html, secret
        assert 'aria-current="page"' not in html  # not the internal navigation


def test_component_state_and_banner_rules() -> None:
    assert component_state([], [True], [True]) == "major_outage"
    assert component_state([], [False], [False]) == "degraded"
    assert component_state([], [False], [True]) == "operational"
    assert component_state([], [], []) == "no_data"
    assert overall(["operational", "degraded"]) == ("Degraded performance", "degraded")
    assert overall(["partial_outage", "major_outage"]) == ("Major outage", "major_outage")
    assert overall(["operational", "partial_outage"]) == ("Partial outage", "partial_outage")
    assert overall(["operational", "no_data"])[0] == "All systems with data operational"


def test_disabled_status_page_is_not_found(tmp_path: Path) -> None:
    settings = make_settings(dashboard={"status_page": {"enabled": False}})
    with separate_app(tmp_path, settings) as (url, _):
        assert httpx.get(url + "/status").status_code == 404
        assert httpx.get(url + "/").status_code == 200


def test_status_page_is_public_when_the_dashboard_needs_a_login(tmp_path: Path,
                                                                browser: Browser) -> None:
    settings = make_settings(dashboard={
        "auth": "basic", "users": [{"username": "ann", "password": "s3cret"}],
        "status_page": {"title": "Our status",
                        "components": [{"name": "API", "slos": ["api-availability"]}]}})
    with separate_app(tmp_path, settings) as (url, _):
        assert httpx.get(url + "/").status_code == 401
        assert httpx.get(url + "/phases").status_code == 401
        assert httpx.get(url + "/", auth=("ann", "s3cret")).status_code == 200
        assert httpx.get(url + "/", auth=("ann", "wrong")).status_code == 401
        page = open_page(browser, url + "/status", screenshot="status-no-data").page
        assert page.locator("h1").inner_text() == "◌ No data yet"
        assert page.locator('[data-component="API"] rect.day.nodata').count() == 90


def test_a_crowd_on_the_status_page_costs_one_rendering(tmp_path: Path) -> None:
    """The page is public: 40 visitors at once must cost what one does (one set of
    queries per cache period, rendered off the event loop), not 40 renderings."""
    settings = site_settings(dashboard={"status_page": {"components": [
        {"name": "Public API", "targets": ["api"], "slos": ["api-availability"]},
        {"name": "Website", "targets": ["web"]}]}})
    statements: list[str] = []
    with separate_app(tmp_path, settings, populated=True, evaluated=True) as (url, runtime):
        event.listen(runtime.service.engine, "before_cursor_execute",
                     lambda *args: statements.append(args[2]))
        first = httpx.get(url + "/status")
        alone = len(statements)
        with ThreadPoolExecutor(max_workers=40) as pool:
            crowd = list(pool.map(lambda _: httpx.get(url + "/status"), range(40)))
    assert first.status_code == 200 and "Public API" in first.text and alone > 0
    assert {r.status_code for r in crowd} == {200}
    assert {r.text for r in crowd} == {first.text}
    assert len(statements) == alone, statements[alone:]


def test_down_incident_wording_names_only_components(tmp_path: Path) -> None:
    settings = make_settings(dashboard={"status_page": {"components": [
        {"name": "Public API", "targets": ["api"]}]}})

    def down_and_acknowledged(runtime: Any) -> None:
        runtime.incidents.tick([ActiveAlert(
            key="target:api", kind="down", severity="page", title="api is down",
            summary="3 consecutive failures; last: connect refused 127.0.0.1:1",
            slo=None, target="api", labels={"alertname": "down", "target": "api"},
            since=NOW - 120)], NOW - 60)
        runtime.incidents.acknowledge(1, "alice", NOW - 30)

    with separate_app(tmp_path, settings, prepare=down_and_acknowledged) as (url, _):
        html = httpx.get(url + "/status").text
    assert "Outage on Public API" in html
    assert "Identified" in html and "Investigating" in html
    for secret in ("alice", "127.0.0.1", "api is down", "consecutive"):
        assert secret not in html, secret


# --- config ----------------------------------------------------------------------------

BASE = """\
targets:
  - {name: api, type: http, url: "http://127.0.0.1:9/health"}
slos:
  - {name: api-availability, target: api, sli: availability, objective: 99}
"""


@pytest.mark.parametrize(("text", "line", "path", "fragment"), [
    ("dashboard:\n  status_page:\n    components:\n"
     "      - {name: API, slos: [api-availability, nope]}\n",
     8, "dashboard.status_page.components[0].slos[1]",
     "status component 'API' lists SLO 'nope', which is not defined"),
    ("dashboard:\n  status_page:\n    components:\n      - name: Web\n"
     "        targets: [ghost]\n",
     9, "dashboard.status_page.components[0].targets[0]",
     "status component 'Web' lists target 'ghost', which is not defined"),
    ("dashboard:\n  status_page:\n    components:\n      - {name: Empty}\n",
     8, "dashboard.status_page.components[0]", "needs `slos` or `targets`"),
    ("dashboard:\n  status_page:\n    components:\n      - {name: A, targets: [api]}\n"
     "      - {name: A, targets: [api]}\n",
     9, "dashboard.status_page.components[1].name", "duplicate status component name 'A'"),
    ("alerting:\n  timezone: Mars/Olympus_Mons\n", 6, "alerting.timezone",
     "unknown time zone 'Mars/Olympus_Mons'"),
    ("dashboard:\n  refresh: 1s\n", 6, "dashboard.refresh", "between 5s and 1d"),
    ("dashboard:\n  refresh: 30d\n", 6, "dashboard.refresh", "between 5s and 1d"),
])
def test_status_page_and_dashboard_config_errors(text: str, line: int, path: str,
                                                 fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + text, "bad.yaml", {})
    [problem] = info.value.problems
    assert (problem.line, problem.path) == (line, path)
    assert fragment in problem.message


def test_valid_time_zone_refresh_and_components_load() -> None:
    loaded = parse_config(BASE + dedent("""\
        alerting: {timezone: Europe/Berlin}
        dashboard:
          refresh: 1m
          status_page:
            components: [{name: API, slos: [api-availability], targets: [api]}]
        """), "good.yaml", {})
    assert loaded.settings.alerting.timezone == "Europe/Berlin"
    assert loaded.settings.dashboard.refresh == 60.0


# --- `primewatch run` bind check --------------------------------------------------------

@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LocalHost.", True), ("0.0.0.0", False), ("::", False),
    ("192.168.1.20", False), ("monitor.example.com", False), ("", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_bind_refusal_needs_auth_or_insecure_off_loopback() -> None:
    refusal = bind_refusal("0.0.0.0", "none", insecure=False)
    assert refusal is not None
    assert "0.0.0.0" in refusal and "dashboard.auth" in refusal and "--insecure" in refusal
    assert bind_refusal("0.0.0.0", "none", insecure=True) is None
    assert bind_refusal("0.0.0.0", "basic", insecure=False) is None
    assert bind_refusal("0.0.0.0", "token", insecure=False) is None
    assert bind_refusal("127.0.0.1", "none", insecure=False) is None
    assert ServerSection().host == "127.0.0.1"


@pytest.mark.parametrize(("server", "argv"), [
    ("", ["--host", "0.0.0.0"]),
    ("server: {host: 0.0.0.0}\n", []),
])
def test_run_refuses_an_open_dashboard_on_a_reachable_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], server: str,
        argv: list[str]) -> None:
    config = tmp_path / "primewatch.yaml"
    database = tmp_path / "never.db"
    config.write_text(f'storage: {{url: "sqlite:///{database}"}}\n{server}', encoding="utf-8")
    assert main(["--config", str(config), "run", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to listen on '0.0.0.0'" in err and "--insecure" in err
    assert not database.exists()  # refused before touching anything


def test_run_help_documents_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--insecure" in capsys.readouterr().out
