"""Hostile soak: do hostile answers cost any other target a stored result, on PostgreSQL?

The security issue's acceptance criterion: "A target answering with NUL bytes, invalid
UTF-8 and 1 MB error strings for 10 minutes on PostgreSQL loses no result of any other
target." Before monitor/storage/sanitize.py, one NUL in an error string made PostgreSQL
refuse the whole batch, which the sink retried forever: every target went blind.

This starts a loopback HTTP server (a child of this script) answering `--healthy` well-
behaved paths and the hostile ones below, then a real `primewatch run` (as a subprocess,
its log in the temporary working directory) probing all of them every 2 s into a scratch
PostgreSQL database, with one availability SLO on a healthy and one on a hostile target
so the evaluation path reads hostile rows too. Hostile paths:

* /nul            {"status":"bad\\u0000value"}: a real NUL once parsed, quoted in the error
* /surrogate      {"status":"bad\\ud800value"}: a lone surrogate, not encodable as UTF-8
* /invalid-utf8   raw bytes b'{"status":"bad\\xff\\xfe\\xc3value"}'
* /huge           a 1 MB JSON string value (under the probe's 1 MiB max_body)
* /nul-header     a header value with NUL and bytes over 0x7f (h11 refuses the response)
* /odd-header     a header value with control bytes and bytes over 0x7f (recorded)
* /slow-huge      1 MB of NUL bytes as text/plain, status 500, dripped over ~1 s

Every 30 s it prints the rows stored so far per class and /readyz. At the end it scrapes
/metrics (per-target `primewatch_probes_total` and the time of each target's last counted
probe), stops primewatch with SIGTERM and waits for its graceful exit (buffered results
are flushed), then counts each target's rows that started up to that last counted probe:
probes run − those rows = results lost. Rows started after the scrape are shown apart.

A measurement, not a test: exit 0 after a completed run whatever it finds, 1 when
primewatch (or the target server) does not start. All traffic stays on 127.0.0.1; the
caller's PRIMEWATCH_/PRIMETRADE_/PG* settings, channel credentials and proxies are
dropped; every child is stopped and the scratch database dropped at the end, also on
Ctrl-C or SIGTERM (`--keep-db` keeps the database and the working directory).

    python benchmarks/hostile_soak.py                   # 10 minutes, 20 healthy targets
    python benchmarks/hostile_soak.py --minutes 1.5     # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from demo_quiet import metric_samples
from procs import ROOT, free_port, spawn, stop, stop_all
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from monitor.config import ApiToken

HOST = "127.0.0.1"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 90.0  # seconds for primewatch to answer /healthz
STOP_GRACE = 40.0  # SIGTERM → exit: probes (5 s) and the sink's flush (10 s) may take it
PROGRESS_EVERY = 30.0
SCRAPE_TRIES, SCRAPE_RETRY_S = 5, 1.2  # /metrics renders anew after 1 s (metrics_snapshot)
INTERVAL = "2s"
INTERVAL_S = 2.0
TIMEOUT = "5s"
MB = 1_000_000  # "1 MB": under the http probe's default max_body of 1 MiB
DRIP_CHUNKS, DRIP_PAUSE = 20, 0.05  # /slow-huge: 20 chunks 50 ms apart
ERROR_LINES = 8
DROPPED_ENV = ("PRIMEWATCH_", "PRIMETRADE_", "SLACK_", "PAGERDUTY_", "SENTRY_", "SMTP_", "PG")
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
HEALTHY = "healthy"
HOSTILE_PATHS = ("nul", "surrogate", "invalid-utf8", "huge", "nul-header", "odd-header",
                 "slow-huge")
"""Each served at /<name> and probed as target `hostile-<name>`."""
RESULTS_DIR = ROOT / "benchmarks" / "results"


# --- the target server (this file run with --serve PORT) ------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    header: bytes = b""  # one raw extra header line, without CRLF
    drip: bool = False


def answers() -> dict[str, Answer]:
    """Path → answer; bodies are built once (two of them are 1 MB)."""
    ok = b'{"status":"ok"}'
    return {
        "/nul": Answer(200, b'{"status":"bad\\u0000value"}'),
        "/surrogate": Answer(200, b'{"status":"bad\\ud800value"}'),
        "/invalid-utf8": Answer(200, b'{"status":"bad\xff\xfe\xc3value"}'),
        "/huge": Answer(200, b'{"status":"' + b"x" * MB + b'"}'),
        "/nul-header": Answer(200, ok, header=b"X-Odd: bad\x00\xff\xfe\xc3value"),
        "/odd-header": Answer(200, ok, header=b"X-Odd: bad\x01\x1b\x7f\xff\xfe\xc3value"),
        "/slow-huge": Answer(500, b"\x00" * MB, "text/plain", drip=True),
        HEALTHY: Answer(200, ok),
    }


async def serve(port: int) -> None:
    """HTTP/1.1 by hand (asyncio streams), one request per connection: only raw writes
    can send bytes no HTTP library would."""
    table = answers()
    reasons = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].decode("ascii", "replace")
            answer = table[HEALTHY] if path.startswith("/healthy/") else \
                table.get(path, Answer(404, b'{"status":"no such path"}'))
            lines = [f"HTTP/1.1 {answer.status} {reasons[answer.status]}".encode(),
                     f"Content-Type: {answer.content_type}".encode(),
                     f"Content-Length: {len(answer.body)}".encode(), b"Connection: close"]
            writer.write(b"\r\n".join([*lines, *([answer.header] if answer.header else [])])
                         + b"\r\n\r\n")
            if answer.drip:
                step = len(answer.body) // DRIP_CHUNKS
                for start in range(0, len(answer.body), step):
                    writer.write(answer.body[start:start + step])
                    await writer.drain()
                    await asyncio.sleep(DRIP_PAUSE)
            else:
                writer.write(answer.body)
            await writer.drain()
        except (OSError, TimeoutError, IndexError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass  # a probe that gave up (timeout) or a malformed request
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, port, backlog=256)
    async with server:
        await server.serve_forever()


# --- configuration, database, processes -----------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="how long primewatch probes once it answers (default 10)")
    parser.add_argument("--healthy", type=int, default=20, metavar="N",
                        help="well-behaved targets next to the hostile ones (default 20)")
    parser.add_argument("--keep-db", action="store_true",
                        help="keep the scratch database and the working directory "
                             "(config, primewatch log) and print where they are")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                        help="server to create the scratch database on (default: "
                             "%(default)s; its database part is replaced)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the target server
    opts = parser.parse_args(argv)
    if opts.serve is None and (opts.minutes <= 0 or opts.healthy < 1):
        parser.error("--minutes must be positive and --healthy at least 1")
    return opts


def child_env() -> dict[str, str]:
    """The caller's environment minus anything that could reach off the machine or
    change primewatch's settings."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(DROPPED_ENV) and key.lower() not in PROXIES
           and key != "REDIS_URL"}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def write_config(path: Path, *, healthy: int, server_port: int, port: int, db_url: str,
                 token: str, spill: Path) -> None:
    targets: list[dict[str, Any]] = [
        {"name": f"{HEALTHY}-{i:02d}", "type": "http",
         "url": f"http://{HOST}:{server_port}/healthy/{i}", "interval": INTERVAL,
         "timeout": TIMEOUT, "expect": {"status": [200], "json": {"status": "ok"}}}
        for i in range(healthy)]
    targets += [
        {"name": f"hostile-{name}", "type": "http", "url": f"http://{HOST}:{server_port}/{name}",
         "interval": INTERVAL, "timeout": TIMEOUT, "expect": {"json": {"status": "ok"}},
         "record_headers": ["x-odd"]}
        for name in HOSTILE_PATHS]
    slos = [{"name": f"{target}-availability", "target": target, "sli": "availability",
             "objective": 99, "window": "1d"} for target in (f"{HEALTHY}-00", "hostile-nul")]
    config = {
        "service": {"name": "hostile soak", "environment": "bench"},
        "server": {"host": HOST, "port": port, "public_url": f"http://{HOST}:{port}",
                   "tokens": [{"name": "soak", "token_hash": ApiToken.hash(token),
                               "scope": "write"}]},
        "storage": {"url": db_url, "spill_path": str(spill)},
        "targets": targets,
        "slos": slos,
        "alerting": {"evaluate_every": "15s"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def admin_engine(url: str) -> Engine:
    """AUTOCOMMIT on the server's `postgres` database: CREATE/DROP DATABASE need both."""
    admin_url = make_url(url).set(database="postgres", drivername="postgresql+psycopg")
    return create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1,
                         connect_args={"connect_timeout": 5})


def drop_database(url: str, name: str) -> None:
    engine = admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def create_database(url: str, name: str) -> str:
    """A fresh scratch database; its URL."""
    drop_database(url, name)
    engine = admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(url).set(database=name, drivername="postgresql+psycopg") \
        .render_as_string(hide_password=False)


def wait_answering(client: httpx.Client, path: str, process: subprocess.Popen[bytes],
                   timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if client.get(path, timeout=2).status_code == 200:
                return True
        time.sleep(0.3)
    return False


def log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- measuring ------------------------------------------------------------------------

def target_class(target: str) -> str:
    return HEALTHY if target.startswith(HEALTHY + "-") else target


def rows_per_target(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        return Counter({target: count for target, count in connection.execute(
            text("SELECT target, count(*) FROM probe_results GROUP BY target"))})


def progress(client: httpx.Client, engine: Engine, began: float) -> str:
    rows: Counter[str] = Counter()
    for target, count in rows_per_target(engine).items():
        rows[target_class(target)] += count
    try:
        ready = client.get("/readyz").json()
        checks = ready.get("checks", {})
        readyz = (f"readyz {ready['status']} (buffer {checks.get('write_buffer', '?')}, "
                  f"quarantined {checks.get('quarantined', '?')})")
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        readyz = f"readyz unanswered ({type(exc).__name__})"
    hostile = sum(v for k, v in rows.items() if k != HEALTHY)
    shown = ", ".join(f"{k.removeprefix('hostile-')} {v}" for k, v in sorted(rows.items())
                      if k != HEALTHY)
    return (f"  {(time.monotonic() - began) / 60:4.1f} min: rows stored healthy "
            f"{rows[HEALTHY]}, hostile {hostile} ({shown}); {readyz}")


@dataclass
class Scrape:
    """What /metrics said just before primewatch was stopped."""

    probes: dict[str, int]
    outcomes: dict[str, Counter[str]]
    last_run: dict[str, float]
    skipped: dict[str, int]
    totals: dict[str, float]


def scrape_once(client: httpx.Client) -> tuple[Scrape, list[str]]:
    """One rendering of /metrics, and the targets it caught mid-update."""
    metrics = client.get("/metrics", timeout=60).text
    probes: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    for labels, value in metric_samples(metrics, "primewatch_probes_total"):
        probes[labels["target"]] += int(value)
        outcomes.setdefault(labels["target"], Counter())[labels["outcome"]] += int(value)
    last_run = {labels["target"]: value for labels, value in
                metric_samples(metrics, "primewatch_probe_last_run_timestamp_seconds")}
    skipped = {labels["target"]: int(value) for labels, value in
               metric_samples(metrics, "primewatch_probes_skipped_total")}
    totals = {name: sum(v for _, v in metric_samples(metrics, f"primewatch_{name}"))
              for name in ("results_written_total", "results_quarantined_total",
                           "results_dropped_total", "results_spilled_total",
                           "storage_write_errors_total", "spill_bytes")}
    # The exposition is rendered in a worker thread while probes go on: a probe observed
    # between the collection of two families would show in one and not the other. Its
    # duration histogram is updated and collected before the last-run gauge and the
    # counter, so a count differing from the counter gives such a rendering away.
    durations = {labels["target"]: int(value) for labels, value in
                 metric_samples(metrics, "primewatch_probe_duration_seconds_count")}
    torn = [t for t, n in probes.items() if durations.get(t) != n]
    return Scrape(dict(probes), outcomes, last_run, skipped, totals), torn


def scrape(client: httpx.Client) -> Scrape:
    """A rendering that caught no probe mid-update (a new one after SCRAPE_RETRY_S)."""
    for _ in range(SCRAPE_TRIES):
        scraped, torn = scrape_once(client)
        if not torn:
            return scraped
        time.sleep(SCRAPE_RETRY_S)
    print(f"note: every /metrics rendering caught a probe mid-update ({', '.join(torn)}); "
          "their counts may be off by one")
    return scraped


def stored_rows(engine: Engine, last_run: dict[str, float]) -> tuple[Counter[str], Counter[str]]:
    """Per target: rows started up to its last probe counted in the scrape, and after."""
    upto: Counter[str] = Counter()
    after: Counter[str] = Counter()
    with engine.connect() as connection:
        for target, started_at in connection.execute(
                text("SELECT target, started_at FROM probe_results")):
            # 1 ms of slack for the float's trip through the exposition; probes of one
            # target are 2 s apart and never overlap.
            if started_at <= last_run.get(target, float("-inf")) + 1e-3:
                upto[target] += 1
            else:
                after[target] += 1
    return upto, after


def latest_hostile(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT DISTINCT ON (target) target, ok, status_code, error_class, error, "
            "response_bytes, details FROM probe_results WHERE target LIKE 'hostile-%' "
            "ORDER BY target, started_at DESC")).all())


def report(scraped: Scrape, upto: Counter[str], after: Counter[str], *, elapsed: float,
           healthy: int, engine: Engine) -> None:
    targets = sorted(set(scraped.probes) | set(upto) | set(after))
    healthy_targets = [t for t in targets if target_class(t) == HEALTHY]
    classes = [HEALTHY, *(f"hostile-{name}" for name in HOSTILE_PATHS)]
    print(f"\n=== hostile_soak: {elapsed / 60:.1f} min, {healthy} healthy + "
          f"{len(HOSTILE_PATHS)} hostile targets every {INTERVAL}, PostgreSQL ===")
    print("probes run: primewatch_probes_total per target at the last scrape; rows stored: "
          "rows started up to that target's last counted probe")
    print(f"{'class':<22} {'targets':>7} {'probes run':>10} {'skipped':>8} "
          f"{'rows stored':>11} {'lost':>6} {'rows after':>10}  outcomes")
    lost_by_class: Counter[str] = Counter()
    for cls in classes:
        members = [t for t in targets if target_class(t) == cls]
        probes = sum(scraped.probes.get(t, 0) for t in members)
        rows = sum(upto[t] for t in members)
        lost = sum(max(0, scraped.probes.get(t, 0) - upto[t]) for t in members)
        extra = sum(max(0, upto[t] - scraped.probes.get(t, 0)) for t in members)
        lost_by_class[cls] = lost
        outcomes: Counter[str] = Counter()
        for t in members:
            outcomes.update(scraped.outcomes.get(t, Counter()))
        shown = ", ".join(f"{k} {v}" for k, v in outcomes.most_common())
        print(f"{cls:<22} {len(members):>7} {probes:>10,} "
              f"{sum(scraped.skipped.get(t, 0) for t in members):>8} {rows:>11,} "
              f"{lost:>6}{'' if not extra else f' (+{extra} more rows than probes!)'} "
              f"{sum(after[t] for t in members):>10}  {shown}")
    per_target = [scraped.probes.get(t, 0) for t in healthy_targets] or [0]
    print(f"healthy probes per target: min {min(per_target)}, max {max(per_target)} "
          f"(every {INTERVAL} over {elapsed:.0f} s would be ~{elapsed / INTERVAL_S:.0f})")
    for t in healthy_targets:
        if scraped.probes.get(t, 0) != upto[t]:
            print(f"  {t}: {scraped.probes.get(t, 0)} probes, {upto[t]} rows")
    totals = scraped.totals
    print("at the scrape: " + ", ".join(f"{k.removesuffix('_total')} {v:,.0f}"
                                        for k, v in totals.items()))
    hostile_rows = sum(upto[t] + after[t] for t in targets if target_class(t) != HEALTHY)
    print("latest stored row per hostile target (error as stored, repr, first 90 chars):")
    for target, ok, status, error_class, error, size, details in latest_hostile(engine):
        print(f"  {target:<22} ok={ok!s:<5} status={status} {error_class} bytes={size} "
              f"{(error or '')[:90]!r}" + (f" details={details}" if details else ""))
    missing = [c for c in classes[1:] if not any(target_class(t) == c and upto[t] + after[t]
                                                 for t in targets)]
    if missing:
        print(f"hostile targets with no stored row at all: {', '.join(missing)}")
    print(f"lost results of other targets: {lost_by_class[HEALTHY]}  (goal 0)")
    print(f"hostile results stored: {hostile_rows:,} (quarantined: "
          f"{totals['results_quarantined_total']:.0f}; hostile probes without a row: "
          f"{sum(v for k, v in lost_by_class.items() if k != HEALTHY)})")


def print_log_summary(log: Path) -> None:
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    warnings = Counter(line.split(" WARNING ", 1)[1][:100] for line in lines
                       if " WARNING " in line)
    print(f"primewatch log: {len(lines)} lines, {len(errors)} ERROR, "
          f"{sum(warnings.values())} WARNING")
    for message, count in warnings.most_common(3):
        print(f"  WARNING x{count}: {message}")
    for line in errors[-ERROR_LINES:]:
        print(f"  {line[:220]}")


# --- the run --------------------------------------------------------------------------

def run(opts: argparse.Namespace, workdir: Path, db_url: str) -> int:
    os.environ.clear()  # procs.spawn hands children a copy of os.environ: make it theirs
    os.environ.update(child_env())
    server_port, port = free_port(), free_port()
    token = "pw_" + os.urandom(24).hex()
    config = workdir / "config.yaml"
    write_config(config, healthy=opts.healthy, server_port=server_port, port=port,
                 db_url=db_url, token=token, spill=workdir / "primewatch-spill.jsonl")
    log = workdir / "primewatch.log"
    cli = [sys.executable, "-m", "monitor.cli", "--config", str(config)]
    for step in (["check"], ["db", "upgrade"]):
        done = subprocess.run([*cli, *step], cwd=workdir, capture_output=True, timeout=120,
                              env=os.environ | {"PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            print(f"primewatch {' '.join(step)} failed ({done.returncode}):\n"
                  f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}",
                  file=sys.stderr)
            return 1
    server = spawn([sys.executable, __file__, "--serve", str(server_port)], cwd=workdir)
    with httpx.Client(base_url=f"http://{HOST}:{server_port}", trust_env=False) as probe:
        if not wait_answering(probe, "/healthy/0", server, 20):
            print("the target server did not start", file=sys.stderr)
            return 1
    engine = create_engine(db_url, pool_size=1, connect_args={"connect_timeout": 5})
    try:
        with log.open("wb") as log_file, httpx.Client(
                base_url=f"http://{HOST}:{port}", timeout=30, trust_env=False) as client:
            primewatch = spawn([*cli, "run"], cwd=workdir, stdout=log_file,
                               stderr=subprocess.STDOUT)
            if not wait_answering(client, "/healthz", primewatch, START_TIMEOUT):
                print(f"primewatch did not answer /healthz within {START_TIMEOUT:g} s:\n"
                      f"{log_tail(log)}", file=sys.stderr)
                return 1
            print(f"primewatch answers on http://{HOST}:{port}/, target server :"
                  f"{server_port}, database {make_url(db_url).database}, working directory "
                  f"{workdir}; running {opts.minutes:g} min", flush=True)
            began = time.monotonic()
            end = began + opts.minutes * 60
            while (now := time.monotonic()) < end and primewatch.poll() is None:
                time.sleep(min(PROGRESS_EVERY, end - now))
                if primewatch.poll() is None:
                    print(progress(client, engine, began), flush=True)
            if primewatch.poll() is not None:
                print(f"primewatch exited early ({primewatch.returncode}):\n{log_tail(log)}",
                      file=sys.stderr)
                return 1
            elapsed = time.monotonic() - began
            scraped = scrape(client)
            stopping = time.monotonic()
            stop(primewatch, grace=STOP_GRACE)
        # uvicorn re-raises the SIGTERM it handled once shut down: -15 is a graceful exit.
        how = "KILLED after the grace period" if primewatch.returncode == -signal.SIGKILL \
            else f"exited (status {primewatch.returncode})"
        print(f"\nprimewatch stopped with SIGTERM: {how} in "
              f"{time.monotonic() - stopping:.1f} s")
        stop(server)
        upto, after = stored_rows(engine, scraped.last_run)
        report(scraped, upto, after, elapsed=elapsed, healthy=opts.healthy, engine=engine)
    finally:
        engine.dispose()
    spill = workdir / "primewatch-spill.jsonl"
    print(f"spill file: {f'{spill.stat().st_size:,} bytes left' if spill.exists() else 'none'}")
    print_log_summary(log)
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.serve is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(opts.serve))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` below
    name = f"pw_soak_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="pw-hostile-soak-"))
    db_url: str | None = None
    try:
        db_url = create_database(opts.postgres_url, name)
        return run(opts, workdir, db_url)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
        log = workdir / "primewatch.log"
        if log.exists():  # the working directory goes; the log of a long run should not
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            kept = RESULTS_DIR / f"hostile_soak-{stamp}.log"
            shutil.copyfile(log, kept)
            print(f"primewatch log kept at {kept.relative_to(ROOT)}")
        if opts.keep_db:
            print(f"kept: database {db_url}, working directory {workdir}")
        else:
            if db_url is not None:
                drop_database(opts.postgres_url, name)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
