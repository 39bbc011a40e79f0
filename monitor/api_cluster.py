"""`GET /api/v1/cluster`: the instances sharing this database, their regions and roles.

What an operator checks after a failover ("who leads now, since when did the old one
go quiet?"), read from the heartbeats every instance writes, so any instance answers
for all of them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from monitor.api_schemas import errors
from monitor.leadership import members
from monitor.watchdog import heartbeat_fresh

router = APIRouter()


class InstanceView(BaseModel):
    instance: str
    region: str
    role: str  # leader | follower | stopped
    alive: bool
    """Heartbeat within 3 intervals and not stopped."""
    host: str
    pid: int
    started_at: str
    last_heartbeat: str
    heartbeat_age_seconds: float
    this_instance: bool


class ClusterView(BaseModel):
    instance: str
    region: str
    role: str
    leader: str | None
    """The live instance holding leadership, if any."""
    instances: list[InstanceView]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@router.get("/api/v1/cluster", tags=["health"], response_model=ClusterView,
            responses=errors(503))
async def cluster(request: Request) -> ClusterView:
    """Every instance that heartbeats into this database: region, role, last heartbeat."""
    runtime = request.app.state.runtime
    leadership = runtime.leadership
    rows = await asyncio.to_thread(members, runtime.service.engine)
    now = time.time()
    views = []
    for row in rows:
        age = max(0.0, now - row.heartbeat_at)
        alive = row.role != "stopped" and heartbeat_fresh(row.heartbeat_at,
                                                          leadership.interval, now)
        views.append(InstanceView(
            instance=row.instance, region=row.region, role=row.role, alive=alive,
            host=row.host, pid=row.pid, started_at=_iso(row.started_at),
            last_heartbeat=_iso(row.heartbeat_at), heartbeat_age_seconds=round(age, 3),
            this_instance=row.instance == leadership.instance))
    leader = next((v.instance for v in views if v.alive and v.role == "leader"), None)
    return ClusterView(instance=leadership.instance, region=leadership.region,
                       role=leadership.role, leader=leader, instances=views)
