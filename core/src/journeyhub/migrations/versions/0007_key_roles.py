"""API keys carry several roles

``api_keys.role`` (one of admin, ingest, read, where each included the ones after it) becomes
``api_keys.roles``, a JSON list of role names that grant only what they name (``ingest`` no
longer reads; ``admin`` no longer sends events). Each existing key gets what its old role
allowed, so it keeps working exactly as before: ``admin`` → admin, ingest, read; ``ingest`` →
ingest, read; ``read`` → read.

The downgrade gives each key the smallest old role that covers every role it has (a key never
loses access by it; a narrowed key may gain some, as the old roles cannot say less).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# What each old role allowed, as the new roles (store/tenants.py keeps them in this order).
OLD_ROLES = {
    "admin": ["admin", "ingest", "read"],
    "ingest": ["ingest", "read"],
    "read": ["read"],
}

keys = sa.table(
    "api_keys",
    sa.column("id", sa.String()),
    sa.column("role", sa.String()),
    sa.column("roles", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=True))
    for old, new in OLD_ROLES.items():
        op.execute(keys.update().where(keys.c.role == old).values(roles=new))
    # A role no release ever wrote grants nothing, as it did (the key still authenticates).
    op.execute(keys.update().where(keys.c.roles.is_(None)).values(roles=[]))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("roles", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("role")


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=20), nullable=True))
    bind = op.get_bind()
    for key_id, roles in bind.execute(sa.select(keys.c.id, keys.c.roles)).all():
        held = set(roles or []) & set(OLD_ROLES)
        # the least old role that covers them all (read for a key with none)
        role = next(old for old in ("read", "ingest", "admin") if held <= set(OLD_ROLES[old]))
        bind.execute(keys.update().where(keys.c.id == key_id).values(role=role))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("roles")
