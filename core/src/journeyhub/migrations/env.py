"""Alembic environment: runs migrations on a synchronous connection to the configured URL."""

from __future__ import annotations

from alembic import context
from journeyhub.store.tables import Base
from sqlalchemy import create_engine, pool

config = context.config
url = config.attributes["sqlalchemy_url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
