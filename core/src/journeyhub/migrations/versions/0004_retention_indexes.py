"""retention: an index on the timestamp the purge deletes by, per table

The purge (``workers/retention.py``) deletes old rows in small batches, oldest first, across
all tenants: each batch must find its rows through an index, not a scan of the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FINISHED_ONLY = "state IN ('done', 'dropped')"


def upgrade() -> None:
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])
    op.create_index("ix_triggers_created_at", "triggers", ["created_at"])
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])
    op.create_index("ix_dead_letters_replayed_at", "dead_letters", ["replayed_at"])
    op.create_index(
        "ix_tasks_finished_at",
        "tasks",
        ["finished_at"],
        sqlite_where=sa.text(FINISHED_ONLY),
        postgresql_where=sa.text(FINISHED_ONLY),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
    op.drop_index("ix_dead_letters_replayed_at", table_name="dead_letters")
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_index("ix_triggers_created_at", table_name="triggers")
    op.drop_index("ix_deliveries_created_at", table_name="deliveries")
