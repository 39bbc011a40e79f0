"""`primewatch run` as a user starts it: a subprocess, a temp config, a real target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import RouteServer, free_port, route_server, send

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, KeyError, IndexError, TypeError) as exc:
            last_error = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


@pytest.fixture
def target() -> Iterator[RouteServer]:
    state = {"status": 200}

    def health(handler: Any) -> None:
        send(handler, state["status"], '{"status": "ok"}' if state["status"] == 200
             else '{"status": "down"}', "application/json")

    with route_server({"/health": health}) as server:
        server.state = state  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def primewatch(tmp_path: Path, target: RouteServer) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
service: {{name: e2e}}
server: {{port: {port}}}
storage: {{url: "sqlite:///{tmp_path}/pw.db", flush_interval: 200ms}}
targets:
  - name: api
    type: http
    url: {target.url}/health
    interval: 1s
    timeout: 500ms
    expect: {{json: {{status: ok}}}}
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99, window: 1d}}
  - {{name: api-latency, target: api, sli: latency, threshold: 400ms, objective: 90, window: 1d}}
alerting: {{evaluate_every: 1s}}
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "primewatch.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config", str(config),
                                "run"], cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, 20, "startup")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    assert process.returncode in (0, -signal.SIGINT), \
        (tmp_path / "primewatch.log").read_text()[-2000:]


def metric(url: str, name: str, **labels: str) -> float | None:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_results_flow_to_api_and_metrics_and_errors_move_the_sli(
        primewatch: str, target: RouteServer) -> None:
    url = primewatch
    assert httpx.get(f"{url}/readyz").status_code == 200
    items = wait_for(lambda: httpx.get(f"{url}/api/v1/targets/api/results").json()["items"],
                     15, "first results")
    assert items[0]["ok"] is True and items[0]["status_code"] == 200
    assert metric(url, "primewatch_probe_success", target="api") == 1.0
    slo = wait_for(lambda: (s := httpx.get(f"{url}/api/v1/slos/api-availability").json())
                   ["total"] >= 3 and s, 15, "events in the SLO")
    assert slo["sli"] == 1.0 and slo["state"] == "ok"
    wait_for(lambda: metric(url, "primewatch_slo_sli_ratio", slo="api-availability") == 1.0,
             10, "SLI in /metrics")

    target.state["status"] = 503  # type: ignore[attr-defined]
    degraded = wait_for(
        lambda: (s := httpx.get(f"{url}/api/v1/slos/api-availability").json())
        ["sli"] < 0.99 and s, 20, "the SLI to fall")
    # Seconds of errors spend a little of the day's budget, not all of it.
    assert 0 < degraded["error_budget_remaining"] < slo["error_budget_remaining"] == 1.0
    assert degraded["burn_rates"]["5m"] > 1
    assert metric(url, "primewatch_probe_success", target="api") == 0.0
    assert metric(url, "primewatch_probes_total", target="api", outcome="http_status") >= 1
    wait_for(lambda: (metric(url, "primewatch_slo_sli_ratio", slo="api-availability") or 1)
             < 0.99, 10, "the SLI in /metrics to fall")
    assert metric(url, "primewatch_results_written_total") >= slo["total"]
    assert metric(url, "primewatch_results_dropped_total") == 0.0
