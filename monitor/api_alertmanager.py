"""Alertmanager's webhook as an incident source: `POST /api/v1/alertmanager`.

Rules evaluated by Prometheus (or anything speaking Alertmanager's webhook format,
version 4) become primewatch incidents, so they follow the same escalation policies,
silences, Slack buttons and post-mortems as primewatch's own SLO alerts. Their keys
start with `external:`: the evaluation tick never resolves them, only a "resolved"
alert from Alertmanager (or a person) does.

Alertmanager sends the whole group on every notification, firing and resolved alerts
alike, and an HA pair sends it twice; the fingerprint keeps one incident per alert, and
`receive_external` only updates an incident already open. Authentication is a write
token, which Alertmanager presents with `http_config.authorization.credentials`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from alerts.escalation import EXTERNAL_PREFIX
from alerts.rules import ActiveAlert, Severity
from monitor.api_schemas import AlertmanagerReceipt, errors, in_range
from monitor.auth import Writer
from monitor.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["alertmanager"])

KIND = "alertmanager"
"""Incident kind of external alerts: not a public kind, so they stay off the status page."""
PAGE_SEVERITIES = frozenset({"critical", "page"})
"""`severity` label values that page; every other value (warning, info, none) is a ticket."""
MAX_ALERTS = 1000
"""Alerts per call: the work is a few queries each. Alertmanager's `max_alerts` is
unlimited by default; set it to this or less (the rest arrive as `truncatedAlerts`)."""

# Labels are identifiers and are stored with the incident, so their values are bounded;
# annotations are prose (a long description must not cost a page) and only the summary
# and description are kept, truncated like every incident's.
LabelMap = Annotated[dict[str, Annotated[str, Field(max_length=4096)]],
                     Field(default_factory=dict, max_length=200)]
AnnotationMap = Annotated[dict[str, str], Field(default_factory=dict, max_length=200)]


class _Lenient(BaseModel):
    """Fields Alertmanager adds in later releases (and `commonAnnotations`, which it
    already sends) are ignored rather than refused: a 422 here loses a page."""

    model_config = ConfigDict(extra="ignore")


class AlertmanagerAlert(_Lenient):
    """One alert of the group."""

    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: AnnotationMap
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=128, pattern=r"^[A-Za-z0-9_.:-]*$")


class AlertmanagerWebhook(_Lenient):
    """The webhook body, version 4 (the only one Alertmanager has sent since 0.x)."""

    version: Literal["4"]
    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ALERTS)
    group_labels: LabelMap = Field(alias="groupLabels")
    common_labels: LabelMap = Field(alias="commonLabels")
    external_url: str = Field(default="", alias="externalURL")
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")


def alert_key(alert: AlertmanagerAlert) -> str:
    """`external:<fingerprint>`; without one (other senders), a hash of the sorted labels,
    which is what Alertmanager's fingerprint identifies too."""
    if alert.fingerprint:
        return EXTERNAL_PREFIX + alert.fingerprint
    canonical = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return EXTERNAL_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def severity_of(labels: Mapping[str, str]) -> Severity:
    return "page" if labels.get("severity", "").strip().lower() in PAGE_SEVERITIES \
        else "ticket"


def to_active(alert: AlertmanagerAlert) -> ActiveAlert:
    """A firing Alertmanager alert as the incident manager's ActiveAlert.

    The `severity` label is rewritten to page/ticket (the original kept as
    `alertmanager_severity`): the manager compares that label with the incident's
    severity to notice upgrades, so a raw "critical" would look like a new page on every
    re-send and restart escalation each time. A `startsAt` outside 1970..9999 (a broken
    clock, Go's zero time) counts as unknown, so the impact starts when the incident opens:
    such a time could not be shown.
    """
    labels = dict(alert.labels)
    severity = severity_of(labels)
    if "severity" in labels:
        labels["alertmanager_severity"] = labels["severity"]
    labels["severity"] = severity
    annotations = alert.annotations
    title = (annotations.get("summary") or labels.get("alertname")
             or "Alertmanager alert").strip()
    summary = (annotations.get("description") or annotations.get("summary") or title).strip()
    slo = labels.get("slo") or labels.get("primewatch_slo")
    target = labels.get("target")
    since = alert.starts_at.timestamp()
    return ActiveAlert(
        key=alert_key(alert), kind=KIND, severity=severity, title=title, summary=summary,
        slo=slo[:100] if slo else None, target=target[:100] if target else None,
        labels=labels, since=since if in_range(since) else None)


def split(body: AlertmanagerWebhook) -> tuple[list[ActiveAlert], list[str]]:
    """(firing alerts, resolved keys), one entry per key: a repeated fingerprint in one
    body would otherwise open the same incident twice."""
    firing: dict[str, ActiveAlert] = {}
    resolved: dict[str, None] = {}
    for alert in body.alerts:
        if alert.status == "firing":
            active = to_active(alert)
            firing[active.key] = active
        else:
            resolved[alert_key(alert)] = None
    return list(firing.values()), [key for key in resolved if key not in firing]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.post("/api/v1/alertmanager", response_model=AlertmanagerReceipt,
             responses=errors(401, 403, 503))
async def receive(request: Request, body: AlertmanagerWebhook,
                  writer: Writer) -> dict[str, Any]:
    """Open, update or resolve one incident per alert; the ids of those touched."""
    runtime = _runtime(request)
    firing, resolved = split(body)
    if body.truncated_alerts:
        log.warning("Alertmanager (receiver %s) left out %d alerts of group %s: raise its "
                    "max_alerts or they are not seen here", body.receiver,
                    body.truncated_alerts, body.group_key)
    now = runtime.service.clock.now()
    touched = await asyncio.to_thread(runtime.incidents.receive_external, firing, resolved,
                                      now)
    log.info("Alertmanager webhook from %s (token %s): %d firing, %d resolved, "
             "incidents %s", body.receiver or "?", writer, len(firing), len(resolved),
             touched)
    return {"incidents": list(dict.fromkeys(touched))}
