"""Smaller findings of the security review, each an attack over real loopback sockets:
a 30-digit `?page=`, a Markdown link in an incident title, an unwritable spill path
noticed only during an outage, and sockets held open by half-sent request lines."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from alerts.rules import ActiveAlert
from dashboards.incidents_pages import render_markdown
from monitor.app import create_app
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config_meaning import meaning_problems
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.serving import HeaderTimeoutProtocol, server_config
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.servers import serve_asgi

READ = "misc-read-token"
AS_READER = {"Authorization": f"Bearer {READ}"}
EVIL = "[click](http://evil.example)"


@contextmanager
def site(tmp_path: Path, **server: Any) -> Iterator[tuple[str, Runtime]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    settings = make_settings(
        server={"tokens": [{"name": "viewer", "token": READ, "scope": "read"}], **server},
        dashboard={"auth": "token"},
        storage={"url": f"sqlite:///{tmp_path / 'pw.db'}"})  # its spill file goes there too
    app = create_app(settings, engine, clock=FakeClock(1_700_000_000.0),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    try:
        with serve_asgi(app) as url:
            yield url, app.state.runtime
    finally:
        engine.dispose()


# -- item 6: ?page= is bounded ---------------------------------------------------------


@pytest.mark.parametrize("number", ["9" * 30, "9" * 5000, "-3", "1e9", "٣", "2"])
def test_incidents_page_number_is_bounded(tmp_path: Path, number: str) -> None:
    with site(tmp_path) as (url, _):
        response = httpx.get(f"{url}/incidents", params={"page": number}, headers=AS_READER)
    assert response.status_code == 200
    assert "Traceback" not in response.text


# -- item 10: no foreign links in a post-mortem ----------------------------------------


def test_a_markdown_link_in_an_incident_title_is_not_a_link(tmp_path: Path) -> None:
    with site(tmp_path, public_url="https://status.example.com") as (url, runtime):
        alert = ActiveAlert(key="trigger:evil", kind="trigger", severity="ticket",
                            title=f"down {EVIL}", summary=f"see <http://evil.example/x> {EVIL}",
                            labels={"alertname": "trigger", "severity": "ticket"})
        manager = runtime.incidents
        manager.tick([alert], 1_700_000_000.0)
        manager.tick([], 1_700_000_600.0)  # the alert cleared: resolved, a draft is due
        with httpx.Client(base_url=url, headers=AS_READER) as reader:
            (item,) = reader.get("/api/v1/incidents").json()["items"]
            assert item["status"] == "resolved"
            draft = reader.get(f"/api/v1/incidents/{item['id']}/postmortem")
            assert draft.status_code == 200 and EVIL in draft.text  # the Markdown is raw
            page = reader.get(f"/incidents/{item['id']}").text
    postmortem = page[page.index("data-postmortem>"):]
    assert "evil.example" in postmortem  # shown, as text
    assert not re.search(r"<a [^>]*evil\.example", page)
    assert "click (http://evil.example)" in postmortem


def test_links_to_the_dashboard_itself_stay_links() -> None:
    html = str(render_markdown(
        "[#4](https://status.example.com/incidents/4) [home](/) [x](//evil.example/) "
        "[y](https://status.example.com.evil.example/) [z](javascript:alert(1))",
        "https://status.example.com"))
    assert '<a href="https://status.example.com/incidents/4">#4</a>' in html
    assert '<a href="/">home</a>' in html
    assert html.count("<a ") == 2
    assert "x (//evil.example/)" in html and "y (https://status.example.com.evil.example/)" in html


# -- item 11: an unwritable spill path is reported at start ----------------------------


@pytest.mark.parametrize("where", ["missing-dir/spill.jsonl", "a-file/spill.jsonl"])
def test_an_unusable_spill_path_is_a_warning_in_check(
        tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    spill = tmp_path / where
    config = tmp_path / "c.yaml"
    config.write_text(f"service: {{name: shop}}\nstorage: {{spill_path: '{spill}'}}\n")
    assert main(["--config", str(config), "check"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "storage.spill_path" in err and str(spill) in err


def test_a_writable_or_disabled_spill_path_is_not_a_warning(tmp_path: Path) -> None:
    fine = make_settings(storage={"spill_path": str(tmp_path / "spill.jsonl")})
    disabled = make_settings(storage={"spill_path": "/nonexistent/x", "spill_max_bytes": 0})
    for settings in (fine, disabled):
        assert not [p for p in meaning_problems(settings) if "spill" in p.message]


# -- item 13: half-sent request heads do not hold sockets ------------------------------


@contextmanager
def production_server() -> Iterator[int]:
    settings = make_settings()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass  # a response to a complete request may come first
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_partial_request_line_is_closed_after_the_header_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HeaderTimeoutProtocol, "header_timeout", 0.5)
    with production_server() as port:
        silent = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(b"GET /healthz HT")
        kept = socket.create_connection(("127.0.0.1", port))  # one answer, then a half
        kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo")
        try:
            assert closed_within(partial, 5)
            assert closed_within(silent, 5)
            assert closed_within(kept, 5)
        finally:
            for sock in (silent, partial, kept):
                sock.close()
        # A complete request is still answered.
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
