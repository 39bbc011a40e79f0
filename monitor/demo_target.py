"""A bundled stand-in for the PrimeTrade API, so a new user sees live data without a network.

Faults (errors, latency, outage, cold starts) change at runtime through `/admin/faults`, so a
demo can walk through an SLO burn without a real incident. `/admin/*` and `/metrics` are the
control plane: exempt from latency, errors and cold starts, and they do not wake an idle
instance, so the demo can always be steered and scraped. An outage still takes `/metrics`
down: a dead process cannot be scraped either. Run: `python -m monitor.demo_target`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVICE_NAME = "primetrade-demo"
UNMATCHED_PATH = "<unmatched>"
"""Path label for requests no route matched; keeps the label set bounded against scanners."""

_FLOAT_FAULTS = frozenset({"error_ratio", "added_latency", "cold_start_after_idle",
                           "cold_start_delay"})
_JITTER_SECONDS = (0.002, 0.015)  # so latency charts are not flat lines
_CACHE_HIT_RATIO = 0.8
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TASKS = (
    {"id": 1, "symbol": "BTC-USD", "side": "buy", "qty": 0.25, "status": "open"},
    {"id": 2, "symbol": "ETH-USD", "side": "sell", "qty": 3.0, "status": "filled"},
    {"id": 3, "symbol": "AAPL", "side": "buy", "qty": 40, "status": "open"},
    {"id": 4, "symbol": "EUR-USD", "side": "sell", "qty": 10000, "status": "cancelled"},
    {"id": 5, "symbol": "SOL-USD", "side": "buy", "qty": 12.5, "status": "pending"},
)
_INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PrimeTrade demo</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><h1>PrimeTrade demo</h1><ul id="tasks"><li>loading&hellip;</li></ul>
<script src="/static/app.js"></script></body></html>
"""
_STATIC = {  # path: (media type, body); served inline so the demo needs no files on disk
    "/static/app.css": ("text/css", "body{font-family:sans-serif;margin:2rem}li{padding:.2rem}\n"),
    "/static/app.js": ("text/javascript", """fetch("/api/tasks").then(r => r.json()).then(ts => {
  document.getElementById("tasks").innerHTML = ts.map(
    t => `<li>${t.side} ${t.qty} ${t.symbol}: ${t.status}</li>`).join("");
});
"""),
}


def check_faults(changes: Mapping[str, object]) -> tuple[dict[str, float | bool], dict[str, str]]:
    """Validate a (partial) set of fault values: (clean values, problems keyed by field)."""
    clean: dict[str, float | bool] = {}
    problems: dict[str, str] = {}
    for name, value in changes.items():
        if name == "outage":
            if isinstance(value, bool):
                clean[name] = value
            else:
                problems[name] = "must be true or false"
        elif name not in _FLOAT_FAULTS:
            problems[name] = "unknown fault"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems[name] = "must be a number"
        elif not math.isfinite(value):
            problems[name] = "must be finite"
        elif name == "error_ratio" and not 0.0 <= value <= 1.0:
            problems[name] = "must be between 0 and 1"
        elif value < 0:
            problems[name] = "must be >= 0 seconds"
        else:
            clean[name] = float(value)
    return clean, problems


@dataclass(slots=True)
class Faults:
    """The faults the demo injects; shared with the running app, so changes apply live."""

    error_ratio: float = 0.0  # share of /health and /api/* requests answered 500
    added_latency: float = 0.0  # seconds slept before answering
    outage: bool = False  # every request except /admin/* answered 503
    cold_start_after_idle: float = 0.0  # seconds of idleness before a cold start; 0 = off
    cold_start_delay: float = 1.5  # seconds the first request after idleness waits
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def __post_init__(self) -> None:
        clean, problems = check_faults(self.as_dict())
        if problems:
            raise ValueError(f"invalid faults: {problems}")
        for name, value in clean.items():  # store ints given for seconds as floats
            setattr(self, name, value)

    def as_dict(self) -> dict[str, float | bool]:
        """Return the public fields as plain JSON-ready values."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def snapshot(self) -> Faults:
        """Return a consistent copy, so one request never sees half of an update."""
        with self._lock:
            return replace(self)

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply every change or none; raises ValueError naming each bad field."""
        clean, problems = check_faults(changes)
        if problems:
            raise ValueError(f"invalid faults: {problems}")
        with self._lock:
            for name, value in clean.items():
                setattr(self, name, value)


@dataclass
class _Demo:
    """Everything one demo app instance owns; passed to its handlers and middleware."""

    faults: Faults
    clock: Callable[[], float]
    rng: random.Random
    registry: CollectorRegistry
    last_request: float  # when the instance was last busy; idleness is measured from here
    warm_at: float  # until when a cold start keeps requests waiting
    in_flight: int = 0
    routes: list[Route] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.requests = Counter("http_requests", "HTTP requests answered, by route template.",
                                ["method", "path", "code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds",
                                  "Time to answer an HTTP request.", ["method", "path"],
                                  registry=self.registry)
        self.cache_hits = Counter("cache_hits", "Task cache lookups that hit.",
                                  registry=self.registry)
        self.cache_misses = Counter("cache_misses", "Task cache lookups that missed.",
                                    registry=self.registry)
        self.active_users = Gauge("active_users", "Users with an open session (simulated).",
                                  registry=self.registry)
        self.active_users.set(42)

    def path_template(self, scope: Scope) -> str:
        """Return the matching route's template, keeping the `path` label bounded."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path
            if match is Match.PARTIAL and partial is None:
                partial = route.path  # right path, wrong method: still a known route
        return partial or UNMATCHED_PATH

    def request_started(self, now: float, faults: Faults) -> float:
        """Record a request at `now`; return how long it must wait for the instance to warm."""
        with self.lock:
            idle = now - self.last_request
            if self.in_flight == 0 and 0 < faults.cold_start_after_idle <= idle:
                self.warm_at = now + faults.cold_start_delay
            self.in_flight += 1
            # busy at least until warm: a slow cold start must not make the next request cold
            self.last_request = max(self.last_request, now, self.warm_at)
            # requests arriving while the instance warms up wait for the rest of it, too
            return max(0.0, self.warm_at - now)

    def request_finished(self, now: float) -> None:
        """Record that a request ended, so a long request does not count as idleness."""
        with self.lock:
            self.in_flight -= 1
            self.last_request = max(self.last_request, now)

    def drift_active_users(self) -> None:
        """Random-walk the active-user gauge within a plausible band."""
        current = self.registry.get_sample_value("active_users") or 42.0
        self.active_users.set(min(150, max(10, current + self.rng.randint(-2, 2))))


class _FaultsAndMetrics:
    """ASGI middleware: injects the current faults, then records the request in the metrics."""

    def __init__(self, app: ASGIApp, demo: _Demo) -> None:
        self.app = app
        self.demo = demo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        demo, path = self.demo, scope["path"]
        admin = path == "/admin" or path.startswith("/admin/")
        control = admin or path == "/metrics"
        method = scope["method"] if scope["method"] in _METHODS else "other"
        template = demo.path_template(scope)
        start = demo.clock()
        status = 500  # what an exception before the response start amounts to

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            faults = demo.faults.snapshot()
            if faults.outage and not admin:
                body = {"error": "service unavailable (simulated outage)"}
                await JSONResponse(body, 503, {"Retry-After": "5"})(scope, receive, recording_send)
            elif control:
                await self.app(scope, receive, recording_send)
            else:
                await self._serve_traffic(scope, receive, recording_send, start, faults)
        finally:
            demo.requests.labels(method, template, str(status)).inc()
            demo.duration.labels(method, template).observe(max(0.0, demo.clock() - start))

    async def _serve_traffic(self, scope: Scope, receive: Receive, send: Send, start: float,
                             faults: Faults) -> None:
        """Answer a product request the way a sick service would: late, cold or failing."""
        demo, path = self.demo, scope["path"]
        wait = demo.request_started(start, faults)
        try:
            demo.drift_active_users()
            await asyncio.sleep(wait + faults.added_latency + demo.rng.uniform(*_JITTER_SECONDS))
            errors_apply = path == "/health" or path.startswith("/api/")
            if errors_apply and demo.rng.random() < faults.error_ratio:
                failure = JSONResponse({"error": "internal error (simulated)"}, 500)
                await failure(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            demo.request_finished(demo.clock())


def create_demo_app(faults: Faults | None = None, clock: Callable[[], float] = time.monotonic,
                    *, rng: random.Random | None = None,
                    registry: CollectorRegistry | None = None) -> Starlette:
    """Build a demo PrimeTrade app; `faults` stays live, so mutating it changes behaviour."""
    now = clock()
    demo = _Demo(faults=faults if faults is not None else Faults(), clock=clock,
                 rng=rng if rng is not None else random.Random(),
                 registry=registry if registry is not None else CollectorRegistry(),
                 last_request=now, warm_at=now)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": SERVICE_NAME})

    async def tasks(request: Request) -> Response:
        hit = demo.rng.random() < _CACHE_HIT_RATIO
        (demo.cache_hits if hit else demo.cache_misses).inc()
        return JSONResponse(list(_TASKS), headers={"X-Cache": "hit" if hit else "miss"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(demo.registry), media_type=CONTENT_TYPE_LATEST)

    async def index(request: Request) -> Response:
        return HTMLResponse(_INDEX_HTML)

    async def static(request: Request) -> Response:
        media_type, body = _STATIC[request.url.path]
        return Response(body, media_type=media_type)

    async def admin_faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await request.json()
            except ValueError:
                changes = None
            if not isinstance(changes, dict):
                return JSONResponse({"error": "body must be a JSON object"}, 422)
            clean, problems = check_faults(changes)
            if problems:
                return JSONResponse({"error": "invalid faults", "problems": problems}, 422)
            demo.faults.update(clean)
        return JSONResponse(demo.faults.as_dict())

    demo.routes = [
        Route("/health", health, methods=["GET"]),
        Route("/api/tasks", tasks, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/admin/faults", admin_faults, methods=["GET", "POST"]),
        *(Route(path, static, methods=["GET"]) for path in _STATIC),
    ]
    app = Starlette(routes=demo.routes, middleware=[Middleware(_FaultsAndMetrics, demo=demo)])
    app.state.faults = demo.faults
    app.state.registry = demo.registry
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the demo target with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m monitor.demo_target",
                                     description="Serve a fake PrimeTrade API for demos.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1; /admin/faults has no auth)")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--error-ratio", type=float, default=0.0,
                        help="share of /health and /api/* requests answered 500, 0..1")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="added latency in seconds, e.g. 0.05")
    parser.add_argument("--cold-start-after-idle", type=float, default=0.0,
                        help="idle seconds before the next request is a cold start; 0 = off")
    parser.add_argument("--cold-start-delay", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    args = parser.parse_args(argv)
    try:
        faults = Faults(error_ratio=args.error_ratio, added_latency=args.latency,
                        cold_start_after_idle=args.cold_start_after_idle,
                        cold_start_delay=args.cold_start_delay)
    except ValueError as exc:
        parser.error(str(exc))
    if args.host not in _LOOPBACK:  # allowed, since asked for explicitly, but /admin is open
        print(f"warning: demo exposed on {args.host}; anyone can change its faults via "
              "/admin/faults", file=sys.stderr)
    app = create_demo_app(faults, rng=random.Random(args.seed))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
