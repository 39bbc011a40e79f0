"""kill -9 in the middle of an escalation: the restarted process continues at the
right step and nothing is sent twice. A real `primewatch run` subprocess, a target
that refuses connections, and local Slack and webhook receivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.fake_slack import FakeSlack
from tests.fake_webhook import FakeWebhook
from tests.servers import free_port
from tests.test_end_to_end import ROOT, wait_for

pytestmark = pytest.mark.slow
STEP_2_AFTER = 8  # seconds


def write_config(tmp_path: Path, slack: FakeSlack, hook: FakeWebhook) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
service: {{name: crash}}
server: {{port: {free_port()}}}
storage: {{url: "sqlite:///{tmp_path}/pw.db", flush_interval: 200ms}}
targets:
  - {{name: api, type: http, url: "http://127.0.0.1:{free_port()}/health", interval: 1s,
     timeout: 500ms, down_after: 2}}
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99, window: 1d}}
{escalation_alerting(slack, hook, STEP_2_AFTER)}""")
    return config


def escalation_alerting(slack: FakeSlack, hook: FakeWebhook, step_2_after: int) -> str:
    """The `alerting:` section of the kill -9 tests: page in Slack at once, then Slack
    and the webhook `step_2_after` seconds later, every second's evaluation."""
    return f"""alerting:
  evaluate_every: 1s
  policies:
    - name: default
      ack_timeout: null
      steps:
        - {{after: 0s, notify: [slack]}}
        - {{after: {step_2_after}s, notify: [slack, hook]}}
  channels:
    - {{name: slack, type: slack, token: {slack.token}, channel: "#oncall",
       api_url: "{slack.api_url}"}}
    - {{name: hook, type: webhook, url: "{hook.url}"}}
"""


def start(config: Path, tmp_path: Path, name: str,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`primewatch run` as a child process, its output in `<name>.log`; `env` adds to
    the inherited environment."""
    with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config",
                                 str(config), "run"], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT)


def pages(slack: FakeSlack) -> list[dict[str, object]]:
    return [m for m in slack.messages.values() if "thread_ts" not in m]


def test_kill_9_mid_escalation_then_restart_continues_without_repeats(
        tmp_path: Path, receivers: tuple[FakeSlack, FakeWebhook]) -> None:
    slack, hook = receivers
    config = write_config(tmp_path, slack, hook)
    first = start(config, tmp_path, "first")
    try:
        wait_for(lambda: pages(slack), 30, "the page in Slack")
    finally:
        first.send_signal(signal.SIGKILL)  # no shutdown, no flush: a crash
        first.wait(10)
    paged_at = time.monotonic()
    assert hook.deliveries == []  # step 2 was not due yet when it died
    time.sleep(STEP_2_AFTER)  # step 2 falls due while nobody runs
    second = start(config, tmp_path, "second")
    try:
        wait_for(lambda: hook.deliveries, 30, "step 2 after the restart")
        time.sleep(3)  # several more evaluation ticks and outbox passes
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(15)
    assert time.monotonic() - paged_at >= STEP_2_AFTER
    assert len(pages(slack)) == 1  # the page was not sent again
    (page,) = pages(slack)
    assert len(slack.replies(str(page["ts"]))) == 1  # step 2's reply, once
    assert len(hook.deliveries) == 1
    assert hook.deliveries[0].json()["event"] == "escalate"
