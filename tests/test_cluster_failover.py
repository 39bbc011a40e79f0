"""Two `primewatch run` processes on loopback sharing PostgreSQL: kill -9 the leader in
the middle of an escalation; the follower takes over within 15 s, runs the remaining
step, and every message reaches Slack and the webhook exactly once.

Run with `-s` to see the takeover figure."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from monitor.storage.engine import upgrade
from tests.conftest import POSTGRES_URL
from tests.fake_slack import FakeSlack
from tests.fake_webhook import FakeWebhook
from tests.servers import free_port
from tests.test_crash_restart import escalation_alerting, start
from tests.test_end_to_end import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
STEP_2_AFTER = 10  # seconds after the page; the leader dies before it


def write_config(tmp_path: Path, slack: FakeSlack, hook: FakeWebhook) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
service: {{name: cluster}}
region: ${{PW_REGION}}
server:
  port: ${{PW_PORT}}
cluster:
  instance: "${{PW_INSTANCE}}"
  heartbeat_interval: 1s
storage: {{url: "{POSTGRES_URL}", flush_interval: 200ms}}
targets:
  - {{name: api, type: http, url: "http://127.0.0.1:{free_port()}/health", interval: 1s,
     timeout: 500ms, down_after: 2}}
slos: []
{escalation_alerting(slack, hook, STEP_2_AFTER)}""")
    return config


class Instance:
    def __init__(self, config: Path, tmp_path: Path, name: str, region: str) -> None:
        self.name, self.port = name, free_port()
        self.process = start(config, tmp_path, name, {
            "PW_REGION": region, "PW_PORT": str(self.port), "PW_INSTANCE": name})

    def cluster(self) -> dict[str, Any]:
        view: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/cluster",
                                         timeout=2).json()
        return view

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def pages_about(slack: FakeSlack, words: str) -> list[dict[str, Any]]:
    return [m for m in slack.messages.values()
            if "thread_ts" not in m and words in str(m.get("text", ""))]


def test_kill_9_the_leader_mid_escalation_follower_takes_over_and_sends_each_once(
        tmp_path: Path, postgres_engine: Engine,
        receivers: tuple[FakeSlack, FakeWebhook]) -> None:
    upgrade(postgres_engine)
    slack, hook = receivers
    config = write_config(tmp_path, slack, hook)
    first = Instance(config, tmp_path, "pw-eu", "eu-west")
    second: Instance | None = None
    try:
        wait_for(lambda: first.cluster()["leader"] == "pw-eu", 30, "pw-eu to lead")
        second = Instance(config, tmp_path, "pw-us", "us-east")
        wait_for(lambda: second.cluster()["role"] == "follower", 30, "pw-us to follow")
        wait_for(lambda: pages_about(slack, "api"), 30, "the page in Slack")
        first.process.send_signal(signal.SIGKILL)  # no shutdown, no goodbye
        killed_at = time.monotonic()
        first.process.wait(10)
        wait_for(lambda: second.cluster()["role"] == "leader", 30, "pw-us to take over")
        takeover = time.monotonic() - killed_at
        print(f"\ntakeover after kill -9: {takeover:.2f} s")
        assert takeover < 15
        view = second.cluster()
        dead = next(i for i in view["instances"] if i["instance"] == "pw-eu")
        assert dead["role"] == "leader" and dead["region"] == "eu-west"  # its last word
        wait_for(lambda: any(b"Target api" in d.body for d in hook.deliveries), 30,
                 "step 2 from the new leader")
        wait_for(lambda: pages_about(slack, "pw-eu"), 30, "the silent-instance page")
        time.sleep(3)  # more evaluation ticks and outbox passes on the new leader
    finally:
        for instance in (first, second):
            if instance is not None:
                instance.stop()
    (page,) = pages_about(slack, "api")  # the page went out once, before the kill
    assert len(slack.replies(str(page["ts"]))) == 1  # step 2's reply, once
    (escalation,) = [d.json() for d in hook.deliveries if b"Target api" in d.body]
    assert escalation["event"] == "escalate"
    assert len(pages_about(slack, "pw-eu")) == 1  # "instance pw-eu is silent", once
    print(f"notifications: {len(slack.calls('chat.postMessage'))} Slack posts, "
          f"{len(hook.deliveries)} webhook deliveries")
