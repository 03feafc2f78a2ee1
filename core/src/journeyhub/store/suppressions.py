"""Reading the suppression list inside a caller's transaction (the task gate's)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select, tuple_

from journeyhub.store.tables import Suppression

SUPPRESSIONS = Suppression.__table__
_AMONG = select(SUPPRESSIONS.c.tenant_id, SUPPRESSIONS.c.email).where(
    tuple_(SUPPRESSIONS.c.tenant_id, SUPPRESSIONS.c.email).in_(bindparam("wanted", expanding=True))
)


def suppressed_among(conn: Connection, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (tenant id, lower-case email) pairs of ``wanted`` are on the suppression list."""
    if not wanted:
        return set()
    return {(tenant, email) for tenant, email in conn.execute(_AMONG, {"wanted": sorted(wanted)})}
