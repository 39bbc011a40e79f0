"""The on-call story on a real `primewatch run` subprocess and a real loopback target
switched down and up: one page named after what failed, acknowledged and resolved from
signed Slack buttons, no second page while the slow tiers still count the outage, and
the post-mortem written.

Intervals are shortened (1 s probes and evaluations) so the story fits in about a
minute and a half, most of it the minute of watching that no page follows the resolve.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.postmortem import format_percent
from alerts.slack_actions import sign
from dashboards.render import percent
from monitor.config_loader import load_config
from monitor.report import build_report
from monitor.slo_engine import probe_rates
from monitor.storage.engine import make_engine
from tests.fake_slack import FakeSlack
from tests.servers import RouteServer, free_port, send
from tests.test_crash_restart import start
from tests.test_end_to_end import wait_for
from tests.test_incident_story import slack_button

pytestmark = pytest.mark.slow
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
QUIET_AFTER_RESOLVE = 60.0  # seconds


class SwitchableTarget:
    """`/health` answering 200 "ok" until switched down, then 503."""

    def __init__(self, server: RouteServer) -> None:
        self.up = threading.Event()
        self.up.set()
        self.url = f"{server.url}/health"
        server.routes["/health"] = self._health

    def _health(self, handler: BaseHTTPRequestHandler) -> None:
        if self.up.is_set():
            send(handler, 200, "ok")
        else:
            send(handler, 503, "down for the test")


def write_config(tmp_path: Path, port: int, target: SwitchableTarget, slack: FakeSlack
                 ) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
service: {{name: e2e}}
server: {{port: {port}, public_url: "http://127.0.0.1:{port}"}}
storage: {{url: "sqlite:///{tmp_path}/pw.db", flush_interval: 200ms}}
targets:
  - {{name: api, type: http, url: "{target.url}", interval: 1s, timeout: 500ms,
     down_after: 2}}
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99.9, window: 1d,
     alerts: {{min_events: 5}}}}
alerting:
  evaluate_every: 1s
  policies:
    - name: default
      ack_timeout: null
      steps:
        - {{after: 0s, notify: [slack]}}
  channels:
    - {{name: slack, type: slack, token: {slack.token}, channel: "#oncall",
       api_url: "{slack.api_url}", signing_secret: "{SECRET}"}}
""")
    return config


def press(client: httpx.Client, action_id: str, incident_id: int) -> str:
    body = slack_button(action_id, incident_id)
    answer = client.post("/slack/actions", content=body, headers={
        **sign(SECRET, body, time.time()),
        "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["text"])


def pages(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages.values() if "thread_ts" not in m]


def header(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def same_budget_everywhere(client: httpx.Client, folder: Path) -> None:
    """The post-mortem's "budget consumed", the SLO page's "budget spent by incident #N"
    and the report's day state one budget (slo/allowance.py): the outage is all the bad
    this fresh database holds."""
    [incident] = client.get("/api/v1/incidents").json()["items"]
    spent = client.get(f"/api/v1/incidents/{incident['id']}").json()["budget_spent"]
    share = spent["api-availability"]
    assert share is not None and 0 < share < 1
    draft = client.get(f"/api/v1/incidents/{incident['id']}/postmortem").text
    assert f"consumed {format_percent(share)} of the error budget" in draft
    page = client.get("/slos/api-availability").text
    assert re.search(rf">{re.escape(percent(share, 2))}<", page), percent(share, 2)
    loaded = load_config(folder / "config.yaml", {})
    engine = make_engine(loaded.settings.storage.url)
    try:
        day = datetime.now(UTC).date()
        report = build_report(engine, loaded.settings.slos, first=day - timedelta(days=1),
                              last=day, now=time.time(),
                              probes_per_second=probe_rates(loaded.settings))
    finally:
        engine.dispose()
    consumed = report.loc[report["slo"] == "api-availability", "budget_consumed"]
    assert float(consumed.fillna(0).sum()) == pytest.approx(share, rel=1e-6)


def test_outage_page_ack_heal_resolve_then_quiet_with_a_postmortem(tmp_path: Path) -> None:
    server = RouteServer().start()
    try:
        slack = FakeSlack(server)
        target = SwitchableTarget(server)
        port = free_port()
        process = start(write_config(tmp_path, port, target, slack), tmp_path, "run")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                run_story(client, slack, target)
                same_budget_everywhere(client, tmp_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
    finally:
        server.stop()


def run_story(client: httpx.Client, slack: FakeSlack, target: SwitchableTarget) -> None:
    wait_for(lambda: client.get("/readyz").status_code == 200, 30, "primewatch ready")
    time.sleep(6)  # a few healthy probes first
    assert pages(slack) == []

    target.up.clear()  # the outage
    (page,) = wait_for(lambda: pages(slack), 30, "the page")
    incidents = client.get("/api/v1/incidents").json()["items"]
    assert len(incidents) == 1
    incident_id = incidents[0]["id"]
    # Named after what failed: the target, then its SLO once its burn rate joins.
    wait_for(lambda: "api-availability burning" in header(slack.messages[page["ts"]]),
             30, "the SLO to join the page")
    assert header(slack.messages[page["ts"]]).startswith("api is down · ")

    assert press(client, "incident_ack", incident_id) == f"Acknowledged incident #{incident_id}"
    detail = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert detail["status"] == "acknowledged" and detail["acknowledged_by"] == "alice (Slack)"
    assert {m["key"] for m in detail["members"]} == {"target:api", "slo:api-availability"}
    assert detail["slos"] == ["api-availability"]

    target.up.set()  # healed; resolved at once from Slack, as people do
    press(client, "incident_resolve", incident_id)
    wait_for(lambda: client.get(f"/api/v1/incidents/{incident_id}").json()["status"]
             == "resolved", 15, "the resolution")
    quiet_until = time.monotonic() + QUIET_AFTER_RESOLVE
    while time.monotonic() < quiet_until:  # the burn tiers still count the outage
        assert len(pages(slack)) == 1, "a second page after the resolve"
        assert client.get("/api/v1/incidents").json()["total"] == 1
        time.sleep(1)

    detail = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert detail["status"] == "resolved" and detail["has_postmortem"]
    draft = client.get(f"/api/v1/incidents/{incident_id}/postmortem")
    assert draft.status_code == 200 and "api-availability" in draft.text
    assert "Resolved" in json.dumps(slack.replies(page["ts"]))
    assert "Resolved" in json.dumps(slack.messages[page["ts"]]["blocks"])
