"""Incidents name their members; detection times of the page; the human-resolve latch;
per-SLO "handled until" times.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float(precision=53)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("paged_at", Time, nullable=True))
        batch.add_column(sa.Column("page_impact_started_at", Time, nullable=True))
        batch.add_column(sa.Column("latched", sa.Boolean(), nullable=False,
                                   server_default=sa.text("false")))
    op.create_table(
        "incident_members",
        sa.Column("incident_id", BigId, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.String(2000), nullable=False),
        sa.Column("slo", sa.String(100), nullable=True),
        sa.Column("target", sa.String(100), nullable=True),
        sa.Column("burn_rate", Time, nullable=True),
        sa.Column("burn_window", sa.String(16), nullable=True),
        sa.Column("budget_remaining", Time, nullable=True),
        sa.Column("impact_started_at", Time, nullable=True),
        sa.Column("first_seen_at", Time, nullable=False),
        sa.Column("paged_at", Time, nullable=True),
        sa.Column("cleared_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("incident_id", "key", name=op.f("pk_incident_members")),
    )
    op.create_index("ix_incident_members_slo", "incident_members", ["slo"])
    op.create_index("ix_incident_members_target", "incident_members", ["target"])
    op.create_table(
        "handled_slos",
        sa.Column("slo", sa.String(100), nullable=False),
        sa.Column("handled_until", Time, nullable=False),
        sa.Column("incident_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("slo", name=op.f("pk_handled_slos")),
    )


def downgrade() -> None:
    op.drop_table("handled_slos")
    op.drop_index("ix_incident_members_target", table_name="incident_members")
    op.drop_index("ix_incident_members_slo", table_name="incident_members")
    op.drop_table("incident_members")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("latched")
        batch.drop_column("page_impact_started_at")
        batch.drop_column("paged_at")
