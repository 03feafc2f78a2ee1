"""Reading the suppression list inside a caller's transaction (the task gate's)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from journeyhub.store.tables import Suppression, table_of

SUPPRESSIONS = table_of(Suppression)
# An IN list per key column, not a row-value IN (which SQLite answers with a full scan).
_AMONG = select(SUPPRESSIONS.c.tenant_id, SUPPRESSIONS.c.email).where(
    SUPPRESSIONS.c.tenant_id.in_(bindparam("tenants", expanding=True)),
    SUPPRESSIONS.c.email.in_(bindparam("emails", expanding=True)),
)


def suppressed_among(conn: Connection, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (tenant id, lower-case email) pairs of ``wanted`` are on the suppression list."""
    if not wanted:
        return set()
    rows = conn.execute(
        _AMONG,
        {"tenants": sorted({t for t, _ in wanted}), "emails": sorted({e for _, e in wanted})},
    )
    return {(tenant, email) for tenant, email in rows} & wanted
