"""The overview page in a real browser: numbers equal the API's, sorting, filtering,
headers, auth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.dashboard_support import Site, open_page, separate_app, site_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_overview_shows_the_apis_numbers_and_open_incidents(site: Site, browser: Browser
                                                           ) -> None:
    visit = open_page(browser, site.url + "/", screenshot="overview")
    page = visit.page
    api = {s["name"]: s for s in httpx.get(site.url + "/api/v1/slos").json()["items"]}
    rows = page.locator("tr[data-slo]")
    assert rows.count() == len(api) == 4
    for name, slo in api.items():
        row = page.locator(f'tr[data-slo="{name}"]')
        budget = slo["error_budget_remaining"]
        text = row.locator("[data-budget]").inner_text()
        assert text == ("—" if budget is None else f"{budget * 100:.1f}%" if budget >= 0
                        else f"exhausted (−{-budget * 100:.1f}%)")
        sli = row.locator("[data-sli]").inner_text()
        assert sli == ("—" if slo["sli"] is None else f"{slo['sli'] * 100:.3f}%")
    assert "1 page open" in page.locator("[data-summary]").inner_text()
    assert page.locator(".incidents li").count() == 1
    # Budget left, least first (the default sort).
    budgets = [float(v) for v in rows.evaluate_all(
        "rows => rows.map(r => r.cells[3].dataset.value)")]
    assert budgets == sorted(budgets)
    # Times are shown in the viewer's zone (the context runs in Europe/Berlin).
    assert "UTC" not in page.locator("footer time").inner_text()


def test_sorting_and_filtering(site: Site, browser: Browser) -> None:
    page = open_page(browser, site.url + "/?sort=name").page
    names = page.locator("tr[data-slo]").evaluate_all("rows => rows.map(r => r.dataset.slo)")
    assert names == sorted(names)
    page.locator("th[data-sort]").first.click()  # client-side: SLO name descending? toggles
    after = page.locator("tr[data-slo]").evaluate_all("rows => rows.map(r => r.dataset.slo)")
    assert after in (sorted(names), sorted(names, reverse=True))
    page.locator("th[data-sort]").first.click()
    again = page.locator("tr[data-slo]").evaluate_all("rows => rows.map(r => r.dataset.slo)")
    assert {tuple(after), tuple(again)} == {tuple(sorted(names)),
                                            tuple(sorted(names, reverse=True))}
    page.select_option("select[name=label]", "team=frontend")
    page.wait_for_url("**label=team%3Dfrontend**")
    shown = page.locator("tr[data-slo]").evaluate_all("rows => rows.map(r => r.dataset.slo)")
    assert sorted(shown) == ["web-availability", "web-latency"]


def test_security_headers_on_pages(site: Site) -> None:
    response = httpx.get(site.url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"


def test_token_auth_guards_pages_and_api_reads_but_not_health_or_metrics(
        tmp_path: Path) -> None:
    settings = site_settings(dashboard={"auth": "token"})
    with separate_app(tmp_path, settings) as (url, _), httpx.Client(base_url=url) as client:
        assert client.get("/").status_code == 401
        assert client.get("/api/v1/slos").status_code == 401
        assert client.get("/api/v1/slos", headers={
            "Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/v1/slos", headers={
            "Authorization": "Bearer read-token"}).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        first = client.get("/?token=read-token")  # once; then the cookie carries it
        assert first.status_code == 200
        assert "httponly" in first.headers["set-cookie"].lower()
        assert client.get("/incidents").status_code == 200


def test_auto_refresh_keeps_the_scroll_position(tmp_path: Path, browser: Browser) -> None:
    settings = site_settings(dashboard={"refresh": "5s"})
    with separate_app(tmp_path, settings) as (url, _):
        context = browser.new_context(viewport={"width": 360, "height": 240})
        page = context.new_page()
        page.goto(url + "/", wait_until="load")
        page.evaluate("window.scrollTo(0, 120)")
        first = page.evaluate("performance.timeOrigin")
        with page.expect_event("load", timeout=15_000):
            pass  # the page reloads itself after `refresh` seconds
        page.wait_for_function("window.scrollY > 0", timeout=5_000)
        assert page.evaluate("performance.timeOrigin") != first  # really reloaded
        assert page.evaluate("window.scrollY") == 120
        context.close()
