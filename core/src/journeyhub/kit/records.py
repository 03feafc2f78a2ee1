"""A push's vendor id map: write each record by the id the hub knows, find it only where it may
exist unknown to the hub, else create it; and report every record the push used.

The kernel gives a push ``known`` (:class:`~journeyhub.model.Known`): the records the hub knows
for the task's client at the connection (what earlier pushes wrote or found, what the pull saw
with the client's email), and whether that map is complete. For each record it needs, a
connector that writes by vendor id then:

1. uses the known id (:meth:`IdMap.find`, :meth:`IdMap.known_id`), and when a write to it
   answers 404 (deleted at the vendor) reports it deleted and drops it (:meth:`IdMap.forget`);
2. else, when the map may lack it (:meth:`IdMap.must_look`: a later attempt or after a dead
   letter, when an earlier write may have lost its answer; or a known record of that kind was
   just found deleted, and another may stand for it), looks it up at the vendor
   (:meth:`IdMap.lookup` makes a lookup once per push);
3. else creates it (a complete map without it means the vendor has none).

Each record used goes through :meth:`IdMap.use` (or :meth:`IdMap.report`) with the canonical
fields the push wrote, so the result (:meth:`IdMap.result`) tells the hub about it. When the
vendor refuses a create because a record it names is missing, :meth:`IdMap.recheck` finds which
known one was deleted, forgets it and raises :class:`Stale`. :meth:`IdMap.run` runs the push's
writes: again after :class:`Stale` (what was forgotten is then found or made afresh), and, when
they fail, with the records reported so far attached to the ``ConnectorError``, so the next
attempt knows them and creates nothing twice. Subclass :class:`IdMap` with the vendor's calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from journeyhub.errors import ConnectorError, PermanentError
from journeyhub.model import Known, KnownRecord, PushResult, SyncedRecord

T = TypeVar("T")


class Stale(Exception):
    """Raised by a push's writes after forgetting a record that a write named: run them again."""


class IdMap:
    """One push's records, by kind: ``ids`` (the vendor id in use) and ``how`` it was had
    ("known", "found", "updated", "created"), ``records`` (what the result reports) and ``gone``
    (``(kind, vendor id)`` found deleted). ``refs``: which of the client's records of a kind the
    push means (a project: its journey instance id); ``links``: kinds of records that join the
    others (a project's client link), dropped when a record in use is forgotten."""

    def __init__(
        self,
        known: Known,
        our_id: str | None,
        refs: Mapping[str, str | None] | None = None,
        links: Collection[str] = (),
    ) -> None:
        self.known, self.our_id, self.refs, self.links = known, our_id, dict(refs or {}), links
        self.ids: dict[str, str] = {}
        self.how: dict[str, str] = {}
        self.records: dict[tuple[str, str], SyncedRecord] = {}
        self.gone: set[tuple[str, str]] = set()
        self.looked: dict[str, Any] = {}  # lookups made, by kind

    def ref_of(self, record: KnownRecord) -> str | None:
        """A known record's ref (override when the vendor's records keep it elsewhere too)."""
        return record.ref

    def find(self, kind: str, **fields: Any) -> KnownRecord | None:
        """The known record of ``kind`` with this push's ref and the given ``fields`` (where it
        has them), not found deleted; ours before the studio's own."""
        ref = self.refs.get(kind)
        found = [r for r in self.known.records if r.kind == kind and ref in (None, self.ref_of(r))]
        found = [r for r in found if (kind, r.vendor_id) not in self.gone]
        found = [r for r in found if all(r.fields.get(k, v) == v for k, v in fields.items())]
        return min(found, key=lambda r: r.our_id is None, default=None)

    def known_id(self, kind: str, **fields: Any) -> str | None:
        return known.vendor_id if (known := self.find(kind, **fields)) else None

    def must_look(self, kind: str) -> bool:
        """Whether a record of ``kind`` the map lacks may exist at the vendor all the same."""
        return not self.known.first_attempt or any(k == kind for k, _ in self.gone)

    async def lookup(self, kind: str, look: Callable[[], Awaitable[T]]) -> T:
        """``look()`` for the record of ``kind``: once per push, again once it is forgotten."""
        if kind not in self.looked:
            self.looked[kind] = await look()
        return self.looked[kind]

    def report(self, kind: str, vendor_id: str, fields: Any = None, **more: Any) -> None:
        self.records[(kind, vendor_id)] = SyncedRecord(
            kind=kind, vendor_id=vendor_id, fields=dict(fields or {}), our_id=self.our_id, **more
        )

    def use(
        self, kind: str, vendor_id: str, how: str, fields: Any = None, email: Any = None
    ) -> str:
        """Take ``vendor_id`` as the push's record of ``kind``, had ``how``, and report it with
        the ``fields`` written and its email (from ``fields``, else ``email``)."""
        self.ids[kind], self.how[kind] = vendor_id, how
        email = (fields or {}).get("email") or email
        email = email if isinstance(email, str) else None
        self.report(kind, vendor_id, fields, ref=self.refs.get(kind), email=email)
        return vendor_id

    def forget(self, kind: str, vendor_id: str, ref: str | None = None) -> None:
        """A known id answered 404: report it deleted, and stop using it (and its links)."""
        self.gone.add((kind, vendor_id))
        self.report(kind, vendor_id, ref=ref, deleted=True)
        if self.ids.get(kind) == vendor_id:
            for dropped in (kind, *self.links):
                self.ids.pop(dropped, None)
                self.how.pop(dropped, None)
            self.looked.pop(kind, None)

    async def recheck(
        self, kinds: Collection[str], read: Callable[[str, str], Awaitable[Any]]
    ) -> None:
        """After the vendor refused a write that named the records of ``kinds`` in use (for a
        missing reference): ``read(kind, vendor_id)`` (None: deleted) each of them had from
        ``known``, forget those gone and raise :class:`Stale`; return when none is gone."""
        named = [(k, self.ids[k]) for k in kinds if self.how.get(k) == "known"]
        gone = [(k, v) for k, v in named if await read(k, v) is None]
        for kind, vendor_id in gone:
            self.forget(kind, vendor_id, self.refs.get(kind))
        if gone:
            raise Stale

    def result(self, vendor_status: int | None) -> PushResult:
        return PushResult(
            vendor_status=vendor_status, external_ids=self.ids, records=list(self.records.values())
        )

    async def run(self, writes: Callable[[], Awaitable[T]], rounds: int = 4) -> T:
        """``writes()``, again after it raised :class:`Stale` (each round forgets at least one
        known record); a ``ConnectorError`` leaves with the records reported so far."""
        try:
            for _ in range(rounds):
                with contextlib.suppress(Stale):
                    return await writes()
            raise PermanentError("the vendor kept refusing the records this push found deleted")
        except ConnectorError as exc:
            exc.records = list(self.records.values())
            raise
