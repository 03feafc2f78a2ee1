"""The sync worker: scheduled and on-demand pulls of every connection whose plugin can pull,
each pulled record compared with what we last knew of it (``change_detection``).

Scheduling: each connection's interval (``options.pull_interval_seconds``, else the plugin's
``pull_interval_seconds``, default 5 minutes) is a lease in the store; the worker that claims it
syncs, so a connection is synced once per interval however many workers run. An on-demand sync
(API, CLI, a vendor notification) expires the lease so the next tick takes it. A second lease
keeps two runs of one connection from overlapping.

A run pulls pages until the plugin says there are no more (bounded per run). For each page:
its triggers and the changes found in its records are emitted, links updated, and only then is
the cursor saved, so a crash repeats a page and never skips one; repeated pages give the same
trigger ids, so nothing is emitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import Any

import msgspec

from journeyhub import tracing
from journeyhub.change_detection import compare, fingerprint
from journeyhub.errors import AuthExpired, ConnectorError, ReauthRequired
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger, reset_log_context
from journeyhub.model import Connection, PulledRecord, PullPage, TriggerDraft, utcnow
from journeyhub.services.connections import can_pull, sync_lease
from journeyhub.services.triggers import emit_triggers

log = get_logger(__name__)
MAX_PAGES_PER_RUN = 100
RUN_LEASE_TTL = 600.0
MAINTAIN_EVERY = 300.0  # seconds between journeyhub_maintain calls per connection


def interval_of(hub: Hub, connection: Connection) -> float:
    own = connection.options.get("pull_interval_seconds")
    if isinstance(own, int | float) and own > 0:
        return float(own)
    loaded = hub.registry.connectors.get(connection.vendor)
    return loaded.info.pull_interval_seconds if loaded else 300.0


class SyncWorker:
    def __init__(self, hub: Hub, tick: float = 1.0, public_url: str | None = None) -> None:
        self.hub = hub
        self.tick = tick
        self.public_url = (public_url or hub.settings.effective_public_url).rstrip("/")
        self.holder = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.runs = 0
        self.runs_by_connection: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        reset_log_context(worker="sync")
        while not stop.is_set():
            try:
                await self.tick_once()
            except Exception as exc:  # the store is down: try again next tick
                log.warning("sync_tick_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)

    async def maintain(self, connection: Connection) -> None:
        """Keep the connection's vendor-side resources alive (watch channels), every few
        minutes, in one worker at a time."""
        if not (connection.enabled and connection.status != "needs_reauth"):
            return
        if not self.hub.registry.implements(connection.vendor, "journeyhub_maintain"):
            return
        if not await self.hub.store.leases.claim(
            f"maint:{connection.id}", self.holder, MAINTAIN_EVERY
        ):
            return
        entry = await self.hub.connection_cache.get(connection.id)
        if entry is None:
            return
        connection, credentials = entry
        state_key = f"maint-state:{connection.id}"
        url = (
            f"{self.hub.settings.effective_public_url}/webhooks/{connection.vendor}/{connection.id}"
        )
        try:
            credentials = await self.hub.auth.credentials(connection, credentials)
            new_state = await self.hub.registry.call(
                connection.vendor,
                "journeyhub_maintain",
                connection=connection,
                credentials=credentials,
                http=self.hub.http,
                webhook_url=url,
                state=await self.hub.store.leases.state(state_key),
            )
        except ReauthRequired as exc:
            await self.hub.auth.mark_needs_reauth(connection, exc.message)
            return
        except ConnectorError as exc:
            log.warning("maintain_failed", connection_id=connection.id, error=exc.message)
            await self.hub.store.leases.make_due(f"maint:{connection.id}")  # try again soon
            return
        if new_state is not None:
            await self.hub.store.leases.set_state(state_key, dict(new_state))

    async def tick_once(self) -> int:
        """Sync every connection that is due and claimed by this worker; return how many."""
        synced = 0
        for connection in await self.hub.store.connections.list():
            await self.maintain(connection)
            if not can_pull(self.hub.registry, connection):
                continue
            run_lease = f"sync-run:{connection.id}"
            if not await self.hub.store.leases.claim(run_lease, self.holder, RUN_LEASE_TTL):
                continue
            try:
                interval = interval_of(self.hub, connection)
                if not await self.hub.store.leases.claim(
                    sync_lease(connection.id), self.holder, interval
                ):
                    continue
                await self.sync(connection)
                synced += 1
            finally:
                await self.hub.store.leases.release(run_lease, self.holder)
        return synced

    async def sync(self, connection: Connection) -> str:
        """One run over a connection: pages until done; returns a one-line result."""
        # One correlation id per run, carried by the triggers it emits and what they cause.
        correlation_id = f"sync:{connection.id}:{uuid.uuid4().hex[:12]}"
        with correlation_scope(correlation_id, connection_id=connection.id):
            if tracing.ENABLED:  # one trace per run: its vendor calls and its triggers
                with tracing.internal_span(
                    "sync",
                    {
                        "journeyhub.connection_id": connection.id,
                        "journeyhub.vendor": connection.vendor,
                    },
                ):
                    return await self._sync(connection, correlation_id)
            return await self._sync(connection, correlation_id)

    async def _sync(self, connection: Connection, correlation_id: str) -> str:
        self.runs += 1
        self.runs_by_connection[connection.id] = self.runs_by_connection.get(connection.id, 0) + 1
        entry = await self.hub.connection_cache.get(connection.id)
        if entry is None:
            return "connection gone"
        connection, credentials = entry
        saved = await self.hub.store.sync.cursor(connection.id)
        cursor = saved.cursor if saved else None
        pages = emitted = 0
        try:
            while pages < MAX_PAGES_PER_RUN:
                page = await self.pull(connection, credentials, cursor)
                pages += 1
                emitted += await self.apply(connection, page, correlation_id)
                cursor = page.next_cursor if page.next_cursor is not None else cursor
                result = f"ok: {pages} page(s), {emitted} trigger(s)"
                await self.hub.store.sync.save_cursor(connection.id, cursor, result)
                if not page.has_more:
                    break
        except ReauthRequired as exc:
            await self.hub.auth.mark_needs_reauth(connection, exc.message)
            result = f"needs reauth: {exc.message}"
            await self.hub.store.sync.save_cursor(connection.id, cursor, result)
            return result
        except ConnectorError as exc:
            result = f"failed after {pages} page(s): {exc.message}"
            await self.hub.store.sync.save_cursor(connection.id, cursor, result, failed=True)
            log.warning("sync_failed", connection_id=connection.id, error=exc.message)
            return result
        log.info("synced", connection_id=connection.id, pages=pages, triggers=emitted)
        return result

    async def pull(
        self, connection: Connection, credentials: dict[str, Any], cursor: str | None
    ) -> PullPage:
        credentials = await self.hub.auth.credentials(connection, credentials)
        try:
            return await self.hub.registry.call(
                connection.vendor,
                "journeyhub_pull",
                connection=connection,
                credentials=credentials,
                cursor=cursor,
                http=self.hub.http,
            )
        except AuthExpired:
            credentials = await self.hub.auth.credentials(connection, credentials, refused=True)
            return await self.hub.registry.call(
                connection.vendor,
                "journeyhub_pull",
                connection=connection,
                credentials=credentials,
                cursor=cursor,
                http=self.hub.http,
            )

    async def apply(
        self, connection: Connection, page: PullPage, correlation_id: str | None = None
    ) -> int:
        drafts: list[TriggerDraft] = list(page.triggers)
        for record in page.records:
            drafts.extend(await self.detect(connection, record))
        if not drafts:
            return 0
        return await emit_triggers(
            self.hub, connection, drafts, correlation_id or f"sync:{connection.id}"
        )

    async def detect(self, connection: Connection, record: PulledRecord) -> list[TriggerDraft]:
        """Compare with what we last knew; update the link; the drafts for real changes."""
        store = self.hub.store.sync
        link = await store.find(connection.id, record.kind, record.vendor_id)
        fp = fingerprint(record.fields)
        if (
            link is not None
            and link.fingerprint == fp
            and not link.pushed_fields
            and not (record.deleted and not link.deleted)
        ):
            return []  # nothing new (a repeated page, or an unchanged record)
        if record.fields.get("journeyhub_echo") is True and not record.deleted:
            outcome_drafts: list[TriggerDraft] = []  # the plugin recognised our own write
        else:
            policy = str(connection.options.get("conflict_policy", "newest_wins"))
            outcome = compare(
                record,
                None if link is None else (link.fields or {}),
                None if link is None else link.pushed_fields,
                pushed_at=None if link is None else link.pushed_at,
                policy=policy,
            )
            if link is not None and link.fields is None and not link.pushed_fields:
                outcome.changes.clear()  # linked by a push without fields: this is the baseline
            for conflict in outcome.conflicts:
                await self.hub.store.audit.record(
                    tenant_id=connection.tenant_id,
                    actor="sync",
                    action="sync.conflict",
                    connection_id=connection.id,
                    before={"field": conflict.field, "hub": conflict.hub_value},
                    after={
                        "field": conflict.field,
                        "vendor": conflict.vendor_value,
                        "policy": policy,
                        "winner": conflict.resolution,
                        "record": f"{record.kind}:{record.vendor_id}",
                    },
                )
            outcome_drafts = outcome.drafts(record, fp)
            if link is not None and link.our_id:  # who it belongs to, as our push recorded
                for draft in outcome_drafts:
                    draft.client_id = link.our_id
        email = record.fields.get("email")
        await store.link(
            connection.id,
            record.kind,
            record.vendor_id,
            our_id=record.our_id,
            email=email if isinstance(email, str) else None,
            fingerprint=fp,
            fields=msgspec.to_builtins(record.fields),
            vendor_modified_at=record.modified_at,
            deleted=record.deleted,
            clear_pushed=True,
        )
        return outcome_drafts


async def run(hub: Hub, stop: asyncio.Event) -> None:
    await SyncWorker(hub, tick=hub.settings.sync_tick_seconds).run(stop)


__all__ = ["SyncWorker", "run", "utcnow"]
