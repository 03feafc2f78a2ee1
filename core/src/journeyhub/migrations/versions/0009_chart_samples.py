"""samples for the dashboard's charts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chart_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("series", sa.String(length=80), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chart_samples")),
    )
    with op.batch_alter_table("chart_samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chart_samples_tenant_taken", ["tenant_id", "taken_at"], unique=False
        )
        batch_op.create_index("ix_chart_samples_taken_at", ["taken_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chart_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_chart_samples_taken_at")
        batch_op.drop_index("ix_chart_samples_tenant_taken")
    op.drop_table("chart_samples")
