"""/metrics as Prometheus itself reads it: `promtool check metrics` lints a populated
exposition, and a real Prometheus scraping a real `primewatch run` stores the same SLI and
error budget the API reports.

Both use the Debian `prometheus` package's binaries; without them the tests skip (or fail
under PRIMEWATCH_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import Metrics
from monitor.phases import PhaseStatus, TriggerStatus
from probes.base import ProbeResult
from slo.status import AlertView, SloStatus, WindowStatus
from tests.conftest import make_settings, service_missing
from tests.servers import RouteServer, free_port, route_server, send
from tests.test_end_to_end import ROOT, wait_for

T0 = 1_767_225_600.0
TOLERANCE = 1e-9  # both sides print the same float64; only a tick between reads differs


def binary(name: str) -> str:
    """The Debian package's binary, or skip: these tests need the real tools."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                   else None)
    if found is None:
        service_missing(f"{name} binary not installed (Debian package `prometheus`)")
    assert found is not None
    return found


def promtool_check(exposition: bytes) -> subprocess.CompletedProcess[bytes]:
    """`promtool check metrics` reads the exposition on stdin; lint problems go to stderr."""
    return subprocess.run([binary("promtool"), "check", "metrics"], input=exposition,
                          capture_output=True, timeout=30, check=False)


def populated_metrics() -> Metrics:
    """Every family with at least one series, so promtool sees what a busy service shows."""
    metrics = Metrics(CollectorRegistry())
    settings = make_settings()
    metrics.describe_slos(settings.slos)
    metrics.observe_probe(ProbeResult("api", T0, True, 0.012, status_code=200,
                                      cert_days_left=40.5, values={"cold_start": 1.0}))
    metrics.observe_probe(ProbeResult("api", T0 + 1, False, 0.5, status_code=503,
                                      error_class="http_status"))
    windows = (WindowStatus("5m", 300, 95, 100, 0.95, 5.0),
               WindowStatus("1h", 3600, 990, 1000, 0.99, 1.0))
    metrics.observe_slo(SloStatus(
        "api-availability", "api", "availability", 0.99, 86400, T0, 990, 1000, 0.99, 0.0,
        "ok", windows, window_start=int(T0 - 86400), period_seconds=86400,
        exhaustion_seconds=7200.0, alert=AlertView(severity="page", tier=1, since=T0)))
    metrics.observe_phases(
        [PhaseStatus("launch", "Launch", "met", (("api-availability", "ok"),))],
        [TriggerStatus("signups", "", "launch", True, 120.0, 100.0, "above", 5, T0)])
    metrics.count_events("api-availability", 9, 10)
    metrics.scheduler_lag.observe(0.003)
    metrics.probes_skipped.labels("api").inc()
    metrics.results_written.inc(2)
    metrics.results_buffered.set(3)
    metrics.storage_errors.inc()
    metrics.target_down.labels("api").set(0)
    metrics.incidents_open.labels("page", "triggered").set(1)
    metrics.notifications.labels("slack", "delivered").inc()
    metrics.notifications_pending.set(1)
    return metrics


def test_exposition_passes_promtool_lint() -> None:
    exposition = generate_latest(populated_metrics().registry)
    families = list(text_string_to_metric_families(exposition.decode()))
    assert [f.name for f in families if not f.documentation] == []  # HELP on every metric
    # An empty family would only have its name linted; fail so a new metric gets populated.
    assert [f.name for f in families if not f.samples] == []
    checked = promtool_check(exposition)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b""), \
        (checked.stdout + checked.stderr).decode()


def test_slo_info_describes_each_configured_slo() -> None:
    settings = make_settings(slos=[
        {"name": "checkout", "target": "api", "sli": "availability", "objective": 99.9,
         "window": "30d"},
        {"name": "search-fast", "target": "api", "sli": "latency", "threshold": "200ms",
         "objective": "99.95%", "window": "month", "budgeting": "timeslices"},
    ])
    metrics = Metrics(CollectorRegistry())
    metrics.describe_slos(make_settings().slos)
    metrics.describe_slos(settings.slos)  # a new config replaces the old description
    registry = metrics.registry
    assert registry.get_sample_value("primewatch_slo_info", {
        "slo": "checkout", "target": "api", "sli_kind": "availability", "objective": "0.999",
        "window": "30d", "budgeting": "occurrences"}) == 1.0
    assert registry.get_sample_value("primewatch_slo_info", {
        "slo": "search-fast", "target": "api", "sli_kind": "latency", "objective": "0.9995",
        "window": "month", "budgeting": "timeslices"}) == 1.0
    slos = {s.labels["slo"] for f in registry.collect() if f.name == "primewatch_slo"
            for s in f.samples}
    assert slos == {"checkout", "search-fast"}


def test_tls_certificate_expiry_is_a_timestamp() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.observe_probe(ProbeResult("api", T0, True, 0.01, cert_days_left=2.5))
    assert metrics.registry.get_sample_value(
        "primewatch_probe_tls_cert_expiry_timestamp_seconds", {"target": "api"}) \
        == T0 + 2.5 * 86400


# --- a real Prometheus scraping a real `primewatch run` -------------------------------

SLOW = 0.05  # every answer is slower than the latency SLO's 10ms: its SLI is exactly 0


@pytest.fixture
def target() -> Iterator[RouteServer]:
    """Always 200 (so probe_success is 1), always slow (so one SLO burns: budget -9)."""

    def health(handler: Any) -> None:
        time.sleep(SLOW)
        send(handler, 200, '{"status": "ok"}', "application/json")

    with route_server({"/health": health}) as server:
        yield server


@pytest.fixture
def primewatch(tmp_path: Path, target: RouteServer) -> Iterator[str]:
    """`primewatch run` as a subprocess with a temp config; its base URL."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
service: {{name: metrics-e2e}}
server: {{host: 127.0.0.1, port: {port}}}
storage: {{url: "sqlite:///{tmp_path}/pw.db", flush_interval: 200ms}}
targets:
  - {{name: api, type: http, url: "{target.url}/health", interval: 1s, timeout: 2s}}
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99, window: 1d}}
  - {{name: api-latency, target: api, sli: latency, threshold: 10ms, objective: 90,
     window: 1d}}
alerting: {{evaluate_every: 1s}}
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "primewatch.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config",
                                    str(config), "run"], cwd=tmp_path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _exited(process, log_path)
                 or httpx.get(f"{url}/healthz", trust_env=False).status_code == 200,
                 30, "primewatch to start")
        yield url
    finally:
        _stop(process, signal.SIGINT)
    assert process.returncode in (0, -signal.SIGINT), log_path.read_text()[-2000:]


def _stop(process: subprocess.Popen[Any], signal_: signal.Signals) -> None:
    """Ask the process to stop with `signal_`; kill it if it has not within 10 s."""
    process.send_signal(signal_)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _exited(process: subprocess.Popen[Any], log: Path) -> bool:
    """Fail at once, with the log, instead of waiting out the timeout for a dead process."""
    if process.poll() is not None:
        pytest.fail(f"process exited with {process.returncode}: {log.read_text()[-2000:]}")
    return False


@dataclass
class Prometheus:
    """A running Prometheus and a client for its query API."""

    url: str
    client: httpx.Client

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {...}, "value": [ts, "1.5"]}, ...]."""
        answer = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
        answer.raise_for_status()
        data = answer.json()
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single series' value, or None while Prometheus has not scraped it yet."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(tmp_path: Path, primewatch: str) -> Iterator[Prometheus]:
    """Prometheus on loopback scraping primewatch's /metrics every second."""
    executable = binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: primewatch\n"
        f"    static_configs: [{{targets: ['{primewatch.removeprefix('http://')}']}}]\n")
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [executable, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(timeout=5, trust_env=False)
    server = Prometheus(f"http://127.0.0.1:{port}", client)
    try:
        wait_for(lambda: _exited(process, log_path) or _scraped(server), 30,
                 "Prometheus to scrape primewatch")
        yield server
    finally:
        client.close()
        _stop(process, signal.SIGTERM)


def _scraped(server: Prometheus) -> bool:
    try:
        return server.value('up{job="primewatch"}') == 1.0
    except ValueError:  # not answering JSON yet
        return False


def _agree(prometheus: Prometheus, api: httpx.Client, slo: str) -> dict[str, Any] | None:
    """The API's SLO status when Prometheus holds the same SLI and budget, else None.

    The API evaluates on request while the gauges hold the last tick's result, so read the
    API on both sides of the query: if they differ, an event landed between; try again.
    """
    before = api.get(f"/api/v1/slos/{slo}").json()
    sli = prometheus.value(f'primewatch_slo_sli_ratio{{slo="{slo}"}}')
    budget = prometheus.value(f'primewatch_slo_error_budget_remaining_ratio{{slo="{slo}"}}')
    after = api.get(f"/api/v1/slos/{slo}").json()
    fields = ("sli", "error_budget_remaining")
    if sli is None or budget is None or before["sli"] is None \
            or [before[f] for f in fields] != [after[f] for f in fields]:
        return None
    # A probe a second lands between the tick the gauges show and the API's own read:
    # on a busy machine the two rarely line up exactly, so the budget may differ by the
    # share of a couple of events (what a tick or a scrape behind amounts to), no more.
    allowed = (1 - after["objective"]) * after["error_budget"]["expected_events"]
    if abs(sli - after["sli"]) > TOLERANCE + 2 / max(after["total"], 1) \
            or abs(budget - after["error_budget_remaining"]) > TOLERANCE + 2 / allowed:
        return None
    return dict(after)


def test_prometheus_stores_what_the_api_reports(primewatch: str,
                                                prometheus: Prometheus) -> None:
    with httpx.Client(base_url=primewatch, timeout=5, trust_env=False) as api:
        available = wait_for(lambda: _agree(prometheus, api, "api-availability"), 30,
                             "Prometheus' availability SLI and budget to equal the API's")
        slow = wait_for(lambda: _agree(prometheus, api, "api-latency"), 30,
                        "Prometheus' latency SLI and budget to equal the API's")
        assert (available["sli"], available["error_budget_remaining"]) == (1.0, 1.0)
        assert slow["sli"] == 0.0
        # Every probe is slow: all bad, against 10% of the events the day is expected
        # to hold (the 1 s schedule's count), not of the few seen so far.
        budget = slow["error_budget"]
        assert slow["error_budget_remaining"] == pytest.approx(
            1 - budget["spent_bad"] / (0.1 * budget["expected_events"]))
        assert budget["spent_bad"] == slow["total"] > 0

        assert prometheus.value('primewatch_probe_success{target="api"}') == 1.0

        info = {s["metric"]["slo"]: s for s in prometheus.query("primewatch_slo_info")}
        assert set(info) == {"api-availability", "api-latency"}
        labels = info["api-latency"]["metric"]
        assert {k: labels[k] for k in ("target", "sli_kind", "objective", "window",
                                       "budgeting")} == {
            "target": "api", "sli_kind": "latency", "objective": "0.9", "window": "1d",
            "budgeting": "occurrences"}
        assert info["api-availability"]["metric"]["objective"] == "0.99"
        assert all(float(s["value"][1]) == 1.0 for s in info.values())

        events = {(s["metric"]["slo"], s["metric"]["result"]): float(s["value"][1])
                  for s in prometheus.query("primewatch_slo_ingested_events_total")}
        assert events[("api-availability", "bad")] == 0
        assert events[("api-latency", "good")] == 0
        stored = api.get("/api/v1/slos/api-availability").json()["total"]
        # counters scraped earlier than this read: never more than storage now holds
        assert 1 <= events[("api-availability", "good")] <= stored
        assert 1 <= events[("api-latency", "bad")] <= stored

        live = promtool_check(api.get("/metrics").content)
        assert (live.returncode, live.stdout, live.stderr) == (0, b"", b""), \
            (live.stdout + live.stderr).decode()
