"""Maintenance windows and corrections over the API.

A window that starts in the past is a correction: the affected SLOs' rollups are
re-derived from raw results so the excluded period leaves the SLI and budget at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.api_schemas import (
    MaintenanceCreated,
    MaintenanceDeleted,
    MaintenanceList,
    RowId,
    errors,
    in_range,
)
from monitor.auth import Writer
from monitor.backfill import backfill
from monitor.errors import NotFoundError
from monitor.ingest import Classifier
from monitor.maintenance import Window, load_stored, remove, store
from monitor.runtime import Runtime

router = APIRouter(tags=["maintenance"])


class MaintenanceRequest(BaseModel):
    """A new maintenance window; empty `targets` and `slos` cover every SLO."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    start: datetime
    end: datetime
    targets: list[str] = Field(default_factory=list, max_length=500)
    slos: list[str] = Field(default_factory=list, max_length=500)
    comment: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceRequest:
        for moment in (self.start, self.end):
            if moment.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2026-12-01T02:00:00Z")
            if not in_range(moment.timestamp()):
                raise ValueError("start and end must lie between 1970 and 9999")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).total_seconds() > 31 * 86400:
            raise ValueError("a maintenance window may last 31 days at most")
        return self


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def window_json(window: Window) -> dict[str, Any]:
    return {
        "id": window.id,
        "name": window.name,
        "source": "api" if window.id is not None else "config",
        "start": datetime.fromtimestamp(window.start, UTC).isoformat(),
        "end": datetime.fromtimestamp(window.end, UTC).isoformat(),
        "targets": sorted(window.targets),
        "slos": sorted(window.slos),
        "comment": window.comment,
        "author": window.author,
    }


@router.get("/api/v1/maintenance", response_model=MaintenanceList)
async def list_windows(request: Request) -> dict[str, Any]:
    """Every maintenance window, from config and from the API."""
    windows = _runtime(request).service.calendar.windows()
    return {"items": [window_json(w) for w in windows]}


@router.post("/api/v1/maintenance", status_code=201, response_model=MaintenanceCreated,
             responses=errors(401, 403, 404, 503))
async def create_window(request: Request, body: MaintenanceRequest,
                        writer: Writer) -> dict[str, Any]:
    """Create a window; one reaching into the past re-derives the affected SLOs."""
    runtime = _runtime(request)
    settings = runtime.settings
    for name in body.targets:
        if settings.target(name) is None:
            raise NotFoundError("target", name)
    for name in body.slos:
        if settings.slo(name) is None:
            raise NotFoundError("SLO", name)
    now = runtime.service.clock.now()
    window = Window(body.name, body.start.timestamp(), body.end.timestamp(),
                    frozenset(body.targets), frozenset(body.slos), body.comment, writer,
                    created_at=now)
    window_id = await asyncio.to_thread(store, runtime.service.engine, window)
    report = await _apply(runtime, window)
    stored = next(w for w in runtime.service.calendar.windows() if w.id == window_id)
    return {**window_json(stored), "rederived_days": report}


@router.delete("/api/v1/maintenance/{window_id}", response_model=MaintenanceDeleted,
               responses=errors(401, 403, 404, 503))
async def delete_window(request: Request, window_id: RowId, writer: Writer) -> dict[str, Any]:
    """Remove an API window; results it excluded count again."""
    runtime = _runtime(request)
    window = next((w for w in runtime.service.calendar.windows() if w.id == window_id), None)
    if window is None or not await asyncio.to_thread(remove, runtime.service.engine,
                                                     window_id):
        raise NotFoundError("maintenance window", str(window_id))
    report = await _apply(runtime, window)
    return {"deleted": window_id, "by": writer, "rederived_days": report}


async def _apply(runtime: Runtime, window: Window) -> int:
    """Reload the calendar and, for a span in the past, re-derive the SLOs it touches."""
    service = runtime.service
    service.calendar.replace_stored(await asyncio.to_thread(load_stored, service.engine))
    now = service.clock.now()
    if window.start >= now:
        return 0
    affected = [slo for slo in runtime.settings.slos
                if (not window.targets and not window.slos) or slo.target in window.targets
                or slo.name in window.slos]
    if not affected:
        return 0
    report = await asyncio.to_thread(
        backfill, service.engine, Classifier(runtime.settings.slos, service.calendar),
        affected, start=window.start, end=min(window.end, now),
        raw_kept_since=now - runtime.settings.storage.retention.raw)
    # Backfill rebuilds whole days: drop cached sums from the first one on.
    service.slo_engine.forget(since=window.start // 86400 * 86400)
    return report.days_rebuilt
