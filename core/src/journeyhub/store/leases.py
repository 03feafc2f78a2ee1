"""Named leases shared by every process through the store: "this interval's sync is mine",
"I am refreshing this connection's token". A compare-and-set on ``expires_at`` makes a claim
win in at most one process."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, CursorResult, bindparam, update
from sqlalchemy.exc import IntegrityError

from journeyhub.model import utcnow
from journeyhub.store.tables import Lease

if TYPE_CHECKING:
    from journeyhub.store.store import Store


_RENEW = (
    update(Lease)
    .where(Lease.name == bindparam("lease"), Lease.holder == bindparam("claimant"))
    .values(expires_at=bindparam("until"))
)


class LeaseRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease for ``ttl`` seconds if it is free or expired; True when taken."""
        now = utcnow()
        until = now + timedelta(seconds=ttl)
        try:
            async with self.store.session() as s:
                row = await s.get(Lease, name)
                if row is None:
                    s.add(Lease(name=name, holder=holder, expires_at=until))
                    return True
                if row.expires_at is not None and _aware(row.expires_at) > now:
                    return False
                result = await s.execute(
                    update(Lease)
                    .where(Lease.name == name, Lease.expires_at == row.expires_at)
                    .values(holder=holder, expires_at=until)
                )
                return cast(CursorResult[Any], result).rowcount == 1
        except IntegrityError:  # another process inserted it first
            return False

    def renew(self, conn: Connection, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease inside the caller's transaction; False when another holds
        it now. On PostgreSQL the row stays locked until that transaction ends, so a claim by
        another process waits for it: what the transaction writes is fenced by the lease."""
        until = utcnow() + timedelta(seconds=ttl)
        result = conn.execute(_RENEW, {"lease": name, "claimant": holder, "until": until})
        return result.rowcount == 1

    async def release(self, name: str, holder: str) -> None:
        async with self.store.session() as s:
            await s.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder)
                .values(expires_at=utcnow())
            )

    async def make_due(self, name: str) -> None:
        """Expire the lease now, so the next claim wins (an on-demand sync)."""
        async with self.store.session() as s:
            row = await s.get(Lease, name)
            if row is not None:
                row.expires_at = utcnow()

    async def state(self, name: str) -> dict[str, Any]:
        async with self.store.session() as s:
            row = await s.get(Lease, name)
            return dict(row.state or {}) if row is not None else {}

    async def set_state(self, name: str, state: dict[str, Any]) -> None:
        async with self.store.session() as s:
            row = await s.get(Lease, name)
            if row is None:
                s.add(Lease(name=name, holder=None, expires_at=None, state=state))
            else:
                row.state = state

    async def expires_at(self, name: str) -> datetime | None:
        async with self.store.session() as s:
            row = await s.get(Lease, name)
            return None if row is None or row.expires_at is None else _aware(row.expires_at)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns: they are UTC."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
