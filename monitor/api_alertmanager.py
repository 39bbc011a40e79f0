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

Each alert is judged on its own, because Alertmanager never retries a 4xx and retries a
5xx with the same body: a malformed alert is refused alone (listed in the answer, with
its position and why, and logged), the others are stored, and the answer is a 200. Only
an outage of our storage answers 503, so that Alertmanager retries; what was already
stored is then updated, not opened or notified twice. A post is parsed a piece at a
time and stored 500 alerts per transaction in a worker thread, up to
`server.alertmanager.max_body_bytes` and `max_alerts` (413 beyond, naming the setting).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from alerts.external import EXTERNAL_PREFIX, ExternalOutcome
from alerts.rules import ActiveAlert, Severity
from monitor import incremental_json
from monitor.api_schemas import AlertmanagerReceipt, errors, in_range
from monitor.auth import Writer
from monitor.body_limit import BodyLimit
from monitor.config import ServerSection
from monitor.error_response import error_response
from monitor.runtime import Runtime
from monitor.storage.sanitize import clean_text

log = logging.getLogger(__name__)
router = APIRouter(tags=["alertmanager"])

PATH = "/api/v1/alertmanager"
KIND = "alertmanager"
"""Incident kind of external alerts: not a public kind, so they stay off the status page."""
PAGE_SEVERITIES = frozenset({"critical", "page"})
"""`severity` label values that page; every other value (warning, info, none) is a ticket."""
CHUNK = 500
"""Alerts stored per transaction, and per trip to a worker thread."""
LISTED_REJECTIONS = 100
"""Refused alerts named in an answer; `rejected` counts them all."""


def _storable(text: str) -> str:
    """The storage sanitiser's text: NUL, lone surrogates (a JSON `\\ud800`) and control
    characters as U+FFFD. PostgreSQL cannot store a NUL and no driver can encode a lone
    surrogate, so either used to fail the post."""
    return clean_text(text, len(text))


Text = Annotated[str, AfterValidator(_storable)]
# Labels are identifiers and are stored with the incident, so their values are bounded;
# annotations are prose (a long description must not cost a page) and only the summary
# and description are kept, truncated like every incident's.
LabelMap = Annotated[dict[Text, Annotated[Text, Field(max_length=4096)]],
                     Field(default_factory=dict, max_length=200)]
AnnotationMap = Annotated[dict[Text, Text], Field(default_factory=dict, max_length=200)]


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
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=128, pattern=r"^[A-Za-z0-9_.:-]*$")


class AlertmanagerWebhook(_Lenient):
    """The webhook body, version 4 (the only one Alertmanager has sent since 0.x), with
    its alerts unchecked: each is validated on its own (`Plan.of`)."""

    version: Literal["4"]
    receiver: Text = ""
    status: Literal["firing", "resolved"]
    alerts: list[Any]
    group_labels: LabelMap = Field(alias="groupLabels")
    common_labels: LabelMap = Field(alias="commonLabels")
    external_url: Text = Field(default="", alias="externalURL")
    group_key: Text = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")


def request_schema() -> dict[str, Any]:
    """The body as /openapi.json documents it: the envelope with its alerts' schema."""
    schema = AlertmanagerWebhook.model_json_schema()
    schema["properties"]["alerts"] = {
        "type": "array", "items": AlertmanagerAlert.model_json_schema(),
        "description": "at most `server.alertmanager.max_alerts` (10,000 by default); a "
                       "malformed alert is refused alone, listed in `rejections`"}
    return schema


def body_limits(server: ServerSection) -> dict[str, BodyLimit]:
    """This route's body limit, for `BodyLimitMiddleware`."""
    return {PATH: BodyLimit(server.alertmanager.max_body_bytes,
                            "server.alertmanager.max_body_bytes")}


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


def invalid_reason(exc: ValidationError) -> str:
    """What is wrong with an alert, by field (`startsAt: Field required`); never the
    values sent, and bounded."""
    problems = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'alert'}: {e['msg']}"
                     for e in problems[:3])
    if len(problems) > 3:
        text += f" (and {len(problems) - 3} more)"
    return text[:500]


@dataclass(slots=True)
class Plan:
    """A post's alerts, each checked on its own: what to store, one entry per key (a
    fingerprint repeated in one post would otherwise open the same incident twice;
    firing wins over resolved), where each key came from, and what was refused."""

    firing: dict[str, ActiveAlert] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    positions: dict[str, list[int]] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, alerts: Sequence[Any]) -> Plan:
        plan = cls()
        resolved: dict[str, None] = {}
        for index, raw in enumerate(alerts):
            try:
                alert = AlertmanagerAlert.model_validate(raw)
                active = to_active(alert) if alert.status == "firing" else None
            except ValidationError as exc:
                plan.refused.append((index, invalid_reason(exc)))
                continue
            except Exception as exc:  # boundary: a bug on one alert must not lose the rest
                log.exception("Alertmanager alert %d could not be read", index)
                plan.refused.append((index, f"internal error ({type(exc).__name__})"))
                continue
            key = alert_key(alert)
            plan.positions.setdefault(key, []).append(index)
            if active is not None:
                plan.firing[key] = active
            else:
                resolved[key] = None
        plan.resolved = [key for key in resolved if key not in plan.firing]
        return plan

    def chunks(self, size: int) -> Iterator[tuple[list[ActiveAlert], list[str]]]:
        """(firing, resolved) of at most `size` keys each."""
        keys = [*self.firing, *self.resolved]
        for start in range(0, len(keys), size):
            part = keys[start:start + size]
            yield ([self.firing[k] for k in part if k in self.firing],
                   [k for k in part if k not in self.firing])

    def receipt(self, outcome: ExternalOutcome) -> dict[str, Any]:
        """The answer's body (`AlertmanagerReceipt`)."""
        refused = sorted([*self.refused, *((index, reason)
                                            for key, reason in outcome.failed.items()
                                            for index in self.positions[key])])
        return {"incidents": list(dict.fromkeys(outcome.touched)),
                "accepted": sum(len(self.positions[key]) for key in outcome.stored),
                "rejected": len(refused),
                "rejections": [{"index": index, "reason": reason}
                               for index, reason in refused[:LISTED_REJECTIONS]]}


def parse(raw: bytes) -> AlertmanagerWebhook:
    """The body's envelope; a 422 (RequestValidationError) if it is not one."""
    try:
        document = incremental_json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
            "input": {}, "ctx": {"error": exc.msg}}]) from None
    except ValueError:  # not UTF-8 (nor UTF-16/32)
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
            "input": {}}]) from None
    try:
        return AlertmanagerWebhook.model_validate(document)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None


def too_many_message(count: int, limit: int) -> str:
    return (f"too many alerts: {count} in one post, the limit is {limit} "
            f"(server.alertmanager.max_alerts); set Alertmanager's max_alerts to it or less")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.post(PATH, response_model=AlertmanagerReceipt, responses=errors(401, 403, 503),
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": request_schema()}}}})
async def receive(request: Request, writer: Writer) -> Any:
    """Open, update or resolve one incident per alert; each alert stored or refused on
    its own. 503 (retried by Alertmanager) only when storage failed."""
    runtime = _runtime(request)
    limits = runtime.settings.server.alertmanager
    body = await asyncio.to_thread(parse, await request.body())
    if len(body.alerts) > limits.max_alerts:
        return error_response(413, too_many_message(len(body.alerts), limits.max_alerts))
    if body.truncated_alerts:
        log.warning("Alertmanager (receiver %s) left out %d alerts of group %s: raise its "
                    "max_alerts or they are not seen here", body.receiver,
                    body.truncated_alerts, body.group_key)
    plan = await asyncio.to_thread(Plan.of, body.alerts)
    now = runtime.service.clock.now()
    outcome = ExternalOutcome()
    for firing, resolved in plan.chunks(CHUNK):
        part = await asyncio.to_thread(runtime.incidents.receive_external, firing, resolved,
                                       now)
        outcome.touched.extend(part.touched)
        outcome.stored.update(part.stored)
        outcome.failed.update(part.failed)
        if part.unavailable is not None:
            outcome.unavailable = part.unavailable
            break
    receipt = plan.receipt(outcome)
    log.info("Alertmanager webhook from %s (token %s): %d alerts, %d accepted, %d "
             "refused, %d incidents", body.receiver or "?", writer, len(body.alerts),
             receipt["accepted"], receipt["rejected"], len(receipt["incidents"]))
    if receipt["rejections"]:
        first = receipt["rejections"][0]
        log.warning("Alertmanager webhook from %s: %d alerts refused; the first, alert "
                    "%d: %s", body.receiver or "?", receipt["rejected"], first["index"],
                    first["reason"])
    if outcome.unavailable is not None:
        return error_response(
            503, f"storage unavailable; try again shortly ({receipt['accepted']} of "
                 f"{len(body.alerts)} alerts were stored; a retry updates them, it does "
                 f"not repeat them)", **receipt)
    return receipt
