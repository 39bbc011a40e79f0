"""Tables: raw probe results, per-SLO minute rollups and their latency histogram bins.

Times are epoch seconds (float for results, int bucket starts for rollups): windows are
then plain integer ranges, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL needs BIGINT for volume.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProbeResultRow(Base):
    """One probe run, as measured; kept for `storage.retention.raw`."""

    __tablename__ = "probe_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[float] = mapped_column(Float(precision=53))
    ok: Mapped[bool]
    latency: Mapped[float] = mapped_column(Float(precision=53))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(300))
    cert_days_left: Mapped[float | None] = mapped_column(Float(precision=53))
    response_bytes: Mapped[int | None] = mapped_column(BigInteger)
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_probe_results_target_started_at", "target", "started_at"),
        # Failures are rare: counting them per error class (the targets page) reads
        # only them, not every result of the range.
        Index("ix_probe_results_failures", "target", "started_at",
              sqlite_where=text("ok = 0"), postgresql_where=text("NOT ok")),
    )


class SloRollup(Base):
    """Good and total events of one SLO in one bucket (`resolution` seconds long)."""

    __tablename__ = "slo_rollups"

    slo: Mapped[str] = mapped_column(String(100), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    good: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)


class LatencyBin(Base):
    """Count of one SLO's latencies falling in one log-spaced bin (see `slo.sketch`)."""

    __tablename__ = "latency_bins"

    slo: Mapped[str] = mapped_column(String(100), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MaintenanceRow(Base):
    """A maintenance window or correction created through the API (config ones live in
    config.yaml). Results inside are kept but left out of SLIs; alerts are suppressed."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    start: Mapped[float] = mapped_column(Float(precision=53))
    end: Mapped[float] = mapped_column(Float(precision=53))
    targets: Mapped[list[str]] = mapped_column(JSON)
    slos: Mapped[list[str]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(1000))
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float(precision=53))


class AlertEventRow(Base):
    """A change of an alert rule's state (fired, escalated, resolved, no data ...): the
    history that reports count and incidents build on."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))  # "slo:<name>", "target:<name>", ...
    kind: Mapped[str] = mapped_column(String(32))  # burn_rate, down, no_data, trigger
    severity: Mapped[str | None] = mapped_column(String(16))
    transition: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float(precision=53))
    reason: Mapped[str] = mapped_column(String(500))

    __table_args__ = (Index("ix_alert_events_at", "at"),)


class IncidentRow(Base):
    """One episode of one alert key (an SLO, a target, a trigger): opened when the rule
    fires, updated while it keeps firing, resolved when it clears or by hand.

    `open_key` equals `key` while the incident is open and is NULL afterwards: its
    unique index makes a second open incident for the same key impossible, even with
    two evaluators racing (NULLs never collide on SQLite or PostgreSQL).
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # burn_rate, no_data, down, trigger
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(String(2000))
    severity: Mapped[str] = mapped_column(String(16))  # page | ticket
    status: Mapped[str] = mapped_column(String(16))  # triggered | acknowledged | resolved
    slo: Mapped[str | None] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(100))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    policy: Mapped[str | None] = mapped_column(String(100))
    manual_resolve: Mapped[bool]
    opened_at: Mapped[float] = mapped_column(Float(precision=53))
    impact_started_at: Mapped[float | None] = mapped_column(Float(precision=53))
    acknowledged_at: Mapped[float | None] = mapped_column(Float(precision=53))
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[float | None] = mapped_column(Float(precision=53))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    cleared_at: Mapped[float | None] = mapped_column(Float(precision=53))
    peak_burn_rate: Mapped[float | None] = mapped_column(Float(precision=53))
    budget_remaining: Mapped[float | None] = mapped_column(Float(precision=53))
    # Escalation position: the next step to run, in which repeat, and when.
    cycle_started_at: Mapped[float] = mapped_column(Float(precision=53))
    next_step: Mapped[int]
    repeat: Mapped[int]
    escalation_round: Mapped[int]  # +1 whenever escalation restarts (ack timeout, upgrade)
    next_escalation_at: Mapped[float | None] = mapped_column(Float(precision=53))
    ack_deadline: Mapped[float | None] = mapped_column(Float(precision=53))
    postmortem: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float(precision=53))
    # When the incident first paged and when the impact of what paged began: time to
    # detect is measured between them, not from an older ticket grouped with the page.
    paged_at: Mapped[float | None] = mapped_column(Float(precision=53))
    page_impact_started_at: Mapped[float | None] = mapped_column(Float(precision=53))
    # Resolved by a person while its rule still fired: no new incident for `key` until
    # the rule has been seen clear once.
    latched: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    __table_args__ = (Index("ix_incidents_status", "status"),
                      Index("ix_incidents_opened_at", "opened_at"))


class IncidentMemberRow(Base):
    """One alert grouped into an incident (a target down, an SLO's burn, ...), with its
    own figures as last seen. `cleared_at` is NULL while it fires; a member that stopped
    stays listed, so the incident keeps every SLO it affected."""

    __tablename__ = "incident_members"

    incident_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                             primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(String(2000))
    slo: Mapped[str | None] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(100))
    burn_rate: Mapped[float | None] = mapped_column(Float(precision=53))
    burn_window: Mapped[str | None] = mapped_column(String(16))
    budget_remaining: Mapped[float | None] = mapped_column(Float(precision=53))
    impact_started_at: Mapped[float | None] = mapped_column(Float(precision=53))
    first_seen_at: Mapped[float] = mapped_column(Float(precision=53))
    paged_at: Mapped[float | None] = mapped_column(Float(precision=53))
    cleared_at: Mapped[float | None] = mapped_column(Float(precision=53))

    __table_args__ = (Index("ix_incident_members_slo", "slo"),
                      Index("ix_incident_members_target", "target"))


class HandledSloRow(Base):
    """Until when an SLO's bad events have been dealt with by a resolved incident (and
    its post-mortem): burn-rate tiers that fire only on events before that time open
    no new incident and keep none open."""

    __tablename__ = "handled_slos"

    slo: Mapped[str] = mapped_column(String(100), primary_key=True)
    handled_until: Mapped[float] = mapped_column(Float(precision=53))
    incident_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))


class IncidentEventRow(Base):
    """The incident's timeline: every transition, notification and action."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    at: Mapped[float] = mapped_column(Float(precision=53))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_incident_events_incident_id", "incident_id"),)


class NotificationRow(Base):
    """The outbox: a message to deliver, written in the same transaction as the
    escalation step that wants it and retried until delivered. `key` (incident, step,
    repeat, channel) is unique, so a step can never queue the same message twice."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    incident_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    channel: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int]
    next_attempt_at: Mapped[float] = mapped_column(Float(precision=53))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float(precision=53))
    delivered_at: Mapped[float | None] = mapped_column(Float(precision=53))

    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),
                      Index("ix_notifications_incident_id", "incident_id"))


class IncidentThreadRow(Base):
    """What a channel answered to an incident's first message (Slack channel and ts,
    PagerDuty dedup key, mail Message-ID), so later messages thread under it."""

    __tablename__ = "incident_threads"

    incident_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                             primary_key=True)
    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    thread: Mapped[dict[str, str]] = mapped_column(JSON)


class SilenceRow(Base):
    """Alertmanager-style silence: alerts whose labels match every matcher notify
    nobody between `starts_at` and `ends_at` (or until expired)."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    starts_at: Mapped[float] = mapped_column(Float(precision=53))
    ends_at: Mapped[float] = mapped_column(Float(precision=53))
    created_by: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[float] = mapped_column(Float(precision=53))


class InstanceRow(Base):
    """One `primewatch run` process sharing this database: its region, whether it holds
    leadership (evaluates alert rules, sends notifications) and when it last checked in."""

    __tablename__ = "instances"

    instance: Mapped[str] = mapped_column(String(120), primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float(precision=53))
    heartbeat_at: Mapped[float] = mapped_column(Float(precision=53))


class AuditRow(Base):
    """One write request to the API, allowed or refused: who (token name or
    "anonymous"), what (method, path, outcome), when and from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float(precision=53), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(100))
    summary: Mapped[str] = mapped_column(String(500))
