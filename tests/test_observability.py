"""Sentry reporting against a fake Sentry on loopback, and JSON log lines.

The fake Sentry is a RouteServer answering the envelope endpoint the DSN points at;
every test that starts Sentry closes its client afterwards, so no other test reports.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.escalation import IncidentManager
from alerts.notification import Delivery, Notification
from alerts.outbox import Outbox
from alerts.rules import ActiveAlert
from monitor import __version__
from monitor.app import create_app
from monitor.cli import EXIT_OK, main
from monitor.clock import FakeClock
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.observability import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    init_sentry,
    one_line,
    report_exception,
)
from monitor.scheduler import ProbeScheduler, ScheduledTarget
from monitor.storage.engine import make_engine, upgrade
from probes.base import ProbeResult
from probes.http import HttpTarget
from tests import test_alertmanager as alertmanager
from tests.conftest import make_settings
from tests.servers import RouteServer, route_server, send, serve_asgi

ENVELOPE = "/api/1/envelope/"
TOKEN = "sentry-test-write-token"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeSentry:
    """Envelopes received, decompressed; `events()` are the error events among them."""

    server: RouteServer
    envelopes: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.port}/1"

    def receive(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.lock:
            self.envelopes.append(body)
        send(handler, 200, "{}", "application/json")

    def events(self) -> list[dict[str, Any]]:
        """Payloads of `event` items (an envelope is header, then item header/payload
        line pairs; sessions and client reports are other item types)."""
        found = []
        with self.lock:
            envelopes = list(self.envelopes)
        for envelope in envelopes:
            lines = envelope.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if header.strip() and json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    def raw(self) -> bytes:
        with self.lock:
            return b"\n".join(self.envelopes)


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    with route_server() as server:
        sentry = FakeSentry(server)
        server.routes[ENVELOPE] = sentry.receive
        yield sentry


@pytest.fixture
def sentry_on(fake_sentry: FakeSentry) -> Iterator[FakeSentry]:
    """Sentry started as `primewatch run` starts it; closed and detached afterwards."""
    settings = make_settings(service={"name": "test", "environment": "staging"})
    try:
        assert init_sentry(settings, {"SENTRY_DSN": fake_sentry.dsn}) is True
        yield fake_sentry
    finally:
        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.get_global_scope().set_client(None)
        assert not sentry_sdk.get_client().is_active()


def flushed_events(sentry: FakeSentry, at_least: int = 1) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    deadline = time.monotonic() + 5  # flush returns once sent; the server may lag a bit
    while len(sentry.events()) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return sentry.events()


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in event["exception"]["values"]]


# -- Sentry -------------------------------------------------------------------------------


def test_without_a_dsn_sentry_stays_off_and_reports_nothing(fake_sentry: FakeSentry) -> None:
    assert init_sentry(make_settings(), {}) is False
    assert init_sentry(make_settings(), {"SENTRY_DSN": "  "}) is False
    assert not sentry_sdk.get_client().is_active()
    report_exception(RuntimeError("nobody listens"))  # a no-op, not an error
    sentry_sdk.flush(timeout=1)
    assert fake_sentry.envelopes == []


@pytest.mark.parametrize(("environ", "variable"), [
    ({"SENTRY_DSN": "not a dsn"}, "SENTRY_DSN"),
    ({"SENTRY_DSN": "http://public@127.0.0.1:9/1", "SENTRY_TRACES_SAMPLE_RATE": "lots"},
     "SENTRY_TRACES_SAMPLE_RATE"),
    ({"SENTRY_DSN": "http://public@127.0.0.1:9/1", "SENTRY_TRACES_SAMPLE_RATE": "1.5"},
     "SENTRY_TRACES_SAMPLE_RATE"),
])
def test_an_unusable_sentry_setting_is_a_config_error(environ: dict[str, str],
                                                      variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        init_sentry(make_settings(), environ)
    assert raised.value.problems[0].path == variable
    assert "not a dsn" not in str(raised.value)  # a DSN is not echoed into logs
    assert not sentry_sdk.get_client().is_active()


def test_an_error_in_the_web_app_reaches_sentry_without_secrets(
        sentry_on: FakeSentry, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    settings = make_settings(service={"environment": "staging"},
                             server={"tokens": [{"name": "ops", "token": TOKEN}]})
    app = create_app(settings, engine, clock=FakeClock(),
                     metrics=Metrics(CollectorRegistry()), run_background=False)

    async def boom() -> None:
        # A probe's URL with credentials in it; reversed, as source context shows this line.
        target_url = "lanretni.bd@lacol-a-ni-2retnuh:resu//:sptth"[::-1]
        raise RuntimeError(f"kaboom ({len(target_url)})")

    app.add_api_route("/boom", boom)
    try:
        with serve_asgi(app) as url:
            response = httpx.get(f"{url}/boom", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        engine.dispose()
    assert response.status_code == 500
    assert response.json() == {"error": {"status": 500, "message": "internal error"}}
    events = flushed_events(sentry_on)
    assert len(events) == 1  # the handler's log.exception is a breadcrumb, not a 2nd event
    event = events[0]
    # Starlette's BaseHTTPMiddleware (the app's http middlewares) may wrap the error in
    # an ExceptionGroup; Sentry shows and groups it by the inner exception.
    assert exception_types(event)[-1] == "RuntimeError"
    assert event["exception"]["values"][-1]["value"] == "kaboom (43)"
    assert (event["release"], event["environment"]) == (f"primewatch@{__version__}",
                                                        "staging")
    assert event["request"]["url"].endswith("/boom")
    raw = sentry_on.raw()
    assert TOKEN.encode() not in raw  # headers are not collected (data_collection)
    assert b"hunter2-in-a-local" not in raw  # stack locals are not sent
    assert not event.get("user")  # no IP address or other user info
    assert not any(frame.get("vars") for value in event["exception"]["values"]
                   for frame in value.get("stacktrace", {}).get("frames", []))
    headers = {name.lower() for name in event["request"].get("headers", {})}
    assert not headers & {"authorization", "cookie"}



def test_requests_to_monitored_systems_carry_no_trace_headers(sentry_on: FakeSentry) -> None:
    """Probes send exactly the configured request: no sentry-trace or baggage (which
    names our release) to third parties, whether through httpx or the stdlib."""
    seen: list[set[str]] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.append({name.lower() for name in handler.headers})
        send(handler, 200, "ok")

    with route_server({"/health": record}) as target:
        assert httpx.get(f"{target.url}/health").status_code == 200
        with urllib.request.urlopen(f"{target.url}/health", timeout=5) as response:
            assert response.status == 200
    assert len(seen) == 2
    for names in seen:
        assert not names & {"sentry-trace", "baggage", "traceparent"}

def test_report_exception_sends_a_caught_exception(sentry_on: FakeSentry) -> None:
    try:
        raise ValueError("caught at a boundary")
    except ValueError as exc:
        report_exception(exc)
    (event,) = flushed_events(sentry_on)
    assert exception_types(event) == ["ValueError"]
    assert event["release"] == f"primewatch@{__version__}"
    assert event["environment"] == "staging"


def test_a_probe_that_raises_is_reported_and_the_schedule_goes_on(
        sentry_on: FakeSentry) -> None:
    class Broken:
        runs = 0

        async def run(self, started_at: float) -> ProbeResult:
            self.runs += 1
            raise RuntimeError("probe bug")

        async def aclose(self) -> None:
            pass

    probe = Broken()
    config = HttpTarget(name="api", type="http", url="http://127.0.0.1:1/", interval=0.2,
                        timeout=0.2)
    scheduler = ProbeScheduler({"api": ScheduledTarget(config, probe)}, lambda _r: None,
                               Metrics(CollectorRegistry()))

    async def scenario() -> None:
        scheduler.start()
        await asyncio.sleep(1.0)
        scheduler.shutdown()

    asyncio.run(scenario())
    assert probe.runs >= 2
    events = flushed_events(sentry_on)
    assert events and all(e["exception"]["values"][0]["value"] == "probe bug"
                          for e in events)


def test_a_notifier_that_raises_is_reported_and_retried(sentry_on: FakeSentry,
                                                        sqlite_engine: Engine) -> None:
    class Raising:
        name = "hook"

        def send(self, notification: Notification) -> Delivery:
            raise KeyError("template field")

        def close(self) -> None:
            pass

    upgrade(sqlite_engine)
    settings = make_settings(alerting={
        "policies": [{"name": "default", "steps": [{"notify": ["hook"]}]}],
        "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/"}]})
    clock = FakeClock()
    IncidentManager(sqlite_engine, settings, channels=["hook"]).tick([ActiveAlert(
        key="target:api", kind="down", severity="page", title="Target api is down",
        summary="connection refused", target="api")], clock.now())
    outbox = Outbox(sqlite_engine, {"hook": Raising()}, clock)
    assert outbox.deliver_due() == 0
    assert outbox.retried == 1
    (event,) = flushed_events(sentry_on)
    assert exception_types(event) == ["KeyError"]


# -- logging -------------------------------------------------------------------------------


def test_json_lines_carry_the_extra_fields_and_tracebacks() -> None:
    """In a fresh interpreter: configure_logging owns the root logger only there (under
    pytest the root already has handlers, which it leaves alone)."""
    code = """
import logging
from monitor.observability import configure_logging
configure_logging("json")
log = logging.getLogger("alerts.escalation")
log.warning("incident %d opened: %s", 7, "API down",
            extra={"incident": 7, "slo": "api-up", "target": "api", "other": "x"})
log.debug("not at INFO")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("monitor.scheduler").exception("probe %s raised\\nsecond line", "api")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    first, second = (json.loads(line) for line in lines)
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert {k: v for k, v in first.items() if k != "time"} == {
        "level": "WARNING", "logger": "alerts.escalation",
        "message": "incident 7 opened: API down", "incident": 7, "slo": "api-up",
        "target": "api"}
    assert second["level"] == "ERROR" and second["message"] == "probe api raised\nsecond line"
    assert second["exception"].splitlines()[-1] == "ZeroDivisionError: division by zero"


def test_text_lines_stay_as_before() -> None:
    code = """
import logging
from monitor.observability import configure_logging
configure_logging("json")
configure_logging("text")  # replaces its own handler: one line, in text
logging.getLogger("primewatch").info("serving", extra={"target": "api"})
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    (line,) = done.stderr.splitlines()
    assert line.endswith(" INFO primewatch: serving")


def test_configure_logging_leaves_a_configured_root_alone() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    assert root.handlers  # pytest's capture handlers
    assert configure_logging("json") is None
    assert (list(root.handlers), root.level) == before


def test_the_incident_opened_log_names_the_incident(sqlite_engine: Engine,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    upgrade(sqlite_engine)
    manager = IncidentManager(sqlite_engine, make_settings(), channels=[])
    with caplog.at_level(logging.WARNING, logger="alerts.escalation"):
        manager.tick([ActiveAlert(key="slo:api-availability", kind="burn_rate",
                                  severity="page", title="SLO burning", summary="burn 20x",
                                  slo="api-availability", target="api")], 1000.0)
    (record,) = [r for r in caplog.records if "opened" in r.getMessage()]
    line = json.loads(JsonFormatter().format(record))
    assert (line["incident"], line["slo"], line["target"]) == (1, "api-availability", "api")


# -- one record, one line ------------------------------------------------------------------

FORGED = "ERROR forged: admin logged in from 10.0.0.1"
"""Text an attacker puts after a newline, hoping it reads as a record of its own."""


@contextmanager
def logged(formatter: logging.Formatter, logger: str = "") -> Iterator[io.StringIO]:
    """What a real StreamHandler with `formatter` writes for `logger` (root: every
    record, from any thread) at INFO, while the block runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    target = logging.getLogger(logger)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def test_a_text_record_is_one_line_whatever_its_message_holds() -> None:
    with logged(TextFormatter(), "tests.forged") as stream:
        logging.getLogger("tests.forged").warning(
            "summary: %s", f"API down\n2026-12-08 10:00:00,000 {FORGED}\r\x1b[2J\u2028\x85 end")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING tests.forged: summary: API down\\n2026-12-08 10:00:00,000 "
                         f"{FORGED}\\r\\x1b[2J\\u2028\\x85 end")
    assert one_line("tab\tand plain text stay") == "tab\tand plain text stay"


def test_a_traceback_still_follows_on_lines_of_its_own() -> None:
    with logged(TextFormatter(), "tests.forged") as stream:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logging.getLogger("tests.forged").exception("probe %s raised", f"api\n{FORGED}")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(f" ERROR tests.forged: probe api\\n{FORGED} raised")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert not any(line.startswith(FORGED) for line in lines)


def test_alertmanager_text_cannot_forge_a_log_line(tmp_path: Path) -> None:
    """The whole way: a summary and a receiver name with newlines, posted to the real
    app, logged by the service's own loggers (in uvicorn's thread and a worker thread)
    through a real handler. Text lines escape them; JSON lines keep them, escaped by
    JSON itself."""
    alert = alertmanager.am_alert()
    alert["annotations"]["summary"] = f"API down\n{FORGED}"
    body = {**alertmanager.webhook(alert), "receiver": f"am\r\n{FORGED}"}
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    app = create_app(alertmanager.settings(), engine, clock=FakeClock(alertmanager.T0),
                     metrics=Metrics(CollectorRegistry()), run_background=False)
    try:
        with serve_asgi(app) as url, httpx.Client(base_url=url) as client, \
                logged(TextFormatter()) as text, logged(JsonFormatter()) as json_lines:
            response = client.post(alertmanager.URL, json=body, headers=alertmanager.AUTH)
            assert response.status_code == 200, response.text
    finally:
        engine.dispose()
    lines = text.getvalue().splitlines()
    assert any(line.endswith(f"incident 1 opened: API down\\n{FORGED}") for line in lines)
    assert any(f"Alertmanager webhook from am\\r\\n{FORGED}" in line for line in lines)
    assert not any(line.startswith(FORGED) for line in lines), lines
    messages = [json.loads(line)["message"] for line in json_lines.getvalue().splitlines()]
    assert f"incident 1 opened: API down\n{FORGED}" in messages


def test_configure_logging_text_escapes_control_characters() -> None:
    code = f"""
import logging
from monitor.observability import configure_logging
configure_logging("text")
logging.getLogger("primewatch").warning("got %s", "x\\n{FORGED}")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    (line,) = done.stderr.splitlines()
    assert line.endswith(f" WARNING primewatch: got x\\n{FORGED}")


# -- the command line ----------------------------------------------------------------------


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "primewatch.yaml"
    path.write_text(f"""\
storage: {{url: "sqlite:///{tmp_path}/x.db"}}
targets:
  - {{name: api, type: http, url: "http://127.0.0.1:9/health"}}
""", encoding="utf-8")
    return path


def test_cli_accepts_log_format_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PRIMEWATCH_LOG_FORMAT", raising=False)
    path = str(config_file(tmp_path))
    assert main(["--log-format", "json", "--config", path, "check"]) == EXIT_OK
    assert main(["--log-format", "text", "--config", path, "check"]) == EXIT_OK
    monkeypatch.setenv("PRIMEWATCH_LOG_FORMAT", "json")
    assert main(["--config", path, "check"]) == EXIT_OK
    capsys.readouterr()


@pytest.mark.parametrize(("argv", "env"), [(["--log-format", "xml"], None),
                                           ([], "yaml")])
def test_cli_refuses_an_unknown_log_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           argv: list[str], env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("PRIMEWATCH_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("PRIMEWATCH_LOG_FORMAT", env)
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--config", str(config_file(tmp_path)), "check"])
    assert exited.value.code == 2
    assert "is not text or json" in capsys.readouterr().err

