"""Incidents, their timelines, the notification outbox, channel threads and silences.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("open_key", sa.String(200), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.String(2000), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("slo", sa.String(100), nullable=True),
        sa.Column("target", sa.String(100), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(100), nullable=True),
        sa.Column("manual_resolve", sa.Boolean(), nullable=False),
        sa.Column("opened_at", Time, nullable=False),
        sa.Column("impact_started_at", Time, nullable=True),
        sa.Column("acknowledged_at", Time, nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", Time, nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.Column("cleared_at", Time, nullable=True),
        sa.Column("peak_burn_rate", Time, nullable=True),
        sa.Column("budget_remaining", Time, nullable=True),
        sa.Column("cycle_started_at", Time, nullable=False),
        sa.Column("next_step", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("escalation_round", sa.Integer(), nullable=False),
        sa.Column("next_escalation_at", Time, nullable=True),
        sa.Column("ack_deadline", Time, nullable=True),
        sa.Column("postmortem", sa.Text(), nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_incidents_open_key")),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])
    op.create_table(
        "incident_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("incident_id", BigId, nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
    )
    op.create_index("ix_incident_events_incident_id", "incident_events", ["incident_id"])
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("incident_id", BigId, nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Time, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("delivered_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", name=op.f("uq_notifications_key")),
    )
    op.create_index("ix_notifications_status_next", "notifications",
                    ["status", "next_attempt_at"])
    op.create_index("ix_notifications_incident_id", "notifications", ["incident_id"])
    op.create_table(
        "incident_threads",
        sa.Column("incident_id", BigId, nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("thread", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "channel", name=op.f("pk_incident_threads")),
    )
    op.create_table(
        "silences",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", Time, nullable=False),
        sa.Column("ends_at", Time, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("comment", sa.String(1000), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )


def downgrade() -> None:
    for table in ("silences", "incident_threads", "notifications", "incident_events",
                  "incidents"):
        op.drop_table(table)
