"""Maintenance windows and corrections created through the API.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("start", sa.Float(precision=53), nullable=False),
        sa.Column("end", sa.Float(precision=53), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("slos", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(1000), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_windows")
