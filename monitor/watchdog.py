"""Watching the watcher: alert when primewatch itself stops probing a target, when
another instance of a cluster goes silent, or when notifications cannot get out.

A probe that hangs past its timeout, an overloaded event loop or a stopped scheduler
all look like silence, and silence reads as "no data", not as an outage. A target
not probed for `STALL_INTERVALS` of its interval opens a page of its own, and
`primewatch_last_evaluation_timestamp_seconds` / `primewatch_up` let an external
Prometheus page when primewatch as a whole is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, func, select

from alerts.rules import ActiveAlert
from monitor.storage.models import InstanceRow, NotificationRow
from probes.base import TargetConfig

STALL_INTERVALS = 3
GAVE_UP_WINDOW = 86400.0  # a given-up message keeps its channel's alert open a day


def stalled_targets(targets: Sequence[TargetConfig], last_run: Mapping[str, float],
                    running_since: float, now: float) -> list[ActiveAlert]:
    """Targets whose last probe started more than STALL_INTERVALS intervals ago (or
    never, once the scheduler has run that long). Times are wall-clock seconds."""
    alerts = []
    for target in targets:
        allowed = STALL_INTERVALS * target.interval
        last = last_run.get(target.name, running_since)
        if now - last <= allowed:
            continue
        silent = now - last
        alerts.append(ActiveAlert(
            key=f"stalled:{target.name}", kind="stalled", severity="page",
            title=f"primewatch is not probing {target.name}",
            summary=(f"no probe of {target.name} started for {silent:.0f} s "
                     f"(interval {target.interval:g} s): the scheduler is stalled or "
                     f"its probes hang; its SLOs read as no data meanwhile"),
            labels={"alertname": "stalled", "severity": "page",
                    "stalled_target": target.name},
            since=last))
    return alerts


def heartbeat_fresh(heartbeat_at: float, interval: float, now: float) -> bool:
    """Within STALL_INTERVALS heartbeat intervals: one definition for the page below and
    the `alive` flag of /api/v1/cluster, so the two never disagree."""
    return now - heartbeat_at <= STALL_INTERVALS * interval


def silent_instances(members: Sequence[InstanceRow], me: str, interval: float,
                     now: float) -> list[ActiveAlert]:
    """Other instances that stopped heartbeating without saying goodbye (role
    `stopped` is a clean shutdown): their regions are no longer being probed."""
    alerts = []
    for member in members:
        if member.instance == me or member.role == "stopped" or \
                heartbeat_fresh(member.heartbeat_at, interval, now):
            continue
        silent = now - member.heartbeat_at
        alerts.append(ActiveAlert(
            key=f"instance:{member.instance}", kind="instance_down", severity="page",
            title=f"primewatch instance {member.instance} ({member.region}) is silent",
            summary=(f"no heartbeat from {member.instance} in region {member.region} for "
                     f"{silent:.0f} s: its probes are not running"),
            labels={"alertname": "instance_down", "severity": "page",
                    "instance": member.instance, "region": member.region},
            since=member.heartbeat_at))
    return alerts


def failing_channels(engine: Engine, budget: float, now: float) -> list[ActiveAlert]:
    """Channels with a message undelivered past the retry budget, or given up on within
    the last day: the alerting path itself is broken, so page through the others."""
    table = NotificationRow
    with engine.connect() as connection:
        overdue = dict(connection.execute(
            select(table.channel, func.count()).where(
                table.status == "pending", table.created_at < now - budget)
            .group_by(table.channel)).all())
        failed = dict(connection.execute(
            select(table.channel, func.count()).where(
                table.status == "failed", table.created_at >= now - GAVE_UP_WINDOW)
            .group_by(table.channel)).all())
    alerts = []
    for channel in sorted(set(overdue) | set(failed)):
        parts = [f"{overdue[channel]} message(s) undelivered after {budget:.0f} s"
                 if channel in overdue else "",
                 f"{failed[channel]} given up on in the last day" if channel in failed else ""]
        alerts.append(ActiveAlert(
            key=f"notify:{channel}", kind="notify_failing", severity="page",
            title=f"Notifications to {channel} are failing",
            summary=f"channel {channel}: " + "; ".join(p for p in parts if p)
            + " (see the incidents' timelines for the errors)",
            labels={"alertname": "notify_failing", "severity": "page",
                    "failing_channel": channel}))
    return alerts
