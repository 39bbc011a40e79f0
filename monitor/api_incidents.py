"""Incidents, silences and Slack buttons over HTTP — thin routes over `IncidentManager`.

Writes (ack, resolve, silences) need a write token and record its name as the author,
so the timeline says who did what. `POST /slack/actions` authenticates differently: by
Slack's request signature, checked against the runtime clock before anything is parsed,
so a forged or replayed request changes nothing. Slack's own message is updated by the
notification the manager queues, never from here, so the route answers at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.escalation import IncidentError, IncidentNotFound
from alerts.members import affected_slo_names
from alerts.silences import (
    Silence,
    SilenceError,
    create_silence,
    expire_silence,
    get_silence,
    list_silences,
    parse_matchers,
)
from alerts.slack_actions import SlackAction, parse_action, verify_request
from alerts.store import (
    Incident,
    add_event,
    get_incident,
    list_incidents,
    postmortem_text,
    timeline,
)
from monitor.api_schemas import (
    LATEST_TS,
    MAX_ID,
    IncidentDetail,
    IncidentPage,
    RowId,
    SilenceExpired,
    SilenceList,
    SilenceView,
    SlackReply,
    errors,
    in_range,
)
from monitor.auth import Writer
from monitor.config import Settings, SlackChannel
from monitor.errors import NotFoundError
from monitor.runtime import Runtime
from monitor.timestamps import iso_utc
from monitor.units import Duration, format_duration

router = APIRouter()

SLACK_SILENCE_SECONDS = 3600.0  # the "Silence 1h" button
MAX_SILENCE_SECONDS = 10 * 366 * 86400.0
MAX_SLACK_BODY = 1 << 20  # bytes; the body is read before it is verified


class ActionRequest(BaseModel):
    """The optional body of ack and resolve: a note for the timeline."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=1000)


class SilenceRequest(BaseModel):
    """A new silence: matchers (checked by `parse_matchers`, which names the bad one),
    a start (default now) and either an end or a duration."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[dict[str, Any]] = Field(max_length=50)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: Duration | None = None
    comment: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceRequest:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError('give either `ends_at` or `duration` (e.g. "1h"), not both')
        for moment in (self.starts_at, self.ends_at):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a time zone, e.g. 2026-12-01T02:00:00Z")
            if moment is not None and not in_range(moment.timestamp()):
                raise ValueError("times must lie between 1970 and 9999")
        if self.duration is not None:
            # `not (a < x <= b)` also refuses NaN, which JSON parsing lets through
            if not 0 < self.duration <= MAX_SILENCE_SECONDS:
                raise ValueError("`duration` must be positive and at most 10 years")
            if self.starts_at is not None and \
                    self.starts_at.timestamp() + self.duration > LATEST_TS:
                raise ValueError("the silence would end after 9999")
        return self


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso_utc(timestamp)


def incident_json(settings: Settings, incident: Incident) -> dict[str, Any]:
    """The API's view of an incident; `postmortem_url` only once a draft can exist."""
    base = (settings.server.public_url or "").rstrip("/")
    path = f"{base}/api/v1/incidents/{incident.id}"
    return {
        **incident.as_dict(),
        "members": [asdict(m) for m in incident.members],
        "slos": list(affected_slo_names(incident, settings.slos) if incident.members
                     else incident.slos),
        "opened_at_iso": _iso(incident.opened_at),
        "acknowledged_at_iso": _iso(incident.acknowledged_at),
        "resolved_at_iso": _iso(incident.resolved_at),
        "incident_url": path,
        "postmortem_url": f"{path}/postmortem" if incident.status == "resolved" else None,
    }


async def _detail(runtime: Runtime, incident_id: int) -> dict[str, Any]:
    engine = runtime.service.engine
    incident = await asyncio.to_thread(get_incident, engine, incident_id)
    if incident is None:
        raise NotFoundError("incident", str(incident_id))
    events = await asyncio.to_thread(timeline, engine, incident_id)
    spent = await asyncio.to_thread(_budget_spent, runtime, incident)
    return {**incident_json(runtime.settings, incident), "timeline": [
        {"at": e.at, "at_iso": _iso(e.at), "kind": e.kind, "text": e.text, "data": e.data}
        for e in events], "budget_spent": spent}


def _budget_spent(runtime: Runtime, incident: Incident) -> dict[str, float | None]:
    """Budget spent per affected SLO (empty when this build has no facts writer)."""
    try:  # lazily, like the post-mortem: the facts module imports the reporting stack
        from alerts.facts import budget_spent
    except ModuleNotFoundError as exc:
        if exc.name != "alerts.facts":
            raise
        return {}
    return budget_spent(runtime.service.engine, runtime.settings, incident,
                        runtime.service.clock.now())


# -- incidents ----------------------------------------------------------------------


@router.get("/api/v1/incidents", tags=["incidents"], response_model=IncidentPage,
            responses=errors(503))
async def list_all(
    request: Request,
    status: Annotated[Literal["triggered", "acknowledged", "resolved"] | None, Query(
        description="only incidents in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Incidents, newest first, one page at a time (`total` counts every match)."""
    runtime = _runtime(request)
    items, total = await asyncio.to_thread(list_incidents, runtime.service.engine,
                                           status=status, limit=limit, offset=offset)
    return {"items": [incident_json(runtime.settings, i) for i in items], "total": total,
            "limit": limit, "offset": offset}


@router.get("/api/v1/incidents/{incident_id}", tags=["incidents"],
            response_model=IncidentDetail, responses=errors(404, 503))
async def get_one(request: Request, incident_id: RowId) -> dict[str, Any]:
    """One incident with its timeline."""
    return await _detail(_runtime(request), incident_id)


@router.post("/api/v1/incidents/{incident_id}/ack", tags=["incidents"],
             response_model=IncidentDetail, responses=errors(401, 403, 404, 409, 503))
async def acknowledge(request: Request, incident_id: RowId, writer: Writer,
                      body: Annotated[ActionRequest | None, Body()] = None) -> dict[str, Any]:
    """Stop escalation; 409 when the incident is already resolved."""
    runtime = _runtime(request)
    now = runtime.service.clock.now()
    try:
        await asyncio.to_thread(runtime.incidents.acknowledge, incident_id, writer, now)
    except IncidentNotFound as exc:
        raise NotFoundError("incident", str(incident_id)) from exc
    except IncidentError as exc:
        raise HTTPException(409, str(exc)) from exc
    if body is not None and body.comment:
        await asyncio.to_thread(_comment, runtime, incident_id, writer, body.comment, now)
    return await _detail(runtime, incident_id)


@router.post("/api/v1/incidents/{incident_id}/resolve", tags=["incidents"],
             response_model=IncidentDetail, responses=errors(401, 403, 404, 503))
async def resolve(request: Request, incident_id: RowId, writer: Writer,
                  body: Annotated[ActionRequest | None, Body()] = None) -> dict[str, Any]:
    """Resolve by hand; resolving a resolved incident changes nothing and answers 200.

    The comment becomes the resolution text, so the notification the manager queues
    carries it to the channels that heard of the incident.
    """
    runtime = _runtime(request)
    now = runtime.service.clock.now()
    reason = f"Resolved by {writer}: {body.comment}" if body and body.comment else None
    try:
        await asyncio.to_thread(runtime.incidents.resolve, incident_id, writer, now,
                                reason=reason)
    except IncidentNotFound as exc:
        raise NotFoundError("incident", str(incident_id)) from exc
    return await _detail(runtime, incident_id)


def _comment(runtime: Runtime, incident_id: int, by: str, text: str, now: float) -> None:
    with runtime.service.engine.begin() as connection:
        add_event(connection, incident_id, now, "comment", f"{by}: {text}", {"by": by})


@router.get("/api/v1/incidents/{incident_id}/postmortem", tags=["incidents"],
            response_class=Response, responses={
                200: {"content": {"text/markdown": {"schema": {"type": "string"}}},
                      "description": "The draft, in Markdown"},
                **errors(404, 409, 503)})
async def postmortem(request: Request, incident_id: RowId) -> Response:
    """The post-mortem draft (Markdown) of a resolved incident.

    The draft is written when the incident resolves; if that failed or predates the
    writer, it is written now, so a resolved incident always has one to show.
    """
    runtime = _runtime(request)
    engine = runtime.service.engine
    incident = await asyncio.to_thread(get_incident, engine, incident_id)
    if incident is None:
        raise NotFoundError("incident", str(incident_id))
    if incident.status != "resolved":
        raise HTTPException(409, f"incident {incident_id} is {incident.status}; its "
                                 "post-mortem draft is written when it resolves")
    text = await asyncio.to_thread(postmortem_text, engine, incident_id)
    if text is None:
        try:  # lazily: the draft writer is optional and imports the reporting stack
            from alerts.facts import write_postmortem
        except ModuleNotFoundError as exc:
            if exc.name != "alerts.facts":
                raise
            raise HTTPException(404, f"incident {incident_id} has no post-mortem draft and "
                                     "this build cannot write one (alerts.facts missing)"
                                ) from exc
        text = await asyncio.to_thread(write_postmortem, engine, runtime.settings,
                                       incident_id, runtime.service.clock.now())
    return Response(text, media_type="text/markdown; charset=utf-8")


# -- silences -----------------------------------------------------------------------


def silence_json(silence: Silence, now: float) -> dict[str, Any]:
    return {**silence.as_dict(now), "starts_at_iso": _iso(silence.starts_at),
            "ends_at_iso": _iso(silence.ends_at)}


@router.post("/api/v1/silences", tags=["silences"], status_code=201,
             response_model=SilenceView, responses=errors(401, 403, 503))
async def create(request: Request, body: SilenceRequest, writer: Writer) -> dict[str, Any]:
    """Silence alerts whose labels match every matcher, from `starts_at` (default now)."""
    runtime = _runtime(request)
    now = runtime.service.clock.now()
    starts = body.starts_at.timestamp() if body.starts_at is not None else now
    ends = body.ends_at.timestamp() if body.ends_at is not None else starts + (
        body.duration or 0.0)
    try:
        matchers = parse_matchers(body.matchers)
        silence = await asyncio.to_thread(
            create_silence, runtime.service.engine, matchers, starts_at=starts,
            ends_at=ends, created_by=writer, comment=body.comment, now=now)
    except SilenceError as exc:
        raise HTTPException(422, str(exc)) from exc
    return silence_json(silence, now)


@router.get("/api/v1/silences", tags=["silences"], response_model=SilenceList,
            responses=errors(503))
async def list_all_silences(request: Request,
                            include_expired: Annotated[bool, Query()] = False
                            ) -> dict[str, Any]:
    """Pending and active silences; with `include_expired`, the ended ones too."""
    runtime = _runtime(request)
    now = runtime.service.clock.now()
    found = await asyncio.to_thread(list_silences, runtime.service.engine, now,
                                    include_expired=include_expired)
    return {"items": [silence_json(s, now) for s in found]}


@router.get("/api/v1/silences/{silence_id}", tags=["silences"], response_model=SilenceView,
            responses=errors(404, 503))
async def get_one_silence(request: Request, silence_id: RowId) -> dict[str, Any]:
    runtime = _runtime(request)
    silence = await asyncio.to_thread(get_silence, runtime.service.engine, silence_id)
    if silence is None:
        raise NotFoundError("silence", str(silence_id))
    return silence_json(silence, runtime.service.clock.now())


@router.delete("/api/v1/silences/{silence_id}", tags=["silences"],
               response_model=SilenceExpired, responses=errors(401, 403, 404, 503))
async def expire(request: Request, silence_id: RowId, writer: Writer) -> dict[str, Any]:
    """End a silence now; it stays listed with `include_expired` for the record."""
    runtime = _runtime(request)
    now = runtime.service.clock.now()
    silence = await asyncio.to_thread(expire_silence, runtime.service.engine, silence_id,
                                      now)
    if silence is None:
        raise NotFoundError("silence", str(silence_id))
    return {**silence_json(silence, now), "expired_by": writer}


# -- Slack buttons ------------------------------------------------------------------


def signing_secret(settings: Settings) -> str | None:
    """The first Slack channel's signing secret; None when interactivity is off."""
    for channel in settings.alerting.channels:
        if isinstance(channel, SlackChannel) and channel.signing_secret is not None:
            secret = channel.signing_secret.get_secret_value().strip()
            if secret:
                return secret
    return None


async def _read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes: it is read before it is verified."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, "request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _ephemeral(text: str) -> JSONResponse:
    """An answer only the presser sees; Slack shows any 200 JSON with `text`."""
    return JSONResponse({"response_type": "ephemeral", "text": text})


SLACK_FORM = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["payload"],
        "properties": {"payload": {"type": "string",
                                   "description": "Slack's block_actions payload (JSON)"}}}}}}}


@router.post("/slack/actions", tags=["slack"], response_model=SlackReply,
             responses=errors(401, 404), openapi_extra=SLACK_FORM)
async def slack_actions(request: Request) -> JSONResponse:
    """A Slack button press (ack, resolve, silence 1h) on an incident message."""
    runtime = _runtime(request)
    secret = signing_secret(runtime.settings)
    if secret is None:
        raise HTTPException(404, "Slack interactivity is not configured: set "
                                 "signing_secret on a Slack channel")
    body = await _read_capped(request, MAX_SLACK_BODY)
    if not verify_request(secret, body, request.headers, runtime.service.clock.now()):
        raise HTTPException(401, "invalid or expired Slack signature")
    action = parse_action(body)
    if action is None:
        return _ephemeral("primewatch does not handle this action.")
    return _ephemeral(await asyncio.to_thread(_apply_action, runtime, action))


def _apply_action(runtime: Runtime, action: SlackAction) -> str:
    """Do what the button says; every outcome is a sentence for the presser."""
    by = f"{action.user} (Slack)"
    number = f"incident #{action.incident_id}"
    now = runtime.service.clock.now()
    try:
        if action.kind == "ack":
            runtime.incidents.acknowledge(action.incident_id, by, now)
            return f"Acknowledged {number}"
        if action.kind == "resolve":
            runtime.incidents.resolve(action.incident_id, by, now)
            return f"Resolved {number}"
        silence = runtime.incidents.silence(action.incident_id, by, SLACK_SILENCE_SECONDS,
                                            now)
        return (f"Silenced {number} for {format_duration(SLACK_SILENCE_SECONDS)} "
                f"(silence {silence.id})")
    except IncidentNotFound:
        return f"There is no {number} (it may have been deleted)."
    except (IncidentError, SilenceError) as exc:
        return f"Could not {action.kind} {number}: {exc}"
