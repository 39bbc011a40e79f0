"""`create_app`: the composition root that turns settings into a FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from dashboards import routes as dashboard_routes
from dashboards.security import security_headers
from monitor import __version__, api_incidents, api_maintenance
from monitor.api import install_error_handlers, router
from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.runtime import Runtime


def create_app(settings: Settings, engine: Engine, *, clock: Clock | None = None,
               metrics: Metrics | None = None, run_background: bool = True) -> FastAPI:
    """Build the web app; with `run_background` its lifespan also runs probes and SLOs."""
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
    app.middleware("http")(security_headers)
    app.include_router(dashboard_routes.pages)
    app.include_router(dashboard_routes.public)
    app.mount("/static", dashboard_routes.static_files(), name="static")
    return app
