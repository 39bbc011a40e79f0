"""No secret from the config is ever logged, shown or sent where it does not belong.

Every secret below contains the marker "S3CRET", so a truncated or re-encoded copy is
caught too. Two runs look for it: a service started with its background work (real
scheduler, probe and evaluation against loopback servers), and an incident story on a
simulated clock (a real probe failure, notifications through every channel kind,
ack, resolve, post-mortem). In both, the marker must appear in no log record (DEBUG
and up), no page, no API answer (GET routes found from the app itself, errors to bad
requests, /openapi.json), /metrics, and no notification text. Target URLs are shown,
but only as `http://***@host/path?token=***`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from alerts.store import list_incidents
from monitor.app import create_app
from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.ingest import ResultWriter
from monitor.log_redaction import scrub
from monitor.metrics import Metrics
from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ProbeResult
from probes.urls import redact_url
from tests.conftest import make_settings
from tests.fake_pagerduty import FakePagerDuty
from tests.fake_slack import FakeSlack
from tests.fake_smtp import FakeSMTP, fake_smtp
from tests.fake_webhook import FakeWebhook
from tests.servers import RouteServer, route_server, send, serve_asgi

MARKER = "S3CRET"
WRITE_TOKEN = "S3CRET-write-token-a1b2"
READ_TOKEN = "S3CRET-read-token-c3d4"
SLACK_TOKEN = "xoxb-S3CRET-slack-e5f6"
SIGNING_SECRET = "S3CRET-signing-g7h8"
HOOK_PATH = "/hooks/S3CRET-hook-path-i9j0"
HOOK_QUERY = "S3CRET-hook-query-k1l2"
HOOK_HMAC = "S3CRET-hook-hmac-m3n4"
SLACK_HOOK_PATH = "/services/T000/B000/S3CRET-slack-hook-w3x4"
ROUTING_KEY = "S3CRET-pagerduty-routing-key-012"  # PagerDuty keys are 32 characters
SMTP_PASSWORD = "S3CRET-smtp-o5p6"
STORAGE_URL = "postgresql://primewatch:S3CRET-db-q7r8@127.0.0.1:1/primewatch"
TARGET_PASSWORD = "S3CRET-target-s9t0"
TARGET_TOKEN = "S3CRET-target-u1v2"
T0 = 1_767_225_600.0
READER = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITER = {"Authorization": f"Bearer {WRITE_TOKEN}"}
assert len(ROUTING_KEY) == 32


@dataclass
class Outside:
    """The loopback servers the service talks to."""

    target: RouteServer
    slack: FakeSlack
    pagerduty: FakePagerDuty
    webhook: FakeWebhook
    smtp: FakeSMTP

    @property
    def target_url(self) -> str:
        port = self.target.port
        return (f"http://probe:{TARGET_PASSWORD}@127.0.0.1:{port}/health"
                f"?token={TARGET_TOKEN}&region=eu")


@pytest.fixture
def outside() -> Iterator[Outside]:
    def health(handler: Any) -> None:  # a redirect carrying the token, then an outage
        handler.send_response(302)
        handler.send_header("Location", f"/down?token={TARGET_TOKEN}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def down(handler: Any) -> None:
        send(handler, 503, '{"status": "down"}', "application/json")

    with route_server({"/health": health, "/down": down}) as target, \
            route_server() as services, \
            fake_smtp(credentials=("alerts", SMTP_PASSWORD)) as smtp:
        webhook = FakeWebhook(services, path=HOOK_PATH)
        webhook.respond_next(1, 500, body="try again")  # a failed delivery is logged
        slack = FakeSlack(services, token=SLACK_TOKEN)
        # Slack's incoming webhooks keep their secret in the path.
        services.routes[SLACK_HOOK_PATH] = slack._webhook(valid=True)
        yield Outside(target, slack, FakePagerDuty(services), webhook, smtp)


def secret_settings(outside: Outside, **extra: Any) -> Settings:
    channels = [
        {"name": "slack", "type": "slack", "token": SLACK_TOKEN, "channel": "#oncall",
         "api_url": outside.slack.api_url, "signing_secret": SIGNING_SECRET},
        {"name": "slack-hook", "type": "slack",
         "webhook_url": outside.slack.webhook_url.replace("/services/T000/B000/XXXX",
                                                          SLACK_HOOK_PATH)},
        {"name": "pagerduty", "type": "pagerduty", "routing_key": ROUTING_KEY,
         "events_url": outside.pagerduty.events_url},
        {"name": "hook", "type": "webhook", "url": f"{outside.webhook.url}?key={HOOK_QUERY}",
         "secret": HOOK_HMAC},
        {"name": "mail", "type": "email", "smtp_host": outside.smtp.host,
         "smtp_port": outside.smtp.port, "to": ["oncall@example.com"],
         "username": "alerts", "password": SMTP_PASSWORD},
    ]
    return make_settings(
        server={"public_url": "http://primewatch.example",
                "tokens": [{"name": "oncall", "token": WRITE_TOKEN, "scope": "write"},
                           {"name": "viewer", "token": READ_TOKEN, "scope": "read"}]},
        storage={"url": STORAGE_URL},
        dashboard={"auth": "token", "status_page": {"components": [
            {"name": "API", "slos": ["api-availability"], "targets": ["api"]}]}},
        targets=[{"name": "api", "type": "http", "url": outside.target_url,
                  "interval": "1s", "timeout": "2s"}],
        alerting={"evaluate_every": "1s",
                  "policies": [{"name": "default", "steps": [
                      {"after": "0m", "notify": ["slack", "slack-hook", "pagerduty", "hook",
                                                 "mail"]}]}],
                  "channels": channels},
        **extra)


def leaks(where: str, text: str) -> list[str]:
    return [f"{where}: …{text[max(0, i - 60):i + 40]}…"
            for i in (m.start() for m in re.finditer(MARKER, text))][:1]


def answer_text(response: httpx.Response) -> str:
    """Body and headers, except the cookie that deliberately holds the reader's token."""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items()
                        if k.lower() != "set-cookie")
    return f"{headers}\n{response.text}"


def get_routes(app: FastAPI, ids: dict[str, str]) -> list[str]:
    """Every GET route of the app, its path parameters filled with known names."""
    paths = []
    for route in iter_route_contexts(app.routes):
        if "GET" not in (route.methods or set()) or route.path is None:
            continue

        def fill(match: re.Match[str], path: str = route.path) -> str:
            name = match.group(1)
            if name == "name":
                return ids["target"] if "/targets/" in path else ids["slo"]
            return ids.get(name, "1")

        paths.append(re.sub(r"\{(\w+)(?::\w+)?\}", fill, route.path))
    return paths


def crawl(client: httpx.Client, app: FastAPI, ids: dict[str, str]) -> list[str]:
    """Leaks in every GET answer, in answers to bad requests, and the pages' redaction."""
    found: list[str] = []
    responses: dict[str, httpx.Response] = {}
    for path in get_routes(app, ids):
        responses[path] = client.get(path, headers=READER)
    assert responses["/api/v1/targets"].status_code == 200
    responses["?token="] = client.get("/", params={"token": READ_TOKEN})
    bad = [("GET", "/api/v1/targets/nope/results", READER, None),
           ("GET", "/api/v1/targets/api/results?limit=abc", READER, None),
           ("GET", "/api/v1/incidents/99999", READER, None),
           ("GET", "/slos/nope", READER, None),
           ("GET", "/api/v1/targets", {"Authorization": f"Bearer {WRITE_TOKEN}x"}, None),
           ("POST", "/api/v1/silences", {}, None),
           ("POST", "/api/v1/silences", WRITER, b"{not json"),
           ("POST", "/api/v1/silences", WRITER, b'{"matchers": "S3CRET-in-a-body"}'),
           ("POST", "/api/v1/maintenance", WRITER, b"{}"),
           ("POST", "/slack/actions", {}, b"payload=%7B%7D")]
    for method, path, headers, body in bad:
        response = client.request(method, path, headers={
            **headers, "Content-Type": "application/json"}, content=body)
        assert response.status_code >= 400, (method, path)
        text = answer_text(response)
        if b"S3CRET-in-a-body" in (body or b""):  # our own input may come back; nothing else
            text = text.replace("S3CRET-in-a-body", "")
        found += leaks(f"{method} {path} → {response.status_code}", text)
    for path, response in responses.items():
        found += leaks(f"GET {path} → {response.status_code}", answer_text(response))
    targets = responses["/api/v1/targets"].json()["items"]
    assert targets[0]["url"] == (f"http://***@127.0.0.1:{ids['port']}/health"
                                 "?token=***&region=eu")
    assert f"http://***@127.0.0.1:{ids['port']}/health?token=***&amp;region=eu" \
        in responses["/targets"].text
    return found


def log_leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    found: list[str] = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        found += leaks(f"log {record.name} {record.levelname}", text)
    return found


def test_a_running_service_never_shows_or_logs_a_secret(
        engine: Engine, outside: Outside, caplog: pytest.LogCaptureFixture,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # storage.url is not the test database: no local state here
    caplog.set_level(logging.DEBUG)
    settings = secret_settings(outside)
    app = create_app(settings, engine, metrics=Metrics(CollectorRegistry()))
    found: list[str] = []
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 30  # how long a probe may take to be stored
        while time.monotonic() < deadline:
            items = client.get("/api/v1/targets", headers=READER).json()["items"]
            if items[0]["last_result"] is not None:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no probe result was stored")
        assert items[0]["last_result"]["details"]["final_url"] == (
            f"http://***@127.0.0.1:{outside.target.port}/down?token=***")
        found += crawl(client, app, {"target": "api", "slo": "api-availability",
                                     "port": str(outside.target.port)})
    found += log_leaks(caplog)
    assert not found, "\n".join(found)


def test_an_incident_story_never_shows_sends_or_logs_a_secret(
        engine: Engine, outside: Outside, caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    settings = secret_settings(outside)
    clock = FakeClock(T0)
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    runtime = app.state.runtime
    request.addfinalizer(runtime.outbox.close)
    writer = ResultWriter(engine, settings.slos,
                          on_written=runtime.service.slo_engine.forget)
    target = settings.targets[0]

    async def probe_once() -> ProbeResult:
        clients = HttpClientPool()
        probe = build_probe(target, ProbeContext(clients, settings.region))
        try:
            return await probe.run(clock.now())
        finally:
            await probe.aclose()
            await clients.aclose()

    real = asyncio.run(probe_once())  # the probe's own error text and details
    assert not real.ok
    runtime.metrics.observe_probe(real)
    writer([ProbeResult(target="api", started_at=T0 - 86400 + i * 60, ok=True, latency=0.05,
                        status_code=200) for i in range(1440)])
    for _ in range(10):  # a hard outage: the page fires within a few ticks
        clock.advance(30)
        writer([replace(real, started_at=clock.now() - s) for s in (25, 15, 5)])
        runtime._evaluate_and_publish()
        runtime.outbox.deliver_due()
    (incident,), _ = list_incidents(engine)
    clock.advance(30)
    runtime.outbox.deliver_due()  # the webhook's retry

    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        acked = client.post(f"/api/v1/incidents/{incident.id}/ack",
                            json={"comment": "looking"}, headers=WRITER)
        assert acked.status_code == 200, acked.text
        resolved = client.post(f"/api/v1/incidents/{incident.id}/resolve",
                               json={"comment": "fixed"}, headers=WRITER)
        assert resolved.status_code == 200, resolved.text
        runtime.outbox.deliver_due()
        found = crawl(client, app, {"target": "api", "slo": "api-availability",
                                    "incident_id": str(incident.id),
                                    "port": str(outside.target.port)})
        postmortem = client.get(f"/api/v1/incidents/{incident.id}/postmortem",
                                headers=READER)
        assert postmortem.status_code == 200
        found += leaks("post-mortem", postmortem.text)

    # What went out: each channel got the incident, and no secret rode along (the
    # routing key is PagerDuty's addressing and belongs in its field only).
    assert outside.slack.messages and outside.slack.calls("webhook")
    assert outside.pagerduty.events
    assert len(outside.webhook.deliveries) >= 2 and outside.smtp.mails
    for message in outside.slack.messages.values():
        found += leaks("Slack message", json.dumps(message))
    for call in outside.slack.calls("webhook"):
        found += leaks("Slack webhook message", json.dumps(call.body))
    for event in outside.pagerduty.events:
        found += leaks("PagerDuty event", json.dumps({k: v for k, v in event.items()
                                                      if k != "routing_key"}))
    for delivery in outside.webhook.deliveries:
        found += leaks("webhook body", delivery.body.decode())
    for mail in outside.smtp.mails:
        found += leaks("mail", mail.message.as_string())
    found += log_leaks(caplog)
    assert not found, "\n".join(found)


def test_config_check_and_errors_never_print_a_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"""\
server:
  tokens:
    - {{name: oncall, token: {WRITE_TOKEN}}}
storage: {{url: "{STORAGE_URL}"}}
targets:
  - {{name: api, type: http, url: "http://u:{TARGET_PASSWORD}@127.0.0.1:9/?token={TARGET_TOKEN}"}}
alerting:
  channels:
    - {{name: pager, type: pagerduty, routing_key: {ROUTING_KEY}}}
    - {{name: mail, type: email, smtp_host: 127.0.0.1, to: [a@b.c], password: {SMTP_PASSWORD}}}
""")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"""\
server:
  tokens:
    - {{name: oncall, token: {WRITE_TOKEN}, token_hash: "sha256:{'0' * 64}"}}
    - {{name: "bad name", token: {READ_TOKEN}}}
targets:
  - {{name: api, type: http, url: "htp://u:{TARGET_PASSWORD}@h/?token={TARGET_TOKEN}"}}
""")
    assert main(["--config", str(good), "check"]) == 0
    assert main(["--config", str(bad), "check"]) == 2
    captured = capsys.readouterr()
    assert "a literal secret" in captured.err and "invalid URL" in captured.err
    assert leaks("check output", captured.out + captured.err) == []


def test_the_settings_repr_shows_no_secret(outside: Outside) -> None:
    # repr is what tracebacks, debuggers and error reporters' captured locals show.
    settings = secret_settings(outside)
    for section in (settings.server, settings.targets, settings.alerting):
        assert leaks("repr", repr(section)) == []


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pw@host:8443/x?q=1", "https://***@host:8443/x?q=1"),
    ("https://h/p?token=abc&region=eu&api_key=zz#top",
     "https://h/p?token=***&region=eu&api_key=***#top"),
    ("https://h/p?X-Amz-Signature=abc&X-Amz-Date=1", "https://h/p?X-Amz-Signature=***&X-Amz-Date=1"),
    ("http://u:p@[::1]:80/?password=x", "http://***@[::1]:80/?password=***"),
    ("http://host/x", "http://host/x"),
    ("https://h/?token", "https://h/?token"),
])
def test_redact_url_hides_userinfo_and_credential_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_http_library_log_lines_keep_only_the_origin_and_safe_headers() -> None:
    assert scrub('HTTP Request: POST https://hooks.slack.com/services/T0/B0/xyz "HTTP/1.1 200"'
                 ) == 'HTTP Request: POST https://hooks.slack.com/… "HTTP/1.1 200"'
    assert scrub("GET http://u:p@h:81/ ok") == "GET http://h:81/ ok"
    headers = ("return_value=(b'HTTP/1.1', 302, b'Found', [(b'Content-Length', b'0'), "
               "(b'Location', b'/down?token=t'), (b'Set-Cookie', b\"s='x'\")])")
    assert scrub(headers) == ("return_value=(b'HTTP/1.1', 302, b'Found', [(b'Content-Length', "
                              "b'0'), (b'Location', b'***'), (b'Set-Cookie', b'***')])")
