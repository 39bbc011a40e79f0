"""Watching the watcher: alert when primewatch itself stops probing a target.

A probe that hangs past its timeout, an overloaded event loop or a stopped scheduler
all look like silence, and silence reads as "no data", not as an outage. A target
not probed for `STALL_INTERVALS` of its interval opens a page of its own, and
`primewatch_last_evaluation_timestamp_seconds` / `primewatch_up` let an external
Prometheus page when primewatch as a whole is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerts.rules import ActiveAlert
from probes.base import TargetConfig

STALL_INTERVALS = 3


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
