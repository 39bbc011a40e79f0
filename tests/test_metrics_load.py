"""Unauthenticated /metrics scrapes must not fake a mass outage.

A real primewatch (uvicorn on loopback) probes 2,000 http targets on a real loopback
server while 8 scrapers pull its 4 MB /metrics back to back. Rendered on the event loop,
each scrape froze the probes for ~0.5 s and every loop turn ran one rendering per
waiting scraper: nearly every probe then ran out its timeout and was stored as
`timeout` (false `down` incidents). Rendered once per snapshot in a worker thread and
shared, the probes keep running and no probe times out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, func, select

from monitor.app import create_app
from monitor.metrics import Metrics
from monitor.metrics_snapshot import CONTENT_TYPE, Exposition
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import ProbeResultRow
from tests.conftest import make_settings
from tests.servers import serve_asgi
from tests.test_end_to_end import wait_for

TARGETS = 2000
INTERVAL = 15  # seconds: 133 probes/s in all, a modest rate for one process
TIMEOUT = 5  # seconds: far above a loopback answer, far below a stalled loop's delays
SCRAPERS = 8
SCRAPE_FOR = 18.0  # seconds of continuous scraping: more than one full probe interval
TARGET_SERVER = """
import asyncio, json
ANSWER = (b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 3\\r\\n"
          b"Connection: close\\r\\n\\r\\nok\\n")
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.head = transport, b""
    def data_received(self, data):
        self.head += data
        if b"\\r\\n\\r\\n" in self.head:
            self.transport.write(ANSWER)
            self.transport.close()
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0,
                                                            backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.sleep(300)  # bounded even if the test dies without stopping it
asyncio.run(main())
"""
"""A fast HTTP server: answers 200 to any path (`/t/{i}` are the targets), then closes."""


@pytest.fixture
def target_url() -> Iterator[str]:
    """The targets in their own process, as real ones are: they must cost far less than
    the prober, and nothing of theirs may compete for primewatch's GIL."""
    server = subprocess.Popen([sys.executable, "-c", TARGET_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{json.loads(server.stdout.readline())['port']}"
    finally:
        server.terminate()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'primewatch.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


SCRAPER = """
import collections, json, sys, threading, time
import httpx
url, seconds, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
answers, lock = collections.Counter(), threading.Lock()
until = time.monotonic() + seconds
def scrape():
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        while time.monotonic() < until:
            try:
                response = client.get("/metrics")
                answer = f"{response.status_code} {response.headers['content-type']}"
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            with lock:
                answers[answer] += 1
threads = [threading.Thread(target=scrape) for _ in range(count)]
for thread in threads: thread.start()
for thread in threads: thread.join()
time.sleep(max(0.0, until - time.monotonic()))  # the same span without scrapers
print(json.dumps(answers))
"""
"""Scrapers in their own process, as Prometheus is: their own parsing must not compete
with primewatch for this process's GIL."""


def scrape(url: str, seconds: float, count: int) -> Counter[str]:
    """`count` scrapers pulling /metrics back to back for `seconds`; the answers seen."""
    done = subprocess.run([sys.executable, "-c", SCRAPER, url, str(seconds), str(count)],
                          capture_output=True, text=True, timeout=seconds + 120, check=True)
    return Counter(json.loads(done.stdout))


@pytest.mark.slow
def test_parallel_scrapes_do_not_time_out_probes(target_url: str, database: Engine,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # A stalled loop makes APScheduler warn once per late job; thousands of captured
    # warnings would slow the loop further. The stored results are the evidence here.
    caplog.set_level(logging.ERROR, logger="apscheduler")
    settings = make_settings(targets=[
        {"name": f"t{i}", "type": "http", "url": f"{target_url}/t/{i}",
         "interval": f"{INTERVAL}s", "timeout": f"{TIMEOUT}s"} for i in range(TARGETS)],
        slos=[])
    app = create_app(settings, database, metrics=Metrics(CollectorRegistry()))
    runtime = app.state.runtime
    with serve_asgi(app) as url:
        # Scrape a settled schedule: the first runs are spread over one interval.
        wait_for(lambda: runtime.scheduler.runs >= TARGETS, 2 * INTERVAL,
                 "every target probed once")
        runs_before = runtime.scheduler.runs
        answers = scrape(url, SCRAPE_FOR, SCRAPERS)
        runs_during = runtime.scheduler.runs - runs_before
    # Leaving the block stopped the runtime: every result is written.
    with database.connect() as connection:
        outcomes = Counter({error_class: count for error_class, count in connection.execute(
            select(ProbeResultRow.error_class, func.count())
            .group_by(ProbeResultRow.error_class))})
    assert outcomes["timeout"] == 0, dict(outcomes)
    assert runs_during >= TARGETS, (runs_during, dict(outcomes), answers,
                                    runtime.exposition.renders)
    assert sum(outcomes.values()) >= TARGETS
    assert list(answers) == [f"200 {CONTENT_TYPE}"], answers
    # One rendering shared by the scrapers waiting for it, not one per scrape.
    scrapes = answers.total()
    assert runtime.exposition.renders < scrapes / 2, (runtime.exposition.renders, scrapes)


def test_concurrent_scrapes_share_one_rendering_until_it_is_stale() -> None:
    """50 scrapes during one rendering: one rendering, the same bytes for all; then a
    new one only after an evaluation tick or once the snapshot is older than max_age."""
    metrics = Metrics(CollectorRegistry())
    now = [100.0]
    started = threading.Event()
    release = threading.Event()

    def render(registry: CollectorRegistry) -> bytes:
        started.set()
        release.wait(10)  # every scraper below arrives while this one renders
        return generate_latest(registry)

    exposition = Exposition(metrics.registry, max_age=1.0, monotonic=lambda: now[0],
                            render=render)

    async def scrape_all() -> list[bytes]:
        waiting = [asyncio.ensure_future(exposition.get()) for _ in range(50)]
        await asyncio.to_thread(started.wait, 10)
        release.set()
        return await asyncio.gather(*waiting)

    bodies = asyncio.run(scrape_all())
    assert exposition.renders == 1 and len({id(b) for b in bodies}) == 1
    assert bodies[0] == generate_latest(metrics.registry)

    metrics.up.set(0)
    assert asyncio.run(exposition.get()) is bodies[0]  # fresh: at most max_age stale
    now[0] += 1.5
    assert b"primewatch_up 0.0" in asyncio.run(exposition.get())
    assert exposition.renders == 2
    exposition.invalidate()  # an evaluation tick published new gauges
    asyncio.run(exposition.get())
    assert exposition.renders == 3
