"""Alertmanager posts of 1,000 and 10,000 alerts: how long, and is the event loop free?

The question (security issue 15, item 12): a post was all-or-nothing, 10,000 alerts got
413/422 (Alertmanager does not retry a 4xx), and 1,000 took 7.4 s. This runs a real
primewatch (uvicorn on loopback, SQLite in a temp dir, a write token), sends one group
of N new alerts (each opens an incident and queues its first notification), then the
same post again (Alertmanager's `repeat_interval` re-send: N updates, nothing new), and
prints the medians of `--runs` runs, each on a fresh database. Meanwhile a thread asks
`/healthz` every 20 ms; its slowest answer during a post is how long the event loop
(which also runs the probes) was kept waiting.

    python benchmarks/alertmanager_post.py                  # 1000,10000 alerts, 3 runs, both modes
    python benchmarks/alertmanager_post.py --alerts 1000 --runs 5
    python benchmarks/alertmanager_post.py --modes chunked  # today's code only

Modes: `chunked` is today's code (`CHUNK` = 500 alerts per transaction and per trip to
a worker thread, monitor/api_alertmanager.py); `per-alert` sets `CHUNK` to 1, one
transaction and thread trip per alert as the code before stored them. `ratio` is
chunked ÷ per-alert, both measured in this run on this machine.

Before the change, on the development machine (2 cores, other work running): 1,000 new
alerts 5.2-5.8 s (re-send 0.1 s), 10,000 refused with 413 (body over 1 MiB) or 422
(over 1,000 alerts).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from in_process import serve_in_thread

from monitor import api_alertmanager
from monitor.app import create_app
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade

TOKEN = "bench-alertmanager-token"
URL = "/api/v1/alertmanager"
MODES = {"chunked": api_alertmanager.CHUNK, "per-alert": 1}


def settings() -> Settings:
    """Pages route to one webhook channel (a closed port: the outbox does not run here,
    notifications are only queued, as in the tests)."""
    hook = "http://127.0.0.1:1/"
    return Settings.model_validate({
        "server": {"tokens": [{"name": "alertmanager", "token": TOKEN, "scope": "write"}]},
        "targets": [], "slos": [],
        "alerting": {"policies": [{"name": "default", "steps": [{"notify": ["hook"]}]}],
                     "channels": [{"name": "hook", "type": "webhook", "url": hook}]}})


def body(count: int) -> bytes:
    """One notification of `count` firing alerts, as Alertmanager 0.27 sends them."""
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "severity": "critical", "team": "platform",
                   "instance": f"10.0.{i // 250}.{i % 250}:8080", "job": "api"},
        "annotations": {"summary": f"API 5xx ratio above 5% on instance {i}",
                        "description": "5.3% of requests failed over 5m",
                        "runbook_url": "https://runbooks.example/api-5xx"},
        "startsAt": "2026-01-01T00:01:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aerrors%3Aratio5m",
        "fingerprint": f"{i:016x}"} for i in range(count)]
    return json.dumps({
        "version": "4", "receiver": "primewatch", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "groupKey": "{}:{}",
        "truncatedAlerts": 0}).encode()


@contextmanager
def served() -> Iterator[str]:
    """A fresh primewatch on a free loopback port, its database in a temp dir."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'primewatch.db'}")
        upgrade(engine)
        app = create_app(settings(), engine, metrics=Metrics(CollectorRegistry()),
                         run_background=False)
        try:
            with serve_in_thread(app) as url:
                yield url
        finally:
            engine.dispose()


class Pinger:
    """Asks /healthz every 20 ms from its own thread; the slowest answer since `reset`."""

    def __init__(self, url: str) -> None:
        self.slowest, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
            while not self._stop.wait(0.02):
                started = time.perf_counter()
                client.get("/healthz")
                self.slowest = max(self.slowest, time.perf_counter() - started)

    def reset(self) -> None:
        self.slowest = 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(130)


def post(client: httpx.Client, content: bytes, pinger: Pinger, count: int
         ) -> tuple[float, float]:
    """(seconds, slowest /healthz during it); checks every alert was accepted."""
    pinger.reset()
    started = time.perf_counter()
    response = client.post(URL, content=content, headers={"Content-Type": "application/json"})
    seconds = time.perf_counter() - started
    answer = response.json()
    assert response.status_code == 200 and answer["accepted"] == count, response.text[:500]
    return seconds, pinger.slowest


def run(mode: str, count: int) -> dict[str, float]:
    api_alertmanager.CHUNK = MODES[mode]
    content = body(count)
    with served() as url, httpx.Client(base_url=url, timeout=600, trust_env=False,
                                       headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        pinger = Pinger(url)
        try:
            new, new_stall = post(client, content, pinger, count)
            again, again_stall = post(client, content, pinger, count)
        finally:
            pinger.stop()
    return {"new_s": new, "new_stall_s": new_stall, "resend_s": again,
            "resend_stall_s": again_stall, "body_mb": len(content) / 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", default="1000,10000", help="comma-separated sizes")
    parser.add_argument("--runs", type=int, default=3, help="runs per size and mode")
    parser.add_argument("--modes", default="chunked,per-alert",
                        help="comma-separated: chunked, per-alert")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    modes = [m.strip() for m in args.modes.split(",")]
    for count in (int(n) for n in args.alerts.split(",")):
        rows: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for _ in range(args.runs):  # modes alternate, so a busy moment hits both
            for mode in modes:
                rows[mode].append(run(mode, count))
        medians: dict[str, dict[str, Any]] = {}
        for mode in modes:
            medians[mode] = {key: round(statistics.median(r[key] for r in rows[mode]), 3)
                             for key in rows[mode][0]}
            print(json.dumps({"alerts": count, "mode": mode, "runs": args.runs,
                              **medians[mode]}), flush=True)
        if {"chunked", "per-alert"} <= set(modes):
            ratio = {key: round(medians["chunked"][key] / medians["per-alert"][key], 2)
                     for key in ("new_s", "resend_s")}
            print(json.dumps({"alerts": count, "ratio_chunked_to_per_alert": ratio}),
                  flush=True)


if __name__ == "__main__":
    main()
