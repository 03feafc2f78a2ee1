"""journey events kept for resends and backfills

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_events",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("correlation_id", sa.String(length=80), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", name=op.f("pk_journey_events")),
    )
    with op.batch_alter_table("journey_events", schema=None) as batch_op:
        batch_op.create_index("ix_journey_events_received", ["received_at"], unique=False)
        batch_op.create_index(
            "ix_journey_events_tenant_sequence", ["tenant_id", "sequence"], unique=False
        )
        batch_op.create_index(
            "ix_journey_events_tenant_client", ["tenant_id", "client_id", "sequence"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_events", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_events_tenant_client")
        batch_op.drop_index("ix_journey_events_tenant_sequence")
        batch_op.drop_index("ix_journey_events_received")
    op.drop_table("journey_events")
