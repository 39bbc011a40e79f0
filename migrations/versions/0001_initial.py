"""Initial schema: probe results, SLO minute rollups and latency histogram bins.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "probe_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("latency", sa.Float(precision=53), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(32), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("cert_days_left", sa.Float(precision=53), nullable=True),
        sa.Column("response_bytes", sa.BigInteger(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_results")),
    )
    op.create_index("ix_probe_results_target_started_at", "probe_results",
                    ["target", "started_at"])
    op.create_table(
        "slo_rollups",
        sa.Column("slo", sa.String(100), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slo", "resolution", "bucket_start", name=op.f("pk_slo_rollups")),
    )
    op.create_table(
        "latency_bins",
        sa.Column("slo", sa.String(100), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slo", "resolution", "bucket_start", "bin",
                                name=op.f("pk_latency_bins")),
    )


def downgrade() -> None:
    op.drop_table("latency_bins")
    op.drop_table("slo_rollups")
    op.drop_index("ix_probe_results_target_started_at", table_name="probe_results")
    op.drop_table("probe_results")
