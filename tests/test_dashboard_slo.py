"""The SLO page and the badges in a real browser: the API's numbers, the range picker,
the burn-down's ideal line, latency percentiles, a genuine no-data state, 404s, and
every SVG well-formed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.dashboard_support import Site, open_page, separate_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def percent(value: float | None, digits: int) -> str:
    """As the page's `percent` filter prints it."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def budget(value: float | None) -> str:
    """As the page's `budget` filter prints the budget left."""
    if value is None or value >= 0:
        return percent(value, 1)
    return f"exhausted (−{-value * 100:.1f}%)"


def burn(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}×"


def api(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/slos/{name}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def figure(page: Page, key: str) -> dict[str, Any]:
    """A chart's bucket and point counts and its SVG title."""
    found = page.locator(f'figure[data-chart="{key}"]')
    return {"buckets": int(found.get_attribute("data-buckets") or -1),
            "points": int(found.get_attribute("data-points") or -1),
            "title": found.locator("svg > title").text_content() or ""}


def test_slo_page_shows_the_apis_numbers(site: Site, browser: Browser) -> None:
    for name in ("api-availability", "web-availability"):
        page = open_page(browser, f"{site.url}/slos/{name}", screenshot=f"slo-{name}").page
        slo = api(site.url, name)
        assert page.locator("h1").inner_text().startswith(f"SLO {name}")
        assert page.locator("[data-state]").get_attribute("data-state") == slo["state"]
        assert page.locator("[data-sli]").inner_text() == percent(slo["sli"], 3)
        assert page.locator("[data-budget]").inner_text() == budget(
            slo["error_budget_remaining"])
        assert page.locator("[data-objective]").inner_text() == f"{slo['objective'] * 100:g}%"
        assert page.locator("[data-slo-window]").inner_text() == f"rolling {slo['window']}"
        rows = page.locator("tr[data-window]")
        assert rows.count() == len(slo["burn_rates"]) == 7
        for window, rate in slo["burn_rates"].items():
            assert page.locator(f'tr[data-window="{window}"] [data-burn]').inner_text() == \
                burn(rate)
        # The default range is the SLO's window (30d for api-*, 7d for web-*).
        current = page.locator(".ranges a[aria-current]").inner_text()
        assert current == slo["window"]
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    # The open incident on api-availability is listed and linked; a phone needs no
    # sideways scrolling.
    page = open_page(browser, f"{site.url}/slos/api-availability", width=390,
                     screenshot="slo-phone").page
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    link = page.locator(f'tr[data-incident="{site.incident_id}"] a')
    assert link.get_attribute("href") == f"/incidents/{site.incident_id}"
    # The 3d window spends budget fast (the bad hour), and the table says which tier.
    assert "1×" in page.locator('tr[data-window="3d"]').inner_text()
    assert "14.4×" in page.locator('tr[data-window="1h"]').inner_text()


def test_range_picker_changes_the_range(site: Site, browser: Browser) -> None:
    page = open_page(browser, f"{site.url}/slos/api-availability").page
    default = figure(page, "sli")
    assert "last 30d, per hour" in default["title"]
    assert 720 <= default["buckets"] <= 750
    assert default["points"] == 72  # three days of data, hourly; the rest are gaps
    page.get_by_role("link", name="7d", exact=True).click()
    page.wait_for_url("**/slos/api-availability?range=7d")
    week = figure(page, "sli")
    assert "last 7d, per hour" in week["title"]
    assert 168 <= week["buckets"] <= 169
    assert page.locator(".ranges a[aria-current]").inner_text() == "7d"
    assert "last 7d" in figure(page, "burn")["title"]
    page.get_by_role("link", name="24h", exact=True).click()
    page.wait_for_url("**range=24h")
    day = figure(page, "sli")
    assert "last 24h, per 5m" in day["title"]
    assert 288 <= day["buckets"] <= 289
    # The burn-down always covers the SLO's window, whatever the range.
    assert figure(page, "burndown")["title"] == figure(
        open_page(browser, f"{site.url}/slos/api-availability").page, "burndown")["title"]
    assert "Unknown" not in page.title()


def test_burndown_has_the_ideal_line(site: Site, browser: Browser) -> None:
    page = open_page(browser, f"{site.url}/slos/api-availability").page
    chart = page.locator('figure[data-chart="burndown"] svg')
    ideal = chart.locator("polyline.line-ideal")
    assert ideal.count() == 1
    points = [tuple(map(float, p.split(",")))
              for p in (ideal.get_attribute("points") or "").split()]
    assert len(points) == 2
    (x0, y0), (x1, y1) = points
    assert x0 < x1 and y0 < y1  # from 100% (top) at the window start down to 0%
    assert chart.locator("polyline.line").count() >= 1  # the budget itself
    assert "budget exhausted" in chart.inner_html()


def test_latency_slo_shows_percentiles(site: Site, browser: Browser) -> None:
    page = open_page(browser, f"{site.url}/slos/api-latency",
                     screenshot="slo-api-latency").page
    slo = api(site.url, "api-latency")
    chart = page.locator('figure[data-chart="latency"] svg')
    for label in ("p50", "p95", "p99"):
        assert chart.locator(f"polyline.line-{label}").count() >= 1
        value = slo["percentiles"][label]
        assert page.locator(f"[data-{label}]").inner_text() == f"{value * 1000:,.0f} ms"
    assert "threshold 200 ms" in chart.inner_html()
    # An availability SLO has no latency chart.
    other = open_page(browser, f"{site.url}/slos/api-availability").page
    assert other.locator('figure[data-chart="latency"]').count() == 0


@contextmanager
def serve_settings(tmp_path: Path, *, with_data: bool = False, **overrides: Any
                   ) -> Iterator[str]:
    """A separate app, evaluated once, on an empty database (nothing probed yet) or on
    the site's three days of results."""
    settings = make_settings(**overrides)
    with separate_app(tmp_path, settings, populated=with_data, evaluated=True) as (url, _):
        yield url


IDLE_SLOS = [{"name": "idle-availability", "target": "api", "sli": "availability",
              "objective": 99, "window": "7d"},
             {"name": "idle-latency", "target": "api", "sli": "latency",
              "threshold": "250ms", "objective": 90, "window": "30d"}]


def test_no_data_looks_different_from_good(site: Site, browser: Browser,
                                           tmp_path: Path) -> None:
    good = open_page(browser, f"{site.url}/slos/web-availability").page
    assert good.locator("h1 .state").get_attribute("class") == "state ok"
    with serve_settings(tmp_path, slos=IDLE_SLOS) as url:
        for name in ("idle-availability", "idle-latency"):
            page = open_page(browser, f"{url}/slos/{name}", screenshot=f"slo-{name}").page
            assert api(url, name)["state"] == "no_data"
            assert page.locator("h1 .state").get_attribute("class") == "state nodata"
            assert "No data" in page.locator("h1 .state").inner_text()
            assert "No data in this window" in page.locator("[data-nodata]").inner_text()
            assert page.locator("[data-sli]").inner_text() == "—"
            assert page.locator("[data-budget]").inner_text() == "—"
            assert "100" not in page.locator("[data-header]").inner_text()
            charts = page.locator("figure[data-chart] svg")
            assert charts.count() == (4 if name == "idle-latency" else 3)
            for index in range(charts.count()):
                assert "empty" in (charts.nth(index).get_attribute("class") or "")
                assert charts.nth(index).locator("text.nodata").text_content() == "No data"
            assert page.locator("figure polyline").count() == 0  # not even the ideal line
            assert all(cell == "—" for cell in page.locator("[data-burn]").all_inner_texts())
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        badge = httpx.get(f"{url}/badges/idle-availability.svg")
        assert badge.status_code == 200
        assert value_text(badge.text) == "◌ no data"


def test_unknown_slo_is_a_404_page(site: Site, browser: Browser) -> None:
    response = httpx.get(f"{site.url}/slos/no-such-slo")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    visit = open_page(browser, f"{site.url}/slos/no-such-slo", expect_clean=False,
                      screenshot="slo-unknown")
    assert visit.console_errors in ([], [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"])
    assert visit.page.locator("h1").inner_text() == "Unknown SLO"
    assert "no-such-slo" in visit.page.locator("[data-missing]").inner_text()
    assert visit.page.locator('a[href="/slos/api-latency"]').count() == 1


def value_text(svg: str) -> str:
    root = ET.fromstring(svg)
    texts = [t for t in root.iter("{http://www.w3.org/2000/svg}text")
             if t.get("data-part") == "value"]
    assert len(texts) == 1
    return texts[0].text or ""


def test_badges(site: Site) -> None:
    slo = api(site.url, "api-availability")
    response = httpx.get(f"{site.url}/badges/api-availability.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "max-age=60"
    symbol = {"ok": "✓", "breaching": "✕"}[slo["state"]]
    if slo["alert"]["severity"] == "page":
        symbol = "▲"
    assert value_text(response.text) == f"{symbol} {slo['sli'] * 100:.3f}%"
    budget = httpx.get(f"{site.url}/badges/api-availability.svg?kind=budget")
    left = slo["error_budget_remaining"]
    assert value_text(budget.text) == f"{'✕' if left <= 0 else '✓'} {left * 100:.1f}% left"
    web = httpx.get(f"{site.url}/badges/web-availability.svg?kind=state")
    assert value_text(web.text) == "✓ met"
    assert 'fill="#1a7f37"' in web.text  # colour as well as the word
    unknown = httpx.get(f"{site.url}/badges/no-such-slo.svg")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("image/svg+xml")
    assert value_text(unknown.text) == "unknown"
    assert 'fill="#6e7781"' in unknown.text


@pytest.mark.parametrize("enabled", [True, False])
def test_badges_are_public_only_on_a_public_status_page(tmp_path: Path, enabled: bool
                                                        ) -> None:
    dashboard = {"auth": "token", "status_page": {
        "enabled": enabled, "components": [{"name": "API", "slos": ["idle-availability"]}]}}
    tokens = {"tokens": [{"name": "viewer", "token": "read-token", "scope": "read"}]}
    with serve_settings(tmp_path, slos=IDLE_SLOS, dashboard=dashboard,
                        server=tokens) as url:
        reader = {"Authorization": "Bearer read-token"}
        published = httpx.get(f"{url}/badges/idle-availability.svg")
        assert published.status_code == (200 if enabled else 401)
        # Unpublished and unknown SLOs look alike to a stranger: both need a login.
        assert httpx.get(f"{url}/badges/idle-latency.svg").status_code == 401
        assert httpx.get(f"{url}/badges/no-such-slo.svg").status_code == 401
        assert httpx.get(f"{url}/badges/idle-latency.svg", headers=reader).status_code == 200
        assert httpx.get(f"{url}/badges/no-such-slo.svg",
                         headers=reader).status_code == 404
        assert httpx.get(f"{url}/slos/idle-availability").status_code == 401


def test_every_chart_is_well_formed_xml(site: Site) -> None:
    charts = 0
    for name in ("api-availability", "api-latency", "web-availability", "web-latency"):
        for picked in ("", "?range=1h", "?range=24h", "?range=7d", "?range=month"):
            response = httpx.get(f"{site.url}/slos/{name}{picked}")
            assert response.status_code == 200
            for svg in SVG.findall(response.text):
                root = ET.fromstring(svg)
                assert root.tag == "svg"
                assert root.find("title") is not None
                charts += 1
    assert charts >= 4 * 5 * 4  # burn-down, SLI, burn rate, budget bar (+ latency)


def test_calendar_month_and_timeslices(tmp_path: Path, browser: Browser) -> None:
    """Budgets counted in good minutes over a calendar month: the page still shows the
    API's numbers, and the ideal line runs to the end of the month, not to now."""
    slos = [{"name": "api-minutes", "target": "api", "sli": "availability",
             "objective": 99.5, "window": "month", "budgeting": "timeslices",
             "timeslice": "5m"}]
    with serve_settings(tmp_path, with_data=True, slos=slos) as url:
        page = open_page(browser, f"{url}/slos/api-minutes", screenshot="slo-calendar").page
        slo = api(url, "api-minutes")
        assert slo["budgeting"] == "timeslices" and slo["total"] > 0
        assert page.locator("[data-sli]").inner_text() == percent(slo["sli"], 3)
        assert page.locator("[data-budget]").inner_text() == budget(
            slo["error_budget_remaining"])
        assert page.locator("[data-slo-window]").inner_text() == "calendar month"
        assert page.locator(".ranges a[aria-current]").inner_text() == "calendar month"
        chart = page.locator('figure[data-chart="burndown"] svg')
        ideal = (chart.locator("polyline.line-ideal").get_attribute("points") or "").split()
        actual = (chart.locator("polyline.line").first.get_attribute("points") or "").split()
        # Now is 3 days into a 31-day month: the budget line stops early, the ideal
        # line (100% at the month's start, 0% at its end) runs to the right edge.
        assert float(ideal[-1].split(",")[0]) > 5 * float(actual[-1].split(",")[0])
        for svg in SVG.findall(httpx.get(f"{url}/slos/api-minutes?range=24h").text):
            ET.fromstring(svg)
