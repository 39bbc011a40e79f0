"""`create_app`: the composition root that turns settings into a FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from dashboards import routes as dashboard_routes
from dashboards.security import HEADERS, ApiReadsNeedReader
from monitor import (
    __version__,
    api_alertmanager,
    api_cluster,
    api_incidents,
    api_maintenance,
    audit,
    log_redaction,
)
from monitor.api import install_error_handlers, router
from monitor.body_limit import BodyLimitMiddleware
from monitor.clock import Clock, MonotonicClock, SystemClock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.ratelimit import (
    FailedAuthLimiter,
    RateLimitMiddleware,
    TokenBucket,
)
from monitor.response_headers import ResponseHeadersMiddleware
from monitor.runtime import Runtime


def create_app(settings: Settings, engine: Engine, *, clock: Clock | None = None,
               metrics: Metrics | None = None, run_background: bool = True,
               limits_clock: Clock | None = None) -> FastAPI:
    """Build the web app; with `run_background` its lifespan also runs probes and SLOs.

    `limits_clock` times the rate and failed-auth limits (default: monotonic)."""
    log_redaction.install()  # before any HTTP client logs a URL with credentials
    runtime = Runtime(settings, engine, clock or SystemClock(), metrics or Metrics())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_background:
            await runtime.start()
        try:
            yield
        finally:
            if run_background:
                await runtime.stop()

    app = FastAPI(title=f"primewatch — {settings.service.name}", version=__version__,
                  lifespan=lifespan)
    app.state.runtime = runtime
    app.state.background = run_background
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(api_maintenance.router)
    app.include_router(api_incidents.router)
    app.include_router(api_alertmanager.router)
    app.include_router(audit.router)
    app.include_router(api_cluster.router)
    # Middleware is added inside-out. The body limit sits innermost, under no
    # BaseHTTPMiddleware (whose task group would wrap its 413 in an ExceptionGroup;
    # none is left: each cost ~1 ms a request under load);
    # the audit sees the limits' 413 and 429.
    server, limits = settings.server, limits_clock or MonotonicClock()
    app.state.failed_auth = FailedAuthLimiter(server.failed_auth.max_failures,
                                              server.failed_auth.window, limits)
    app.add_middleware(BodyLimitMiddleware, max_bytes=server.max_body_bytes,
                       routes=api_alertmanager.body_limits(server))
    app.add_middleware(ApiReadsNeedReader)
    app.add_middleware(RateLimitMiddleware, bucket=TokenBucket(
        server.rate_limit.requests_per_second, server.rate_limit.burst, limits))
    app.add_middleware(audit.AuditMiddleware, engine=engine, clock=runtime.service.clock)
    app.add_middleware(ResponseHeadersMiddleware, headers=HEADERS)
    app.include_router(dashboard_routes.pages)
    app.include_router(dashboard_routes.public)
    app.mount("/static", dashboard_routes.static_files(), name="static")
    return app
