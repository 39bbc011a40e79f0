"""The incident and target pages in a real browser: the API's numbers, a resolved
incident's post-mortem rendered from Markdown, hostile titles shown as text, uptime
checked against numbers worked out by hand, and an HTML 404 for unknown incidents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

import httpx
import pytest
from sqlalchemy import Engine

from alerts.facts import gather_facts
from alerts.rules import ActiveAlert
from alerts.store import Incident, get_incident, list_incidents
from dashboards import incidents_pages
from dashboards.ranges import parse_range
from dashboards.render import percent
from dashboards.targets_data import (
    MAX_POINTS,
    raw_uptimes,
    slo_uptimes,
    summaries,
    uptime_end,
)
from monitor.ingest import ResultWriter
from probes.base import ProbeResult
from tests.conftest import make_settings
from tests.dashboard_support import NOW, T0, Site, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

BAD_HOUR = T0 + 86400 + 3600  # api's bad hour on day 2 (see dashboard_support.populate)
HOSTILE = '<script>document.title="owned"</script><img src=x onerror="alert(1)"> **bold**'


def _still_firing(incident: Incident) -> ActiveAlert:
    """The alert that keeps an open incident open through a tick (a tick resolves
    every incident whose alert is missing)."""
    return ActiveAlert(
        key=incident.key, kind=incident.kind,
        severity=cast(Literal["page", "ticket"], incident.severity), title=incident.title,
        summary=incident.summary, slo=incident.slo, target=incident.target,
        labels=incident.labels, burn_rate=incident.peak_burn_rate,
        budget_remaining=incident.budget_remaining)


def _id_of(site: Site, key: str) -> int:
    found, _ = list_incidents(site.engine, limit=500)
    return next(i.id for i in found if i.key == key)


@pytest.fixture(scope="module")
def story(site: Site) -> dict[str, int]:
    """Two more incidents beside the open #1 (this module's own site, so resolving is
    fine): api too slow during its bad hour, acknowledged by alice and resolved by oncall;
    and one whose title and summary carry HTML and Markdown, resolved too."""
    manager = site.runtime.incidents
    first = get_incident(site.engine, site.incident_id)
    assert first is not None
    keep = _still_firing(first)
    # No target on purpose: alerts are grouped per target, and #1 already is api's.
    slow = ActiveAlert(key="slo:api-latency", kind="burn_rate", severity="page",
                       title="SLO api-latency is burning its error budget",
                       summary="burn 50x over 5m", slo="api-latency",
                       labels={"alertname": "burn_rate", "severity": "page",
                               "slo": "api-latency"}, burn_rate=50.0, since=BAD_HOUR)
    manager.tick([keep, slow], BAD_HOUR + 180)
    down_id = _id_of(site, "slo:api-latency")
    manager.acknowledge(down_id, "alice", BAD_HOUR + 600)
    manager.resolve(down_id, "oncall", BAD_HOUR + 3660)
    hostile = ActiveAlert(key="trigger:xss", kind="trigger", severity="ticket",
                          title=HOSTILE, summary=HOSTILE,
                          labels={"alertname": "trigger", "severity": "ticket",
                                  "trigger": "xss"})
    manager.tick([keep, hostile], NOW - 200)
    hostile_id = _id_of(site, "trigger:xss")
    manager.resolve(hostile_id, "oncall", NOW - 100)
    return {"open": site.incident_id, "resolved": down_id, "hostile": hostile_id}


def _budget_text(site: Site, incident_id: int) -> str:
    facts = gather_facts(site.engine, site.settings, incident_id, site.clock.now())
    return percent(facts.budget_consumed, 2)


def test_incident_list_agrees_with_the_api(site: Site, browser: Browser,
                                           story: dict[str, int]) -> None:
    page = open_page(browser, site.url + "/incidents", screenshot="incidents").page
    api = httpx.get(site.url + "/api/v1/incidents").json()
    rows = page.locator("tr[data-incident]")
    assert rows.count() == api["total"] == 3
    shown = rows.evaluate_all("rows => rows.map(r => Number(r.dataset.incident))")
    assert shown == [item["id"] for item in api["items"]]  # newest first, like the API
    labels = {"triggered": "Triggered", "acknowledged": "Acknowledged", "resolved": "Resolved"}
    for item in api["items"]:
        row = page.locator(f'tr[data-incident="{item["id"]}"]')
        assert row.get_attribute("data-status") == item["status"]
        assert row.get_attribute("data-severity") == item["severity"]
        assert labels[item["status"]] in row.locator("[data-state]").inner_text()
        assert item["severity"] in row.inner_text()
        assert row.locator("[data-budget]").inner_text() == _budget_text(site, item["id"])
        assert "UTC" not in row.locator("time").inner_text()  # the viewer's zone
    # The resolved outage used budget, and the page says how much (not "—").
    assert _row_budget(page, story["resolved"]).endswith("%")
    assert _row_budget(page, story["resolved"]) != "0.00%"
    # Open for 5 minutes on the site's clock; the duration runs to now.
    open_row = page.locator(f'tr[data-incident="{story["open"]}"] [data-duration]')
    assert open_row.inner_text().startswith("5m")
    resolved = open_page(browser, site.url + "/incidents?status=resolved").page
    states = resolved.locator("tr[data-incident]").evaluate_all(
        "rows => rows.map(r => r.dataset.status)")
    assert states == ["resolved", "resolved"]
    assert resolved.locator('nav[aria-label="Filter by state"] [aria-current]'
                            ).inner_text() == "Resolved"


def _row_budget(page: Page, incident_id: int) -> str:
    return page.locator(f'tr[data-incident="{incident_id}"] [data-budget]').inner_text()


def test_open_incident_page_agrees_with_the_api(site: Site, browser: Browser,
                                               story: dict[str, int]) -> None:
    number = story["open"]
    page = open_page(browser, f"{site.url}/incidents/{number}", screenshot="incident-open").page
    api = httpx.get(f"{site.url}/api/v1/incidents/{number}").json()
    assert page.locator("[data-status]").get_attribute("data-status") == api["status"]
    assert page.locator("[data-severity]").get_attribute("data-severity") == api["severity"]
    assert api["title"] in page.locator("h1").inner_text()
    assert page.locator("[data-slo]").inner_text() == api["slo"]
    events = page.locator("tr[data-event]")
    assert events.count() == len(api["timeline"]) > 0
    kinds = events.locator("[data-kind]").all_inner_texts()
    texts = events.locator("[data-text]").all_inner_texts()
    assert kinds == [e["kind"] for e in api["timeline"]]
    assert texts == [e["text"] for e in api["timeline"]]
    assert page.locator("[data-budget]").inner_text() == _budget_text(site, number)
    assert "20.0×" in page.locator("[data-burn]").inner_text()
    assert "written when this incident resolves" in page.locator(
        "[data-postmortem-note]").inner_text()
    assert page.locator("[data-postmortem]").count() == 0
    assert page.locator("[data-postmortem-link]").count() == 0  # the API answers 409 now


def test_resolved_incident_shows_its_postmortem_rendered(site: Site, browser: Browser,
                                                        story: dict[str, int]) -> None:
    number = story["resolved"]
    page = open_page(browser, f"{site.url}/incidents/{number}",
                     screenshot="incident-resolved").page
    api = httpx.get(f"{site.url}/api/v1/incidents/{number}").json()
    assert page.locator("[data-status]").get_attribute("data-status") == "resolved"
    assert "alice" in page.locator("[data-acknowledged]").inner_text()
    assert "oncall" in page.locator("[data-resolved]").inner_text()
    assert page.locator("tr[data-event]").count() == len(api["timeline"])
    draft = page.locator("[data-postmortem]")
    # The Markdown's "# Post-mortem: ..." (one level down: the page's h1 is the incident)
    # and its tables (impact, timeline, action items) are HTML, not text.
    title = draft.locator("h2").first.inner_text()
    assert title.startswith("Post-mortem: SLO api-latency is burning")
    assert draft.locator("table").count() >= 2
    assert "| Metric |" not in draft.inner_text()
    assert page.locator("[data-budget]").inner_text() == _budget_text(site, number)
    link = page.locator("[data-postmortem-link]").get_attribute("href")
    assert link == api["postmortem_url"] == f"/api/v1/incidents/{number}/postmortem"
    markdown = httpx.get(site.url + link)
    assert markdown.status_code == 200
    assert markdown.text.startswith("# Post-mortem: SLO api-latency is burning")


def test_hostile_title_and_summary_are_shown_as_text(site: Site, browser: Browser,
                                                     story: dict[str, int]) -> None:
    # open_page fails on any console error (a script the CSP refused) and on any failed
    # request (the <img src=x> would be fetched if it were markup).
    visit = open_page(browser, f"{site.url}/incidents/{story['hostile']}",
                      screenshot="incident-hostile")
    page = visit.page
    assert page.title() != "owned"
    assert page.locator("main script, main img").count() == 0
    assert HOSTILE in page.locator("h1").inner_text()
    assert HOSTILE in page.locator("[data-summary]").inner_text()
    heading = page.locator("[data-postmortem] h2").first.inner_text()
    assert '<script>document.title="owned"</script><img src=x onerror="alert(1)">' in heading
    listed = open_page(browser, site.url + "/incidents").page
    assert HOSTILE in listed.locator(f'tr[data-incident="{story["hostile"]}"] th').inner_text()


def test_pages_of_incidents_and_lenient_parameters(site: Site, browser: Browser,
                                                    story: dict[str, int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incidents_pages, "PAGE_SIZE", 2)
    api = [i["id"] for i in httpx.get(site.url + "/api/v1/incidents").json()["items"]]
    first = open_page(browser, site.url + "/incidents", screenshot="incidents-paged").page
    second = open_page(browser, site.url + "/incidents?page=2").page
    ids = [int(x) for p in (first, second) for x in p.locator("tr[data-incident]").evaluate_all(
        "rows => rows.map(r => r.dataset.incident)")]
    assert ids == api  # newest first across the pages, each once
    assert first.locator("[data-page]").inner_text() == "Page 1 of 2"
    assert first.locator("a[rel=next]").get_attribute("href") == "/incidents?page=2"
    assert second.locator("a[rel=prev]").get_attribute("href") == "/incidents"
    # Old or mangled links still show a page: past the end is the last page, junk is
    # the first, an unknown state is every state.
    assert "Page 2 of 2" in httpx.get(site.url + "/incidents?page=9").text
    assert "Page 1 of 2" in httpx.get(site.url + "/incidents?page=x").text
    assert httpx.get(site.url + "/incidents?status=bogus").text.count("data-incident=") == 2


def test_unknown_incident_is_an_html_404(site: Site, browser: Browser) -> None:
    for wanted in ("999", "abc", "99999999999999999999999", "0"):
        response = httpx.get(f"{site.url}/incidents/{wanted}")
        assert response.status_code == 404, wanted
        assert response.headers["content-type"].startswith("text/html")
        assert "No incident" in response.text
    visit = open_page(browser, site.url + "/incidents/999", screenshot="incident-404",
                      expect_clean=False)
    # Chromium reports the 404 itself on the console; nothing else may appear there.
    assert all("404" in error for error in visit.console_errors), visit.console_errors
    assert visit.failed_requests == [f"404 {site.url}/incidents/999"]
    assert visit.page.locator("h1").inner_text() == "No incident “999”"
    assert visit.page.locator("[data-not-found] a").get_attribute("href") == "/incidents"


# -- targets ------------------------------------------------------------------------

# populate(): one result a minute per target from T0 to NOW (3 days = 4320); api failed
# 30 of the 60 minutes of its bad hour on day 2 (the even minutes answered).
API_7D = (4320 - 30) / 4320  # 99.31%: the 7d and 30d windows hold all three days


def test_targets_page_shows_uptime_worked_out_by_hand(site: Site, browser: Browser) -> None:
    page = open_page(browser, site.url + "/targets", screenshot="targets").page
    expected = {"api": {"24h": "100.00%", "7d": percent(API_7D), "30d": percent(API_7D)},
                "web": {"24h": "100.00%", "7d": "100.00%", "30d": "100.00%"}}
    assert percent(API_7D) == "99.31%"
    for name, windows in expected.items():
        row = page.locator(f'tr[data-target="{name}"]')
        for key, text in windows.items():
            assert row.locator(f'[data-uptime="{key}"]').inner_text() == text, (name, key)
        assert "✓ OK" in row.locator("[data-last]").inner_text()
        assert row.locator("[data-status-code]").inner_text() == "HTTP 200"
        assert row.locator("[data-cert]").inner_text() == "not TLS"
        assert row.locator("[data-cold-starts]").inner_text() == "not tracked"
        assert row.locator("[data-failures]").inner_text() == "0"  # the last 24h were clean
    api_targets = {t["name"]: t for t in httpx.get(site.url + "/api/v1/targets").json()["items"]}
    latency_ms = api_targets["api"]["last_result"]["latency_ms"]
    assert page.locator('tr[data-target="api"] [data-latency]').inner_text() == \
        f"{latency_ms:,.0f} ms"
    assert page.locator("#target-api svg.chart polyline").count() == 2  # p50 and p95

    week = open_page(browser, site.url + "/targets?range=7d", screenshot="targets-7d").page
    assert week.locator('nav.ranges [aria-current]').inner_text() == "7d"
    assert week.locator('tr[data-target="api"] [data-failures]').inner_text() == "30"
    errors = week.locator('[data-errors="api"] tr:has([data-error-class])')
    assert errors.all_inner_texts() == ["http_status\t30"]
    month = open_page(browser, site.url + "/targets?range=30d").page
    points = month.locator("#target-api svg.chart polyline").evaluate_all(
        "lines => lines.map(l => l.getAttribute('points').split(' ').length)")
    assert points and max(points) <= MAX_POINTS
    hour = open_page(browser, site.url + "/targets?range=1h").page
    raw_points = hour.locator("#target-api svg.chart polyline").get_attribute("points")
    # One point a minute: the range is [NOW + 60 - 1h, NOW + 60) (it ends after the
    # current minute) and the last result started at NOW - 60, so 59 results.
    assert raw_points is not None and len(raw_points.split(" ")) == 59


def test_uptime_from_slo_rollups_equals_uptime_from_raw_results(site: Site) -> None:
    end = uptime_end(NOW)
    from_slo = slo_uptimes(site.engine, ["api-availability"], end)["api-availability"]
    from_raw = raw_uptimes(site.engine, ["api"], end, kept_from=NOW - 14 * 86400)["api"]
    for key in ("24h", "7d", "30d"):
        assert from_slo[key].value == pytest.approx(from_raw[key].value), key
        assert from_slo[key].total == from_raw[key].total
    assert from_raw["30d"].partial and not from_raw["7d"].partial
    assert from_slo["7d"].value == pytest.approx(API_7D)


def test_tls_days_and_cold_starts_come_from_raw_results(engine: Engine) -> None:
    """Raw-result reads (JSON values, boolean sums) on each supported database."""
    settings = make_settings(
        targets=[{"name": "shop", "type": "http", "url": "https://shop.example/",
                  "cold_start": {"idle_after": "10m"}}], slos=[])
    ResultWriter(engine, settings.slos)([
        ProbeResult(target="shop", started_at=NOW - 600 + i * 60, ok=i != 3,
                    latency=0.1, status_code=200 if i != 3 else None,
                    error_class=None if i != 3 else "timeout",
                    cert_days_left=None if i == 3 else 30.0 - i,
                    values={"cold_start": 1.0 if i == 0 else 0.0})
        for i in range(5)] + [
        ProbeResult(target="shop", started_at=NOW - 60, ok=False, latency=1.0,
                    error_class="refused")])
    (shop,) = summaries(engine, settings, parse_range("1h", NOW), NOW)
    assert shop.tls and shop.cert_days_left == 26.0  # newest result that measured it
    assert shop.cold_starts == 1
    assert shop.errors == [("refused", 1), ("timeout", 1)]
    assert shop.uptime["24h"].value == pytest.approx(4 / 6)
    assert shop.uptime_source == "raw results"
    assert shop.last is not None and shop.last.error_class == "refused"
    assert len(shop.latency.series["latency"]) == 4
