"""The client directory: who the tenant's clients are, for finding one by id, name or email.

The hub has no table of clients of its own: a client is the id its journey events name, and
its name and email come in them, inside the kept events' JSON payloads, which no index can
search. So the router, in the transaction that keeps a batch of journey events
(``JourneyEventRepo.keep``), also notes each client in ``clients`` (the newest name and email)
and the words it is found by in ``client_terms``: its id, every email and name it has had,
each word of those names, lower-cased. A search is then a prefix range of one index, however
many clients and events there are. Erasing a client deletes both (``store/erasure.py``); the
retention purge forgets a client once it has had no event for as long as kept events are kept
(``JOURNEYHUB_RETENTION_EVENTS_DAYS``), its terms with it (they cascade).

Terms are only added, never replaced: a client is still found by an address it used before,
which is often the one a couple quotes to support.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, select

from journeyhub.store.tables import ClientRow, ClientTerm, table_of

if TYPE_CHECKING:
    from journeyhub.store.store import Store

CLIENTS = table_of(ClientRow)
TERMS = table_of(ClientTerm)
MAX_TERM = 200
MIN_WORD = 2  # a single letter finds too much to be a useful term
# Term rows read per client asked for: a client has several terms with the same prefix.
TERMS_PER_RESULT = 4
LAST_CHARACTER = "\U0010ffff"  # sorts after every other one, in UTF-8 bytes and in code points


class _Client(msgspec.Struct):
    id: str
    name: str | None = None
    email: str | None = None


class _Event(msgspec.Struct):
    """The part of a journey event's JSON the directory reads (the rest is skipped)."""

    client: _Client


_DECODER = msgspec.json.Decoder(_Event)


@dataclass(frozen=True)
class ClientEntry:
    client_id: str
    name: str | None
    email: str | None
    first_seen_at: datetime
    last_seen_at: datetime


def terms_of(client_id: str, name: str | None, email: str | None) -> set[str]:
    """What a client is found by, lower-cased."""
    terms = {client_id.lower()}
    if email and email.strip():
        terms.add(email.strip().lower())
    if name and name.strip():
        lowered = " ".join(name.lower().split())
        terms.add(lowered)
        terms.update(word for word in lowered.split() if len(word) >= MIN_WORD)
    return {term[:MAX_TERM] for term in terms if term}


def prefix_range(query: str) -> tuple[str, str] | None:
    """The range of terms that start with ``query`` (lower-cased); None for an empty one."""
    lowered = " ".join(query.lower().split())[:MAX_TERM]
    return (lowered, lowered + LAST_CHARACTER) if lowered else None


def _chunks(rows: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class ClientRepo:
    def __init__(self, store: Store) -> None:
        self.store = store
        insert = store.insert(CLIENTS)
        newer = insert.excluded
        # A batch routed out of order (a replay of the stream) never overwrites a newer name.
        self._note = insert.on_conflict_do_update(
            index_elements=["tenant_id", "client_id"],
            set_={
                "name": newer.name,
                "email": newer.email,
                "sequence": newer.sequence,
                "last_seen_at": newer.last_seen_at,
            },
            where=CLIENTS.c.sequence < newer.sequence,
        )
        self._terms = store.insert(TERMS).on_conflict_do_nothing(
            index_elements=["tenant_id", "term", "client_id"]
        )

    def note(self, conn: Connection, kept: Iterable[dict[str, Any]]) -> None:
        """Note the clients of kept journey events (``journey_events.kept_row`` rows), in the
        caller's transaction: two statements for the whole batch."""
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        terms: set[tuple[str, str, str]] = set()
        for row in kept:
            client = _DECODER.decode(row["payload"]).client
            tenant_id = row["tenant_id"]
            key = (tenant_id, client.id)
            terms.update(
                (tenant_id, t, client.id) for t in terms_of(client.id, client.name, client.email)
            )
            if key not in newest or newest[key]["sequence"] < row["sequence"]:
                newest[key] = {
                    "tenant_id": tenant_id,
                    "client_id": client.id,
                    "name": client.name,
                    "email": client.email,
                    "sequence": row["sequence"],
                    "first_seen_at": row["received_at"],
                    "last_seen_at": row["received_at"],
                }
        if newest:
            conn.execute(self._note, list(newest.values()))
        if terms:
            conn.execute(
                self._terms,
                [{"tenant_id": t, "term": term, "client_id": c} for t, term, c in sorted(terms)],
            )

    async def search(self, tenant_id: str, query: str, *, limit: int) -> list[ClientEntry]:
        """The tenant's clients with a term starting with ``query``, those whose term comes
        first in order first (an exact match before longer ones)."""
        bounds = prefix_range(query)
        if bounds is None:
            return []
        matching = (
            select(TERMS.c.client_id)
            .where(TERMS.c.tenant_id == tenant_id, TERMS.c.term >= bounds[0])
            .where(TERMS.c.term < bounds[1])
            .order_by(TERMS.c.term)
            .limit(limit * TERMS_PER_RESULT)
        )
        async with self.store.transaction() as conn:
            found = list(dict.fromkeys((await conn.execute(matching)).scalars()))[:limit]
            if not found:
                return []
            rows = (
                await conn.execute(
                    select(CLIENTS).where(
                        CLIENTS.c.tenant_id == tenant_id, CLIENTS.c.client_id.in_(found)
                    )
                )
            ).all()
        by_id = {row.client_id: entry_of(row) for row in rows}
        return [by_id[client_id] for client_id in found if client_id in by_id]


def entry_of(row: Any) -> ClientEntry:
    """A ``clients`` row as an entry."""
    return ClientEntry(row.client_id, row.name, row.email, row.first_seen_at, row.last_seen_at)
