"""A partial index over failed probe results, for per-error-class counts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_probe_results_failures", "probe_results", ["target", "started_at"],
                    sqlite_where=sa.text("ok = 0"), postgresql_where=sa.text("NOT ok"))


def downgrade() -> None:
    op.drop_index("ix_probe_results_failures", table_name="probe_results")
