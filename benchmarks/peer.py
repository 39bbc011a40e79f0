"""The peer side: Prometheus + blackbox_exporter probing the same targets on the same core.

Why measured in the same run: the issue's CPU goal is relative ("CPU per probe ≤ 1.0×
the peer's"). A peer figure from another day on a shared VM is not a fair denominator,
so the peer runs here, against the same target server, at the same rate, pinned to the
same CPU, right before or after primewatch. It follows `/work/shared/peerbench`
(`peer_bench.py`, `gen_prom.py`, `blackbox.yml`): Prometheus scrapes blackbox's
`/probe?module=http_2xx&target=<url>` once per target per interval and stores ~20
series per probe in its TSDB; blackbox opens a fresh TCP connection per probe — like
primewatch's default — so both sides pay for "probe + store + export".

Figures, over the window after warm-up (same keys as the Python children where the
meaning is the same):
  * probes — requests the target server counted in the window (its `/_stats`);
  * CPU — utime+stime of both processes from /proc, split prom / bb;
  * peak RSS — VmHWM of prom + bb (the peer's footprint is both processes);
  * interval jitter — `prometheus_target_interval_length_seconds` quantiles: the spread
    of the actual interval between consecutive scrapes of one target. Prometheus has no
    planned-start lag, so this is *not* comparable to primewatch's lag; the benchmark
    computes the same interval jitter for the Python sides to compare like with like.
    The summary covers Prometheus' last 10 minutes, i.e. warm-up included;
  * failures — failed scrapes plus `probe_success == 0` samples in the window.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procs import cpu_busy_s, free_port, proc_affinity, proc_cpu_s, proc_status_mb, spawn, stop
from targets import HOST

PROMETHEUS = "/usr/bin/prometheus"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
JOB = "bb"
_INTERVAL_QUANTILE = re.compile(
    r'^prometheus_target_interval_length_seconds\{interval="[^"]*",quantile="([^"]+)"\} (\S+)$')


def available() -> str | None:
    """None when both binaries are installed, else why the peer cannot run."""
    missing = [p for p in (PROMETHEUS, BLACKBOX) if not Path(p).is_file()]
    if missing:
        return ("not installed: " + ", ".join(missing)
                + " (Debian: apt-get install prometheus prometheus-blackbox-exporter)")
    return None


def duration(seconds: float) -> str:
    """A Prometheus duration; whole milliseconds, because `12.5s` is not valid there."""
    return f"{max(1, round(seconds * 1000))}ms"


def blackbox_config(timeout: float) -> str:
    """peerbench's `blackbox.yml` with the benchmark's probe timeout."""
    return (
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        f"    timeout: {duration(timeout)}\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"
        "      valid_status_codes: []   # defaults to 2xx\n"
        "      method: GET\n"
    )


def prometheus_config(urls: list[str], interval: float, timeout: float,
                      blackbox_port: int) -> str:
    """peerbench's `gen_prom.py`: one static target per URL, relabelled onto blackbox."""
    targets = "\n".join(f"          - {url}" for url in urls)
    return f"""global:
  scrape_interval: {duration(interval)}
  scrape_timeout: {duration(min(timeout + 0.5, interval))}
  evaluation_interval: 60s
scrape_configs:
  - job_name: {JOB}
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets:
{targets}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {HOST}:{blackbox_port}
"""


def _get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


class Peer:
    """A running prometheus + blackbox_exporter pair; `close` stops both and cleans up."""

    def __init__(self, urls: list[str], interval: float, timeout: float, cpu: int) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="primewatch-peer-"))
        self.blackbox_port, self.prometheus_port = free_port(), free_port()
        (self.workdir / "blackbox.yml").write_text(blackbox_config(timeout))
        (self.workdir / "prometheus.yml").write_text(
            prometheus_config(urls, interval, timeout, self.blackbox_port))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            self._log_bb = open(self.workdir / "blackbox.log", "wb")  # noqa: SIM115
            self._log_prom = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115
            self.processes["bb"] = spawn(
                [BLACKBOX, f"--config.file={self.workdir / 'blackbox.yml'}",
                 f"--web.listen-address={HOST}:{self.blackbox_port}", "--log.level=warn"],
                cpu=cpu, stdout=self._log_bb, stderr=subprocess.STDOUT)
            self.processes["prom"] = spawn(
                [PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address={HOST}:{self.prometheus_port}", "--log.level=warn"],
                cpu=cpu, stdout=self._log_prom, stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    def _wait_ready(self, limit: float = 60.0) -> None:
        """Until both answer their health endpoints (start-up is not part of warm-up)."""
        deadline = time.monotonic() + limit
        checks = {"bb": f"http://{HOST}:{self.blackbox_port}/-/healthy",
                  "prom": f"http://{HOST}:{self.prometheus_port}/-/ready"}
        while checks:
            for name, url in list(checks.items()):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited at start-up:\n{self.log_tail(name)}")
                try:
                    _get(url, timeout=2)
                    del checks[name]
                except OSError:
                    pass
            if checks and time.monotonic() > deadline:
                raise RuntimeError(f"peer not ready after {limit:g}s: {sorted(checks)}")
            if checks:
                time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / ("blackbox.log" if name == "bb" else "prometheus.log")
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu(self) -> dict[str, float]:
        return {name: proc_cpu_s(pid) for name, pid in self.pids.items()}

    def status_mb(self, key: str) -> dict[str, float]:
        return {name: proc_status_mb(pid, key) for name, pid in self.pids.items()}

    def query(self, expr: str, at: float) -> float | None:
        """One instant query; the first value (None if the result is empty)."""
        url = (f"http://{HOST}:{self.prometheus_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}))
        result = json.loads(_get(url))["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def self_metrics(self) -> str:
        return _get(f"http://{HOST}:{self.prometheus_port}/metrics")

    def close(self) -> None:
        """Stop both (Prometheus may take a few seconds to close its TSDB) and clean up."""
        for name in ("prom", "bb"):
            if name in self.processes:
                stop(self.processes[name], grace=15.0)
        for attr in ("_log_bb", "_log_prom"):
            log = getattr(self, attr, None)
            if log is not None:
                log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def interval_quantiles(exposition: str) -> dict[str, float]:
    """`prometheus_target_interval_length_seconds` quantiles from Prometheus' /metrics."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        match = _INTERVAL_QUANTILE.match(line)
        if match and match.group(2) != "NaN":
            found[match.group(1)] = float(match.group(2))
    return found


def _metric(exposition: str, name: str) -> float | None:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def run_peer(urls: list[str], interval: float, *, warmup: float, duration_s: float,
             timeout: float, cpu: int, server_stats: Callable[[], dict[str, Any]],
             progress: Callable[[str], None]) -> dict[str, Any]:
    """Start the peer, wait out the warm-up, measure one window, stop it."""
    started = time.monotonic()
    peer = Peer(urls, interval, timeout, cpu)
    try:
        startup_s = time.monotonic() - started
        progress(f"  peer ready in {startup_s:.1f}s (prom pid {peer.pids['prom']}, "
                 f"bb pid {peer.pids['bb']}, pinned to {proc_affinity(peer.pids['prom'])})")
        first_s = _wait_all_scraped(peer, len(urls), limit=10 + 2 * interval + 30)
        progress(f"  peer scraped all {len(urls)} targets once after {first_s:.1f}s; "
                 f"{warmup:g}s warm-up ...")
        time.sleep(warmup)
        stats0, cpu0, wall0, busy0 = server_stats(), peer.cpu(), time.time(), cpu_busy_s(cpu)
        rss_peak = {"prom": 0.0, "bb": 0.0}
        deadline = time.monotonic() + duration_s
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            for name, mb in peer.status_mb("VmRSS").items():
                rss_peak[name] = max(rss_peak[name], mb)
        cpu1, wall1, busy1, stats1 = peer.cpu(), time.time(), cpu_busy_s(cpu), server_stats()
        for name in rss_peak:
            if peer.processes[name].poll() is not None:
                raise RuntimeError(f"{name} died during the window:\n{peer.log_tail(name)}")
        hwm = peer.status_mb("VmHWM")
        window = wall1 - wall0
        probes = stats1["requests"] - stats0["requests"]
        cpu_s = {name: cpu1[name] - cpu0[name] for name in cpu1}
        total_cpu = sum(cpu_s.values())
        result: dict[str, Any] = {
            "kind": "peer",
            "window_s": round(window, 3),
            "probes": probes,
            "achieved_rate": round(probes / window, 2),
            "cpu_s": round(total_cpu, 3),
            "cpu_ms_per_probe": round(1000 * total_cpu / max(probes, 1), 3),
            "cpu_ms_per_probe_prom": round(1000 * cpu_s["prom"] / max(probes, 1), 3),
            "cpu_ms_per_probe_bb": round(1000 * cpu_s["bb"] / max(probes, 1), 3),
            "core_util": round(total_cpu / window, 3),
            # Other processes' share of the prober CPU in the window (this benchmark's
            # parent is unpinned and mostly asleep, so it hardly counts).
            "foreign_cpu_util": round(max(0.0, busy1 - busy0 - total_cpu) / window, 3),
            "maxrss_mb": round(hwm["prom"] + hwm["bb"], 1),
            "maxrss_mb_prom": round(hwm["prom"], 1),
            "maxrss_mb_bb": round(hwm["bb"], 1),
            "rss_window_max_mb_prom": round(rss_peak["prom"], 1),
            "rss_window_max_mb_bb": round(rss_peak["bb"], 1),
            "startup_s": round(startup_s, 2),
            "all_scraped_after_s": round(first_s, 2),
            "affinity": proc_affinity(peer.pids["prom"]),
            "server_requests": probes,
            "server_connections_per_request": round(
                (stats1["connections"] - stats0["connections"]) / max(probes, 1), 3),
            "server_cpu_ms_per_request": round(
                1000 * (stats1["cpu_s"] - stats0["cpu_s"]) / max(probes, 1), 3),
        }
        # Scrapes started in the window are appended when they finish: let them land
        # before counting, or two queries over "the same" range see different samples.
        time.sleep(timeout + 1.0)
        result.update(_scrape_health(peer, wall1, window, interval, len(urls)))
        return result
    finally:
        peer.close()


def _wait_all_scraped(peer: Peer, targets: int, limit: float) -> float:
    """Seconds until every target has been scraped once.

    Why: Prometheus applies new targets only on its scrape manager's 5 s reload tick and
    then spreads first scrapes over one interval, so a fixed warm-up would sometimes
    measure a peer still ramping up (a low probe count, not a cheap peer).
    """
    begun = time.monotonic()
    while time.monotonic() - begun < limit:
        seen = peer.query(f'count(up{{job="{JOB}"}})', time.time())
        if seen is not None and seen >= targets:
            return time.monotonic() - begun
        time.sleep(1.0)
    raise RuntimeError(f"the peer had not scraped all {targets} targets after {limit:g}s")


def _scrape_health(peer: Peer, at: float, window: float, interval: float,
                   targets: int) -> dict[str, Any]:
    """After the window (so the queries' CPU is not counted): failures, jitter, series."""
    w = f"{max(1, math.floor(window))}s"
    scrapes = peer.query(f'sum(count_over_time(up{{job="{JOB}"}}[{w}]))', at) or 0.0
    scrapes_ok = peer.query(f'sum(sum_over_time(up{{job="{JOB}"}}[{w}]))', at) or 0.0
    probed = peer.query(f"sum(count_over_time(probe_success[{w}]))", at) or 0.0
    probed_ok = peer.query(f"sum(sum_over_time(probe_success[{w}]))", at) or 0.0
    duration_p99 = peer.query(
        f'quantile(0.99, max_over_time(scrape_duration_seconds{{job="{JOB}"}}[{w}]))', at)
    exposition = peer.self_metrics()
    quantiles = interval_quantiles(exposition)
    p1, p50, p99 = (quantiles.get(q) for q in ("0.01", "0.5", "0.99"))
    jitter = None
    if p1 is not None and p99 is not None:
        jitter = 1000 * max(p99 - interval, interval - p1)
    failed_scrapes = max(0, round(scrapes - scrapes_ok))
    failed_probes = max(0, round(probed - probed_ok))
    failures = failed_scrapes + failed_probes
    return {
        "failures": failures,
        "failure_classes": {"failed_scrapes": failed_scrapes,
                            "probe_success_0": failed_probes} if failures else {},
        "targets_up": peer.query(f'sum(up{{job="{JOB}"}})', at),
        "targets_total": targets,
        "scrapes_in_window": int(scrapes),
        "scrapes_expected": round(targets * window / interval),
        "scrape_duration_p99_ms": None if duration_p99 is None
        else round(1000 * duration_p99, 2),
        "interval_quantiles_s": quantiles,
        "interval_p1_s": p1, "interval_p50_s": p50, "interval_p99_s": p99,
        "interval_jitter_ms": None if jitter is None else round(jitter, 3),
        # The peer's own schedule-precision figure; it has no planned start, hence no lag.
        "schedule_p99_ms": None if jitter is None else round(jitter, 3),
        "tsdb_head_series": _metric(exposition, "prometheus_tsdb_head_series"),
    }
