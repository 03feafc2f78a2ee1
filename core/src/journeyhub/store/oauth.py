"""OAuth authorization requests in flight, and the tokens a finished one stores.

A request is kept by the SHA-256 of its state, bound to one tenant's connection, with its PKCE
verifier encrypted, for a few minutes. Taking it marks it used in the same statement that
checks it was not (a compare-and-set), so a state works once even when two callbacks race.
Used and expired requests stay a day, so a replayed callback is told "already used" rather
than "unknown", then go.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import CursorResult, delete, update

from journeyhub.model import Connection, utcnow
from journeyhub.store.connections import to_model
from journeyhub.store.tables import ConnectionRow, OAuthStateRow

if TYPE_CHECKING:
    from journeyhub.store.store import Store

KEEP_AFTER_EXPIRY = timedelta(days=1)
Refusal = Literal["unknown", "used", "expired"]


@dataclass(frozen=True)
class PendingAuthorization:
    tenant_id: str
    connection_id: str
    verifier: str
    redirect_uri: str
    actor: str


class StateRefused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason: Refusal = reason


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class OAuthRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(
        self,
        *,
        state: str,
        tenant_id: str,
        connection_id: str,
        verifier: str,
        redirect_uri: str,
        actor: str,
        ttl: timedelta,
    ) -> datetime:
        """Keep a new request until ``ttl`` from now; return when it expires."""
        now = utcnow()
        async with self.store.session() as s:
            await s.execute(
                delete(OAuthStateRow).where(OAuthStateRow.expires_at < now - KEEP_AFTER_EXPIRY)
            )
            s.add(
                OAuthStateRow(
                    state_hash=state_hash(state),
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    verifier=self.store.secret_box.encrypt({"verifier": verifier}),
                    redirect_uri=redirect_uri,
                    actor=actor,
                    created_at=now,
                    expires_at=now + ttl,
                    used_at=None,
                )
            )
        return now + ttl

    async def take(self, state: str) -> PendingAuthorization:
        """The request of ``state``, now used; raise :class:`StateRefused` when there is none,
        it was used already, or it has expired."""
        digest, now = state_hash(state), utcnow()
        async with self.store.session() as s:
            row = await s.get(OAuthStateRow, digest)
            if row is None:
                raise StateRefused("unknown")
            claimed = await s.execute(
                update(OAuthStateRow)
                .where(OAuthStateRow.state_hash == digest, OAuthStateRow.used_at.is_(None))
                .values(used_at=now)
            )
            if cast(CursorResult[Any], claimed).rowcount != 1:
                raise StateRefused("used")
            pending = PendingAuthorization(
                tenant_id=row.tenant_id,
                connection_id=row.connection_id,
                verifier=str(self.store.secret_box.decrypt(row.verifier)["verifier"]),
                redirect_uri=row.redirect_uri,
                actor=row.actor,
            )
            expired = row.expires_at <= now
        if expired:  # marked used all the same: an expired state never comes back to life
            raise StateRefused("expired")
        return pending

    async def save_tokens(
        self, connection_id: str, tenant_id: str, credentials: dict[str, Any]
    ) -> Connection | None:
        """Store the connection's new credentials, encrypted, and take it out of
        ``needs_reauth`` (a person has just authorised it); None when it is gone."""
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id, with_for_update=True)
            if row is None or row.tenant_id != tenant_id:
                return None
            row.credentials = self.store.secret_box.encrypt(credentials)
            if row.status != "gone":  # a 410 is about the endpoint: a person re-enables it
                row.status = "active"
            row.version += 1
            row.updated_at = utcnow()
            await s.flush()
            return to_model(row)
