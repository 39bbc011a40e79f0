"""Tables: raw probe results, per-SLO minute rollups and their latency histogram bins.

Times are epoch seconds (float for results, int bucket starts for rollups): windows are
then plain integer ranges, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, MetaData, String
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

    __table_args__ = (Index("ix_probe_results_target_started_at", "target", "started_at"),)


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
