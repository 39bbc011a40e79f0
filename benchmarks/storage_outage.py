"""PostgreSQL stopped for a minute while `primewatch run` probes: is anything lost?

    python benchmarks/storage_outage.py                    # 20 targets @0.5s, 60 s outage
    python benchmarks/storage_outage.py --outage 10        # a quick check
    python benchmarks/storage_outage.py --max-buffer 100000  # no spill: all in memory

It stops the machine's real cluster (`pg_ctlcluster ... stop`) — every other user of
that PostgreSQL loses it for the outage too — and always starts it again, also on
Ctrl-C or an error. Needs root and Debian's postgresql-common. It uses (and empties) a
scratch database, created if missing.

Figures: produced = requests the loopback targets answered (one per probe, counted by
the target server, independent of primewatch); written = rows in probe_results; spilled
and peak buffered from primewatch's /metrics, sampled every 0.2 s; time to drain = from
`pg_isready` succeeding to the spill file written back and the buffer at its normal
level. The last line says PASS when written == produced and no row is stored twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import RouteServer, free_port, route_server, send  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/primewatch_outage_bench"


@dataclass
class Figures:
    """What one outage cost; `lost` and `duplicates` must be 0."""

    targets: int
    interval: float
    outage_s: float
    produced: int = 0
    written: int = 0
    duplicates: int = 0
    spilled: float = 0.0
    replayed: float = 0.0
    dropped: float = 0.0
    peak_buffered: float = 0.0
    peak_spill_bytes: float = 0.0
    storage_errors: float = 0.0
    drain_s: float | None = None
    readyz_during: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.produced - self.written

    def lines(self) -> list[str]:
        drain = "never" if self.drain_s is None else f"{self.drain_s:.1f} s"
        return [
            f"PostgreSQL stopped {self.outage_s:.0f} s, {self.targets} targets every "
            f"{self.interval:g} s",
            f"  produced   {self.produced:8d} results (requests the targets answered)",
            f"  written    {self.written:8d} rows in probe_results "
            f"({self.duplicates} stored twice)",
            f"  lost       {self.lost:8d}",
            f"  spilled    {self.spilled:8.0f} to the spill file "
            f"(peak {self.peak_spill_bytes / 1024:.0f} KiB), {self.replayed:.0f} replayed",
            f"  dropped    {self.dropped:8.0f}",
            f"  peak buffered {self.peak_buffered:5.0f} results in memory",
            f"  write errors  {self.storage_errors:5.0f} (retried with backoff)",
            f"  time to drain after pg_isready: {drain}",
            f"  /readyz during the outage: {', '.join(sorted(set(self.readyz_during)))}",
        ]


class Cluster:
    """The machine's PostgreSQL cluster, driven by postgres-common's pg_ctlcluster."""

    def __init__(self, port: int = 5432) -> None:
        versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() \
            else []
        self.version = versions[-1] if versions else ""
        self.port = port

    @staticmethod
    def unavailable() -> str | None:
        """Why the real cluster cannot be stopped here, or None."""
        if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
            return "pg_ctlcluster/pg_isready not installed (Debian postgresql-common)"
        if os.geteuid() != 0:
            return "stopping the cluster needs root"
        if not Path("/etc/postgresql").is_dir() or not os.listdir("/etc/postgresql"):
            return "no cluster under /etc/postgresql"
        return None

    def _ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main",
                        action], check=True, timeout=120, capture_output=True)

    def ready(self) -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              check=False, timeout=10).returncode == 0

    def stop(self) -> None:
        self._ctl("stop")

    def start(self, timeout: float = 60.0) -> None:
        """Start (if not running) and wait until it accepts connections."""
        if not self.ready():
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version,
                            "main", "start"], check=False, timeout=120, capture_output=True)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not come back")
            time.sleep(0.2)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Stopped inside the block; started again on the way out, whatever happened."""
        try:
            self.stop()
            yield
        finally:
            self.start()


class Watcher:
    """Reads primewatch's /metrics and /readyz: the last values seen, and the peaks."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.last: dict[str, float] = {}
        self.peak_buffered = 0.0
        self.peak_spill_bytes = 0.0

    def scrape(self) -> dict[str, float] | None:
        """Unlabelled samples (the ones this benchmark reads); None if no answer."""
        try:
            answer = httpx.get(f"{self.base}/metrics", timeout=5, trust_env=False)
        except httpx.HTTPError:
            return None
        values = {s.name: s.value for family in text_string_to_metric_families(answer.text)
                  for s in family.samples if not s.labels}
        self.last.update(values)
        self.peak_buffered = max(self.peak_buffered,
                                 values.get("primewatch_results_buffered", 0.0))
        self.peak_spill_bytes = max(self.peak_spill_bytes,
                                    values.get("primewatch_spill_bytes", 0.0))
        return values

    def written(self) -> float:
        values = self.scrape() or {}
        return values.get("primewatch_results_written_total", 0.0)

    def drained(self, max_buffer: int) -> bool:
        """Storage up, spill file written back, buffer back at its everyday level."""
        values = self.scrape()
        return values is not None and values.get("primewatch_storage_up") == 1 \
            and values.get("primewatch_spill_results", 0) == 0 \
            and values.get("primewatch_results_buffered", 0) < min(max_buffer, 100)

    def readyz(self) -> str:
        try:
            answer = httpx.get(f"{self.base}/readyz", timeout=5, trust_env=False)
            return f"{answer.json()['status']} ({answer.status_code})"
        except (httpx.HTTPError, ValueError, KeyError):
            return "no answer"


def reset_database(url: str) -> None:
    """An empty scratch database: created if missing, public schema emptied."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                        {"n": parsed.database}).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(parsed)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def stored(url: str) -> tuple[int, int]:
    """Rows in probe_results, and how many of them repeat a (target, started_at)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            total, distinct = connection.execute(text(
                "SELECT count(*), count(DISTINCT (target, started_at)) FROM probe_results"
            )).one()
    finally:
        engine.dispose()
    return int(total), int(total) - int(distinct)


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check` held; raise after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def write_config(workdir: Path, url: str, targets: RouteServer, count: int, interval: float,
                 max_buffer: int, port: int) -> Path:
    lines = "\n".join(f'  - {{name: t{i}, type: http, url: "{targets.url}/t/{i}", '
                      f'interval: {interval}s, timeout: 2s}}' for i in range(count))
    slos = "\n".join(f"  - {{name: t{i}-availability, target: t{i}, sli: availability, "
                     f"objective: 99, window: 1d}}" for i in range(count))
    config = workdir / "config.yaml"
    config.write_text(f"""
service: {{name: storage-outage}}
server: {{host: 127.0.0.1, port: {port}}}
storage: {{url: "{url}", max_buffer: {max_buffer}, spill_path: "{workdir}/spill.jsonl"}}
targets:
{lines}
slos:
{slos}
alerting: {{evaluate_every: 5s}}
""")
    return config


def run_outage(url: str, *, outage: float = 60.0, targets: int = 20, interval: float = 0.5,
               max_buffer: int = 500, workdir: Path, cluster: Cluster | None = None,
               progress: Callable[[str], None] = lambda _: None) -> Figures:
    """Probe with a real `primewatch run`, stop PostgreSQL for `outage` seconds, start it,
    wait for the backlog to drain, stop primewatch and count. `url` must name an empty
    database (tables are created by `primewatch run`)."""
    cluster = cluster or Cluster(make_url(url).port or 5432)
    figures = Figures(targets, interval, outage)
    port = free_port()
    watcher = Watcher(f"http://127.0.0.1:{port}")
    routes = {f"/t/{i}": (lambda h: send(h, 200, "ok")) for i in range(targets)}
    with route_server(routes) as server:
        config = write_config(workdir, url, server, targets, interval, max_buffer, port)
        log_path = workdir / "primewatch.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "--config", str(config), "run"],
                cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                stderr=subprocess.STDOUT)
        sampling = threading.Event()
        try:
            wait(lambda: watcher.written() > 0, 60, "primewatch to store its first results")
            time.sleep(3)  # steady state before the outage

            def sample() -> None:
                while not sampling.wait(0.2):
                    watcher.scrape()

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            progress(f"stopping PostgreSQL {cluster.version}/main for {outage:g} s")
            with cluster.stopped():
                deadline = time.monotonic() + outage
                while time.monotonic() < deadline:
                    figures.readyz_during.append(watcher.readyz())
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            progress("PostgreSQL is back; waiting for the backlog to drain")
            figures.drain_s = wait(lambda: watcher.drained(max_buffer), 600,
                                   "the buffer and spill file to drain")
            time.sleep(2)
            watcher.scrape()  # the counters, as close to the end as the process allows
        finally:
            sampling.set()
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        figures.produced = sum(server.hits.get(f"/t/{i}", 0) for i in range(targets))
    figures.written, figures.duplicates = stored(url)
    for name, attribute in (("primewatch_results_spilled_total", "spilled"),
                            ("primewatch_results_replayed_total", "replayed"),
                            ("primewatch_results_dropped_total", "dropped"),
                            ("primewatch_storage_write_errors_total", "storage_errors")):
        setattr(figures, attribute, watcher.last.get(name, 0.0))
    figures.peak_buffered = watcher.peak_buffered
    figures.peak_spill_bytes = watcher.peak_spill_bytes
    if process.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"primewatch exited with {process.returncode}: "
                           f"{log_path.read_text()[-2000:]}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help="scratch database (created if missing, emptied)")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds stopped")
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds per probe")
    parser.add_argument("--max-buffer", type=int, default=500,
                        help="storage.max_buffer (small, so the outage spills to disk)")
    args = parser.parse_args()
    reason = Cluster.unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    reset_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="primewatch-outage-") as workdir:
        figures = run_outage(args.database_url, outage=args.outage, targets=args.targets,
                             interval=args.interval, max_buffer=args.max_buffer,
                             workdir=Path(workdir), progress=print)
    print("\n".join(figures.lines()))
    print({k: v for k, v in asdict(figures).items() if k != "readyz_during"})
    ok = figures.lost == 0 and figures.duplicates == 0
    print("PASS: 0 lost, 0 stored twice" if ok else
          f"FAIL: {figures.lost} lost, {figures.duplicates} stored twice")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
