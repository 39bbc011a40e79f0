"""The JSON API's answers as pydantic models: what /openapi.json promises clients.

Routes name these as `response_model`, so a body that drifts from its documented shape
fails loudly (tests/test_openapi_fuzz.py runs schemathesis over every route) instead of
surprising a client. Every error has one shape, `ErrorBody`. A route documents the
errors it raises itself with `errors(...)`; `document_shared_errors` adds those raised
before or around any route (body limit, rate limits, the readers' check, unparseable or
invalid input), so a new route is documented right without repeating them.

`EARLIEST` and `LATEST` bound the times the API accepts: a time outside them cannot be
rendered back as ISO 8601, so storing one would break every later read of its list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**63 - 1
"""Largest id or offset a path or query takes: a BIGINT, as SQLite and PostgreSQL bind it
(a larger one made the driver raise, answering 500)."""
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A path parameter naming a stored row (incident, silence, maintenance window)."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
"""A day short of datetime's end, so any time zone can still render it."""
EARLIEST_TS, LATEST_TS = EARLIEST.timestamp(), LATEST.timestamp()


def in_range(timestamp: float) -> bool:
    """Whether an epoch time lies within [EARLIEST, LATEST] (False for NaN)."""
    return EARLIEST_TS <= timestamp <= LATEST_TS


# -- errors -------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem of a 422: where (`body.matchers.0.name`, `query.limit`) and what."""

    location: str
    message: str


class ErrorInfo(BaseModel):
    """Extra keys are allowed: a 429 adds `retry_after` (seconds), for instance."""

    model_config = ConfigDict(extra="allow")

    status: int
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    """Every error the API answers: `{"error": {"status", "message", ...}}`."""

    error: ErrorInfo


_ERROR_DESCRIPTIONS = {
    400: "The body could not be parsed (not JSON, or not UTF-8)",
    401: "No credentials, or wrong ones: send `Authorization: Bearer <token>`",
    403: "The token is read-only, or writes are disabled (no server.tokens)",
    404: "Nothing by that name or id",
    409: "The incident's state does not allow this",
    413: "The request body is larger than server.max_body_bytes",
    422: "A parameter or the body is invalid; `details` names each problem",
    429: "Too many requests, or failed authentications, from this address",
    503: "Storage is unreachable; try again shortly",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                                "schema": {"type": "integer"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each status documented with `ErrorBody`."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        if status == 429:
            documented[status]["headers"] = _RETRY_AFTER
    return documented


def document_shared_errors(app: FastAPI) -> None:
    """Have `app.openapi()` document, in every operation, the errors no route raises
    itself: 413 (body limit) and 429 (rate limits) anywhere; 401 on reads under
    /api/v1/ (the readers' check); 400 and 422 wherever there is input to parse. A
    status an operation already documents is kept, except FastAPI's default 422, whose
    `{"detail": ...}` shape the app never sends."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_shared_errors(generate())  # FastAPI caches it in app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
_FASTAPI_422 = {"$ref": "#/components/schemas/HTTPValidationError"}


def _add_shared_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in {**body.pop("$defs", {}), "ErrorBody": body}.items():
        components.setdefault(name, definition)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    shared = {str(status): {**{k: v for k, v in info.items() if k != "model"},
                            "content": content}
              for status, info in errors(400, 401, 413, 422, 429).items()}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("content", {}).get("application/json", {}).get(
                    "schema") == _FASTAPI_422:
                del responses["422"]
            statuses = ["413", "429"]
            if method == "get" and path.startswith("/api/v1/"):
                statuses.append("401")
            if "requestBody" in operation:
                statuses.append("400")
            if "requestBody" in operation or "parameters" in operation:
                statuses.append("422")
            for status in statuses:
                responses.setdefault(status, shared[status])


# -- health, targets and results ----------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class GoodTotal(BaseModel):
    good: float
    total: float


class ProbeResultView(BaseModel):
    """One stored probe result; `started_at` is ISO 8601 in UTC."""

    id: int
    target: str
    region: str
    started_at: str
    ok: bool
    latency_ms: float
    status_code: int | None
    error_class: str | None
    error: str | None
    cert_days_left: float | None
    response_bytes: int | None
    values: dict[str, float]
    counts: dict[str, GoodTotal]
    details: dict[str, str]


class TargetView(BaseModel):
    name: str
    type: str
    url: str
    interval: str
    timeout: str
    labels: dict[str, str]
    last_result: ProbeResultView | None
    down: bool


class TargetList(BaseModel):
    items: list[TargetView]


class ResultsPage(BaseModel):
    """A page of results, newest first; pass `next_cursor` as `cursor` for the next."""

    target: str
    items: list[ProbeResultView]
    next_cursor: int | None


# -- SLOs and phases ----------------------------------------------------------------


class SloWindowView(BaseModel):
    window: str
    good: float
    total: float
    sli: float | None
    burn_rate: float | None


class AlertVerdict(BaseModel):
    severity: str | None
    tier: int | None
    reason: str
    since: str | None
    no_data: bool
    suppressed: bool


class ErrorBudget(BaseModel):
    """The one budget definition behind `error_budget_remaining` (slo/allowance.py)."""

    allowed_bad: float | None = Field(
        description="bad events (or slices) the whole window allows: (1 − objective) × "
                    "expected_events")
    spent_bad: float = Field(description="bad events (or slices) in the window so far")
    expected_events: float | None = Field(
        description="events (or slices) the whole window is expected to hold: the probe "
                    "schedule's count, the slices in the window, or for counter SLIs the "
                    "observed rate extrapolated")
    estimated: bool = Field(description="expected_events extrapolates an observed rate")
    collecting_since: str | None = Field(description="when the SLO's data begins in the "
                                                      "window; null without data")
    window_coverage: float = Field(description="share of the window with data behind it "
                                               "(below 1 while the SLO is young)")


class SloView(BaseModel):
    """An SLO's status; times are ISO 8601 in UTC, durations like `30d`."""

    name: str
    target: str
    sli_kind: str
    objective: float
    window: str
    threshold_seconds: float | None
    state: Literal["ok", "breaching", "no_data"]
    sli: float | None
    good: float
    total: float
    error_budget_remaining: float | None
    error_budget: ErrorBudget
    burn_rates: dict[str, float | None]
    windows: list[SloWindowView]
    percentiles: dict[str, float | None]
    budgeting: str
    window_start: str
    period_seconds: int
    budget_exhaustion_seconds: float | None
    budget_exhausted_at: str | None
    alert: AlertVerdict
    in_maintenance: bool
    evaluated_at: str


class SloList(BaseModel):
    items: list[SloView]


class PhaseSlo(BaseModel):
    name: str
    state: str


class PhaseView(BaseModel):
    name: str
    title: str
    state: Literal["met", "not_met", "unknown"]
    slos: list[PhaseSlo]


class TriggerView(BaseModel):
    name: str
    description: str
    phase: str | None
    firing: bool
    value: float | None
    threshold: float
    direction: Literal["above", "below"]
    samples: int
    since: str | None


class PhasesView(BaseModel):
    phases: list[PhaseView]
    triggers: list[TriggerView]


# -- maintenance --------------------------------------------------------------------


class MaintenanceWindowView(BaseModel):
    """A window from config (`id` null) or the API; `start`/`end` are ISO 8601."""

    id: int | None
    name: str
    source: Literal["api", "config"]
    start: str
    end: str
    targets: list[str]
    slos: list[str]
    comment: str
    author: str


class MaintenanceList(BaseModel):
    items: list[MaintenanceWindowView]


class MaintenanceCreated(MaintenanceWindowView):
    rederived_days: int = Field(description="days of SLO rollups rebuilt for the past part")


class MaintenanceDeleted(BaseModel):
    deleted: int
    by: str
    rederived_days: int


# -- incidents and silences ---------------------------------------------------------


class IncidentMemberView(BaseModel):
    """One alert grouped into the incident, with its own figures as last seen;
    `cleared_at` is null while it fires (or fired when the incident resolved)."""

    key: str
    kind: str
    severity: str
    title: str
    summary: str
    slo: str | None
    target: str | None
    burn_rate: float | None = Field(description="over `burn_window`, the firing tier's "
                                                "long window")
    burn_window: str | None
    budget_remaining: float | None
    impact_started_at: float | None
    first_seen_at: float
    paged_at: float | None
    cleared_at: float | None


class IncidentView(BaseModel):
    """An incident; times are epoch seconds, with ISO 8601 copies of the main ones.

    `members` are the alerts grouped into it (a target down, each SLO burning), each
    with its own figures; `slos` every SLO it affected (its members', and all SLOs of a
    target down in it); `slo` is set only when its members name exactly one SLO. Time
    to detect runs from `page_impact_started_at` to `paged_at`."""

    id: int
    key: str
    kind: str
    title: str
    summary: str
    severity: str
    status: Literal["triggered", "acknowledged", "resolved"]
    slo: str | None
    target: str | None
    labels: dict[str, str]
    policy: str | None
    manual_resolve: bool
    opened_at: float
    impact_started_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    resolved_by: str | None
    cleared_at: float | None
    peak_burn_rate: float | None
    budget_remaining: float | None
    cycle_started_at: float
    next_step: int
    repeat: int
    escalation_round: int
    next_escalation_at: float | None
    ack_deadline: float | None
    has_postmortem: bool
    updated_at: float
    paged_at: float | None
    page_impact_started_at: float | None
    latched: bool = Field(description="resolved by a person while its rule fired: its key "
                                      "opens no incident until the rule was seen clear")
    members: list[IncidentMemberView]
    slos: list[str]
    opened_at_iso: str | None
    acknowledged_at_iso: str | None
    resolved_at_iso: str | None
    incident_url: str
    postmortem_url: str | None


class TimelineEntry(BaseModel):
    at: float
    at_iso: str | None
    kind: str
    text: str
    data: dict[str, Any]


class IncidentDetail(IncidentView):
    timeline: list[TimelineEntry]
    budget_spent: dict[str, float | None] = Field(
        description="per SLO in `slos` (and of a down target), the share of its error "
                    "budget the incident's impact spent; null when it cannot be known")


class IncidentPage(BaseModel):
    """A page of incidents, newest first; `total` counts every match."""

    items: list[IncidentView]
    total: int
    limit: int
    offset: int


class MatcherView(BaseModel):
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str


class SilenceView(BaseModel):
    id: int
    matchers: list[MatcherView]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    state: Literal["pending", "active", "expired"]
    starts_at_iso: str | None
    ends_at_iso: str | None


class SilenceList(BaseModel):
    items: list[SilenceView]


class SilenceExpired(SilenceView):
    expired_by: str


# -- webhooks -----------------------------------------------------------------------


class AlertmanagerRejection(BaseModel):
    """One alert of a post that was not stored, and why."""

    index: int = Field(description="its position in the post's `alerts`")
    reason: str


class AlertmanagerReceipt(BaseModel):
    """Each alert of a post is stored or refused on its own."""

    incidents: list[int] = Field(description="ids of the incidents opened, updated or "
                                             "resolved")
    accepted: int = Field(description="alerts stored (or with nothing to change)")
    rejected: int = Field(description="alerts refused: malformed, or refused by the database")
    rejections: list[AlertmanagerRejection] = Field(
        description="the first 100 refused alerts, by position")


class SlackReply(BaseModel):
    """What Slack shows the person who pressed the button."""

    response_type: Literal["ephemeral"]
    text: str
