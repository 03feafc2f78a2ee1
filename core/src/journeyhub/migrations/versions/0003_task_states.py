"""tasks: every routed task and its state (the task gate's one table); sync links get a ref

``pending_tasks`` held only unfinished tasks, so "already delivered?" and "dead-lettered?"
were asked of the deliveries and dead letters. ``tasks`` keeps each task with its state,
attempts and failures; existing rows are carried over, and finished tasks are filled in from
the deliveries and the unreplayed dead letters, so a task offered again after the upgrade is
still known as finished.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PENDING_ONLY = "state = 'pending'"
DEAD_ONLY = "state = 'dead'"


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("held_by", sa.String(length=80), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
    )
    op.create_index(
        "ix_tasks_pending_order",
        "tasks",
        ["connection_id", "order_key", "sequence"],
        unique=False,
        sqlite_where=sa.text(PENDING_ONLY),
        postgresql_where=sa.text(PENDING_ONLY),
    )
    op.create_index(
        "ix_tasks_dead_order",
        "tasks",
        ["connection_id", "order_key"],
        unique=False,
        sqlite_where=sa.text(DEAD_ONLY),
        postgresql_where=sa.text(DEAD_ONLY),
    )
    # Unfinished tasks: an attempt made before counts, so the next push looks up first.
    op.execute(
        """
        INSERT INTO tasks (task_id, connection_id, order_key, sequence, state, attempts,
                           failures, held_by, held_until, created_at)
        SELECT p.task_id, p.connection_id, p.order_key, p.sequence, 'pending',
               (SELECT COUNT(*) FROM deliveries d
                 WHERE d.task_id = p.task_id AND d.status != 'replayed')
               + CASE WHEN p.held_by IS NULL THEN 0 ELSE 1 END,
               (SELECT COUNT(*) FROM deliveries d
                 WHERE d.task_id = p.task_id AND d.status IN ('failed', 'dead')
                   AND d.id > COALESCE((SELECT MAX(r.id) FROM deliveries r
                                         WHERE r.task_id = p.task_id
                                           AND r.status = 'replayed'), 0)),
               p.held_by, p.held_until, p.created_at
          FROM pending_tasks p
        """
    )
    op.execute(
        """
        INSERT INTO tasks (task_id, connection_id, order_key, sequence, state, attempts,
                           failures, created_at, finished_at)
        SELECT d.task_id, MIN(d.connection_id), '', 0, 'done', COUNT(*), 0,
               MIN(d.created_at), MAX(d.created_at)
          FROM deliveries d
         WHERE d.status IN ('delivered', 'skipped')
           AND d.task_id NOT IN (SELECT task_id FROM tasks)
         GROUP BY d.task_id
        """
    )
    _dead_tasks()
    op.drop_table("pending_tasks")

    with op.batch_alter_table("sync_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(length=200), nullable=True))
        batch_op.create_index(
            "ix_sync_links_connection_client", ["connection_id", "our_id"], unique=False
        )


def _dead_tasks() -> None:
    """Tasks whose dead letter is not replayed yet. The task id is in the payload: a dead
    letter of a replay carries the replay's message id, not the task's."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT connection_id, payload, attempts, created_at FROM dead_letters "
            "WHERE stage = 'push' AND replayed_at IS NULL"
        )
    ).all()
    known = {r[0] for r in bind.execute(sa.text("SELECT task_id FROM tasks")).all()}
    for connection_id, payload, attempts, created_at in rows:
        try:
            task = json.loads(bytes(payload))
        except ValueError:
            continue
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or task_id in known:
            continue
        known.add(task_id)
        bind.execute(
            sa.text(
                "INSERT INTO tasks (task_id, connection_id, order_key, sequence, state, "
                "attempts, failures, created_at, finished_at) VALUES (:task_id, "
                ":connection_id, :order_key, :sequence, 'dead', :attempts, :attempts, "
                ":created_at, :created_at)"
            ),
            {
                "task_id": task_id,
                "connection_id": connection_id,
                "order_key": str(task.get("order_key") or ""),
                "sequence": int(task.get("sequence") or 0),
                "attempts": attempts,
                "created_at": created_at,
            },
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_links", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_links_connection_client")
        batch_op.drop_column("ref")

    op.create_table(
        "pending_tasks",
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_by", sa.String(length=80), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_pending_tasks")),
    )
    with op.batch_alter_table("pending_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pending_tasks_order", ["connection_id", "order_key", "sequence"], unique=False
        )
    op.execute(
        """
        INSERT INTO pending_tasks (task_id, connection_id, order_key, sequence, created_at,
                                   held_by, held_until)
        SELECT task_id, connection_id, order_key, sequence, created_at, held_by, held_until
          FROM tasks WHERE state = 'pending'
        """
    )
    op.drop_index("ix_tasks_dead_order", table_name="tasks")
    op.drop_index("ix_tasks_pending_order", table_name="tasks")
    op.drop_table("tasks")
