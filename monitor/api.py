"""The JSON API, health endpoints and /metrics — thin routes over `MonitorService`.

Every error is JSON (`{"error": {"status", "message", ...}}`): 404 for unknown names,
422 for bad parameters, 503 when storage is unreachable; a bug still answers JSON 500.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.api_schemas import (
    MAX_ID,
    Health,
    PhasesView,
    ResultsPage,
    SloList,
    SloView,
    TargetList,
    document_shared_errors,
    errors,
)
from monitor.error_response import error_response
from monitor.errors import NotFoundError
from monitor.metrics_snapshot import CONTENT_TYPE
from monitor.phases import PhaseStatus, TriggerStatus
from monitor.runtime import Runtime
from monitor.storage import repository
from monitor.storage.repository import StoredResult
from monitor.timestamps import epoch, iso_utc
from monitor.units import format_duration
from slo.status import SloStatus

log = logging.getLogger(__name__)
router = APIRouter()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def install_error_handlers(app: FastAPI) -> None:
    """JSON error bodies everywhere, documented in /openapi.json; internal details stay
    in the log."""
    document_shared_errors(app)

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                   for e in exc.errors()]
        return error_response(422, "invalid request", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(SQLAlchemyError)
    async def _storage(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("storage error while serving a request: %s", type(exc).__name__)
        return error_response(503, "storage unavailable; try again shortly")

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error while serving a request")
        return error_response(500, "internal error")


@router.get("/healthz", tags=["health"], response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is alive and serving."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Storage answers and (when background work runs) the scheduler is running.

    "degraded" (still 503, so a load balancer stops sending reads): storage is down but
    probing goes on and results wait in the buffer and spill file, counted in `checks`.
    "not ready" as well when the SQLite file was deleted or replaced under the running
    process: SQLite still answers, but from a file that is gone at restart.
    `quarantined` counts results the database refused on their own (never retried).
    An unusable spill path shows in `checks.spill_file` without making the instance
    unready: nothing is lost unless the database goes down too, and moving traffic
    elsewhere would not fix it (the start-up log names the setting to change).
    """
    runtime = _runtime(request)
    sink = runtime.sink
    storage, file_lost = await asyncio.to_thread(_storage_check, runtime)
    checks: dict[str, str] = {"storage": storage}
    background = request.app.state.background
    if background:
        if checks["storage"] == "ok" and not sink.storage_ok:
            # Answers a ping but refuses writes, e.g. SQLite locked by another process.
            checks["storage"] = f"writes failing: {(sink.last_error or '').split(':')[0]}"
        checks["scheduler"] = "ok" if runtime.scheduler.running else "stopped"
        checks["write_buffer"] = (f"{sink.pending} pending, {sink.spilled} spilled, "
                                  f"{sink.dropped} dropped")
        # Refused by the database, not an outage: shown, but readiness does not depend
        # on it (every other result is being stored).
        checks["quarantined"] = str(sink.quarantined)
        if sink.spill is not None:
            checks["spill_file"] = (f"unusable: {sink.spill.problem}" if sink.spill.problem
                                    else f"{sink.spill.size} of {sink.spill.max_bytes} bytes")
    scheduler_ok = checks.get("scheduler", "ok") == "ok"
    status = "ready" if checks["storage"] == "ok" and scheduler_ok else \
        "degraded" if background and scheduler_ok and not file_lost else "not ready"
    leadership = runtime.leadership
    cluster = {"instance": leadership.instance, "region": leadership.region,
               "role": leadership.role}
    return JSONResponse({"status": status, "checks": checks, "cluster": cluster},
                        200 if status == "ready" else 503)


def _storage_check(runtime: Runtime) -> tuple[str, bool]:
    """"ok" or what is wrong with storage, and whether the SQLite file is lost (run in
    a worker thread: the ping and the stat may both block)."""
    try:
        repository.ping(runtime.service.engine)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}", False
    database_file = runtime.database_file
    problem = database_file.problem() if database_file is not None else None
    return (problem, True) if problem else ("ok", False)


@router.get("/metrics", tags=["metrics"], response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}},
          "description": "The Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of primewatch's own metrics: a shared snapshot at most
    about a second old, rendered in a worker thread (monitor/metrics_snapshot.py)."""
    return Response(await _runtime(request).exposition.get(), media_type=CONTENT_TYPE)


@router.get("/api/v1/targets", tags=["targets"], response_model=TargetList,
            responses=errors(503))
async def list_targets(request: Request) -> dict[str, Any]:
    """Every configured target with its newest result."""
    service = _runtime(request).service
    views = await asyncio.to_thread(service.targets)
    down = service.down.last
    return {"items": [{
        "name": v.config.name,
        "type": v.config.type,  # type: ignore[attr-defined]
        "url": v.config.display_url(),
        "interval": format_duration(v.config.interval),
        "timeout": format_duration(v.config.timeout),
        "labels": v.config.labels,
        "last_result": _result_json(v.last) if v.last else None,
        "down": v.config.name in down and down[v.config.name].down,
    } for v in views]}


@router.get("/api/v1/targets/{name}/results", tags=["targets"], response_model=ResultsPage,
            responses=errors(404, 503))
async def target_results(
    request: Request, name: str,
    since: Annotated[datetime | None, Query(
        description="only results that started at or after this time (ISO 8601)")] = None,
    cursor: Annotated[int | None, Query(
        ge=1, le=MAX_ID, description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A target's results, newest first, one page at a time."""
    since_ts = epoch(since) if since is not None else None
    service = _runtime(request).service
    rows = await asyncio.to_thread(service.target_results, name, since=since_ts,
                                   before_id=cursor, limit=limit)
    next_cursor = rows[-1].id if len(rows) == limit else None
    return {"target": name, "items": [_result_json(r) for r in rows],
            "next_cursor": next_cursor}


@router.get("/api/v1/slos", tags=["slos"], response_model=SloList, responses=errors(503))
async def list_slos(request: Request) -> dict[str, Any]:
    """Every SLO's current status."""
    statuses = await asyncio.to_thread(_runtime(request).service.slo_statuses)
    return {"items": [slo_json(s) for s in statuses]}


@router.get("/api/v1/slos/{name}", tags=["slos"], response_model=SloView,
            responses=errors(404, 503))
async def get_slo(request: Request, name: str) -> dict[str, Any]:
    """One SLO's status: SLI, budget, burn rate per window, latency percentiles."""
    status = await asyncio.to_thread(_runtime(request).service.slo_status, name)
    return slo_json(status)


def _result_json(stored: StoredResult) -> dict[str, Any]:
    data = stored.result.as_dict()
    data["id"] = stored.id
    data["started_at"] = iso_utc(stored.result.started_at)
    return data


def slo_json(status: SloStatus) -> dict[str, Any]:
    """The API's view of an SLO status (also used by `slo status --json`)."""
    return {
        "name": status.name,
        "target": status.target,
        "sli_kind": status.sli_kind,
        "objective": status.objective,
        "window": format_duration(status.window_seconds),
        "threshold_seconds": status.threshold,
        "state": status.state,
        "sli": status.sli,
        "good": status.good,
        "total": status.total,
        "error_budget_remaining": status.budget_remaining,
        "error_budget": {
            "allowed_bad": None if status.expected_events is None
            else status.expected_events * (1 - status.objective),
            "spent_bad": status.total - status.good,
            "expected_events": status.expected_events,
            "estimated": status.budget_estimated,
            "collecting_since": None if status.collecting_since is None
            else iso_utc(status.collecting_since),
            "window_coverage": status.window_coverage,
        },
        "burn_rates": status.burn_rates,
        "windows": [{"window": w.window, "good": w.good, "total": w.total, "sli": w.sli,
                     "burn_rate": w.burn_rate} for w in status.windows],
        "percentiles": status.latency,  # seconds; a threshold SLO: its value
        "budgeting": status.budgeting,
        "window_start": iso_utc(status.window_start),
        "period_seconds": status.period_seconds,
        "budget_exhaustion_seconds": status.exhaustion_seconds,
        "budget_exhausted_at": iso_utc(status.exhausted_at) if status.exhausted_at else None,
        "alert": {"severity": status.alert.severity, "tier": status.alert.tier,
                  "reason": status.alert.reason,
                  "since": iso_utc(status.alert.since) if status.alert.since else None,
                  "no_data": status.alert.no_data, "suppressed": status.alert.suppressed},
        "in_maintenance": status.in_maintenance,
        "evaluated_at": iso_utc(status.evaluated_at),
    }


@router.get("/api/v1/phases", tags=["slos"], response_model=PhasesView,
            responses=errors(503))
async def phases(request: Request) -> dict[str, Any]:
    """The scaling phases against their SLOs, and the decision triggers."""
    service = _runtime(request).service
    phase_list = await asyncio.to_thread(service.phases)
    triggers = await asyncio.to_thread(service.trigger_statuses)
    return phases_json(phase_list, triggers)


def phases_json(phase_list: list[PhaseStatus], triggers: list[TriggerStatus]
                ) -> dict[str, Any]:
    return {
        "phases": [{"name": p.name, "title": p.title, "state": p.state,
                    "slos": [{"name": n, "state": st} for n, st in p.slos]}
                   for p in phase_list],
        "triggers": [{"name": t.name, "description": t.description, "phase": t.phase,
                      "firing": t.firing, "value": t.value, "threshold": t.threshold,
                      "direction": t.direction, "samples": t.samples,
                      "since": iso_utc(t.since) if t.since else None} for t in triggers],
    }
