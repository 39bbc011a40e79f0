"""Redirects are the target's to choose, so they must not leak what we configured.

Two attacks, each against real loopback servers: a redirect loop through a URL with
`user:secret@` and `?token=` used to put both in the error (which reaches the API,
incident timelines, Slack and `primewatch probe`); a redirect to another origin used to
carry the configured `Authorization` header there. Two servers on different ports are
two origins, as a browser counts them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ErrorClass, ProbeResult
from probes.http import HttpTarget
from probes.page import PageTarget
from probes.urls import redact_text, redact_url
from tests.servers import RouteServer, route_server, send

SECRET, TOKEN, BEARER = "secret", "abc", "Bearer s3cr3t-bearer"


def run(config: HttpTarget | PageTarget) -> ProbeResult:
    async def once() -> ProbeResult:
        clients = HttpClientPool()
        try:
            probe = build_probe(config, ProbeContext(clients, region="test"))
            try:
                return await probe.run(time.time())
            finally:
                await probe.aclose()
        finally:
            await clients.aclose()

    return asyncio.run(once())


def http_target(**fields: Any) -> HttpTarget:
    return HttpTarget.model_validate({"name": "t", "type": "http", "timeout": "3s", **fields})


def redirect(location: str) -> Any:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return handler


def recording(seen: list[dict[str, str]], body: str = "ok",
              content_type: str = "text/plain") -> Any:
    """A handler that keeps the headers of every request it answers."""
    def handler(h: BaseHTTPRequestHandler) -> None:
        seen.append({name.lower(): value for name, value in h.headers.items()})
        send(h, 200, body, content_type)
    return handler


# -- item 3: no credentials in redirect errors -----------------------------------------


@pytest.fixture
def looping() -> Iterator[RouteServer]:
    """/start → http://user:secret@host/loop?token=abc → /start → ... forever."""
    with route_server() as server:
        secret_url = (f"http://user:{SECRET}@127.0.0.1:{server.port}/loop"
                      f"?token={TOKEN}&region=eu")
        server.routes.update({"/start": redirect(secret_url),
                              "/loop": redirect(f"{server.url}/start")})
        yield server


def assert_clean(text: str) -> None:
    assert f":{SECRET}@" not in text and SECRET not in text
    assert f"token={TOKEN}" not in text


def test_a_redirect_loop_error_shows_no_password_and_no_token(looping: RouteServer) -> None:
    result = run(http_target(url=looping.url + "/start"))
    assert result.error_class == ErrorClass.REDIRECTS
    assert "redirect loop" in (result.error or "")
    assert "***@" in (result.error or "") and "token=***" in (result.error or "")
    assert_clean(json.dumps(result.as_dict()))  # what is stored and what the API returns


def test_the_page_probe_redirect_loop_error_is_redacted_too(looping: RouteServer) -> None:
    result = run(PageTarget.model_validate(
        {"name": "p", "type": "page", "timeout": "3s", "url": looping.url + "/start"}))
    assert result.error_class == ErrorClass.REDIRECTS
    assert_clean(json.dumps(result.as_dict()))


def test_primewatch_probe_prints_no_credentials(
        looping: RouteServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"service: {{name: shop}}\ntargets:\n"
                      f"  - {{name: api, type: http, url: '{looping.url}/start'}}\n")
    main(["--config", str(config), "probe", "api"])
    main(["--config", str(config), "probe", "api", "--json"])
    out = capsys.readouterr().out
    assert "redirect loop" in out
    assert_clean(out)


def test_redaction_of_urls_in_free_text_and_of_unparseable_urls() -> None:
    message = "page.goto: net::ERR_FAILED at https://u:pw@h/x?api_key=k#access_token=t"
    assert redact_text(message) == \
        "page.goto: net::ERR_FAILED at https://***@h/x?api_key=***#access_token=***"
    assert redact_url("http://u:pw@[::1/") == "<unparseable URL>"
    assert redact_url("http://u:pw@host:99999/") == "http://***@host:99999/"  # bad port


# -- item 4: credentials stay with their origin ----------------------------------------


def test_authorization_is_not_sent_to_another_origin() -> None:
    origin_seen: list[dict[str, str]] = []
    other_seen: list[dict[str, str]] = []
    with route_server({"/landing": recording(other_seen)}) as other, \
            route_server({"/api": redirect(other.url + "/landing"),
                          "/home": recording(origin_seen)}) as home:
        result = run(http_target(url=home.url + "/api", headers={
            "Authorization": BEARER, "X-Api-Key": "k-123", "Cookie": "sid=1",
            "X-Request-Tag": "probe"}))
        back = run(http_target(url=home.url + "/home", headers={"Authorization": BEARER}))
    assert result.ok and result.values["redirects"] == 1
    assert len(other_seen) == 1
    for name in ("authorization", "x-api-key", "cookie"):
        assert name not in other_seen[0], name
    assert other_seen[0]["x-request-tag"] == "probe"  # a harmless header still goes
    assert back.ok and origin_seen[0]["authorization"] == BEARER  # its own origin: sent


def test_same_origin_redirects_keep_the_configured_credentials() -> None:
    seen: list[dict[str, str]] = []
    with route_server() as home:
        home.routes.update({"/a": redirect("/b"), "/b": recording(seen)})
        result = run(http_target(url=home.url + "/a", headers={"Authorization": BEARER},
                                 follow_redirects="same-origin"))
    assert result.ok and seen[0]["authorization"] == BEARER


def test_same_origin_mode_fails_the_probe_on_a_cross_origin_redirect() -> None:
    other_seen: list[dict[str, str]] = []
    with route_server({"/landing": recording(other_seen)}) as other, \
            route_server({"/api": redirect(other.url + "/landing?token=abc")}) as home:
        result = run(http_target(url=home.url + "/api", headers={"Authorization": BEARER},
                                 follow_redirects="same-origin"))
    assert not result.ok and result.error_class == ErrorClass.REDIRECTS
    assert "another origin refused" in (result.error or "")
    assert "follow_redirects: same-origin" in (result.error or "")
    assert "token=***" in (result.error or "")
    assert other_seen == []  # not even a request without the header


def test_follow_redirects_takes_only_true_false_or_same_origin() -> None:
    assert http_target(url="http://h/", follow_redirects="same-origin").follow_redirects \
        == "same-origin"
    with pytest.raises(ValueError, match="same-origin"):
        http_target(url="http://h/", follow_redirects="anywhere")


def test_page_assets_on_another_origin_get_no_credentials() -> None:
    """The page redirects to another origin; its assets are same-origin to the page it
    landed on, but not to the configured URL the credentials were given for."""
    page_seen: list[dict[str, str]] = []
    asset_seen: list[dict[str, str]] = []
    with route_server() as other, \
            route_server() as home:
        other.routes.update({
            "/page": recording(page_seen, '<link rel="stylesheet" href="/app.css">',
                               "text/html"),
            "/app.css": recording(asset_seen, "/* */", "text/css")})
        home.routes["/"] = redirect(other.url + "/page")
        result = run(PageTarget.model_validate(
            {"name": "p", "type": "page", "timeout": "3s", "url": home.url + "/",
             "headers": {"Authorization": BEARER}}))
    assert result.ok, result.error
    assert len(page_seen) == 1 and len(asset_seen) == 1
    assert "authorization" not in page_seen[0]
    assert "authorization" not in asset_seen[0]
