"""A per-connection circuit breaker whose state is shared by every worker through the store.

closed → (``threshold`` failures in a row) → open → (after ``cooldown``) one worker takes the
half-open probe → closed on success, open again on failure. While open, tasks wait in the bus
(redelivered later); they are not failed. A 429 sets ``paused_until`` the same way.

State is read through a short in-process cache so a busy connection does not query the store
for every task; a transition is written with a compare-and-set on the lease row, so two
workers cannot both take the half-open probe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from journeyhub import metrics
from journeyhub.model import utcnow
from journeyhub.store.store import Store
from journeyhub.store.tables import Lease

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class BreakerState:
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0  # epoch seconds
    paused_until: float = 0.0  # epoch seconds (Retry-After)
    probe_holder: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait: float = 0.0  # seconds to wait before trying again, when not allowed
    probe: bool = False
    reason: str = ""


class Breakers:
    def __init__(
        self,
        store: Store,
        *,
        holder: str,
        threshold: int = 5,
        cooldown: float = 30.0,
        cache_ttl: float = 0.5,
    ) -> None:
        self.store = store
        self.holder = holder
        self.threshold = threshold
        self.cooldown = cooldown
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, BreakerState]] = {}

    @staticmethod
    def _name(connection_id: str) -> str:
        return f"breaker:{connection_id}"

    async def state(self, connection_id: str, *, fresh: bool = False) -> BreakerState:
        now = time.monotonic()
        hit = self._cache.get(connection_id)
        if not fresh and hit is not None and hit[0] > now:
            return hit[1]
        async with self.store.session() as s:
            row = await s.get(Lease, self._name(connection_id))
        state = BreakerState(**row.state) if row is not None and row.state else BreakerState()
        self._cache[connection_id] = (now + self.cache_ttl, state)
        return state

    async def _write(
        self, connection_id: str, new: BreakerState, expect: BreakerState | None
    ) -> bool:
        """Compare-and-set the state: False when another worker changed it first."""
        name = self._name(connection_id)
        try:
            async with self.store.session() as s:
                row = await s.get(Lease, name, with_for_update=True)
                if row is None:
                    if expect is not None and expect.state != CLOSED:
                        return False
                    s.add(
                        Lease(
                            name=name, holder=self.holder, state=new.to_json(), expires_at=utcnow()
                        )
                    )
                else:
                    current = BreakerState(**row.state) if row.state else BreakerState()
                    if expect is not None and (current.state, current.probe_holder) != (
                        expect.state,
                        expect.probe_holder,
                    ):
                        return False
                    await s.execute(
                        update(Lease)
                        .where(Lease.name == name)
                        .values(state=new.to_json(), holder=self.holder, expires_at=utcnow())
                    )
        except IntegrityError:
            return False
        self._cache[connection_id] = (time.monotonic() + self.cache_ttl, new)
        metrics.breaker_state.labels(connection_id).set(1 if new.state == OPEN else 0)
        return True

    async def allow(self, connection_id: str) -> Decision:
        state = await self.state(connection_id)
        now = time.time()
        if state.paused_until > now:
            return Decision(False, state.paused_until - now, reason="rate limited by the vendor")
        if state.state == CLOSED:
            return Decision(True)
        if state.state == OPEN:
            remaining = state.opened_at + self.cooldown - now
            if remaining > 0:
                return Decision(False, remaining, reason="circuit open")
            fresh = await self.state(connection_id, fresh=True)
            if fresh.state != OPEN:
                return (
                    await self.allow(connection_id)
                    if fresh.state == CLOSED
                    else Decision(False, 1.0, reason="half-open probe in progress")
                )
            probe = BreakerState(
                HALF_OPEN, fresh.failures, fresh.opened_at, fresh.paused_until, self.holder
            )
            if await self._write(connection_id, probe, expect=fresh):
                return Decision(True, probe=True)
            return Decision(False, 1.0, reason="half-open probe taken by another worker")
        # HALF_OPEN: only the holder probes; a probe lost with its worker expires after cooldown
        if state.probe_holder == self.holder:
            return Decision(True, probe=True)
        if now - state.opened_at > 2 * self.cooldown:
            stale = BreakerState(OPEN, state.failures, now - self.cooldown, state.paused_until)
            await self._write(connection_id, stale, expect=state)
        return Decision(False, 1.0, reason="half-open probe in progress")

    async def success(self, connection_id: str) -> None:
        state = await self.state(connection_id)
        if state.state == CLOSED and state.failures == 0:
            return
        await self._write(connection_id, BreakerState(), expect=None)

    async def failure(self, connection_id: str) -> None:
        state = await self.state(connection_id, fresh=True)
        failures = state.failures + 1
        if state.state == HALF_OPEN or failures >= self.threshold:
            new = BreakerState(OPEN, failures, time.time(), state.paused_until)
        else:
            new = BreakerState(CLOSED, failures, state.opened_at, state.paused_until)
        await self._write(connection_id, new, expect=None)

    async def pause(self, connection_id: str, seconds: float) -> None:
        state = await self.state(connection_id, fresh=True)
        until = time.time() + seconds
        if until > state.paused_until:
            state.paused_until = until
            await self._write(connection_id, state, expect=None)

    async def snapshot(self, connection_id: str) -> dict[str, Any]:
        state = await self.state(connection_id, fresh=True)
        opened = datetime.fromtimestamp(state.opened_at).astimezone() if state.opened_at else None
        return {
            "state": state.state,
            "failures": state.failures,
            "opened_at": opened.isoformat() if opened else None,
            "reopens_at": (opened + timedelta(seconds=self.cooldown)).isoformat()
            if opened and state.state == OPEN
            else None,
        }


async def all_open(store: Store) -> list[str]:
    async with store.session() as s:
        rows = (await s.execute(select(Lease).where(Lease.name.like("breaker:%")))).scalars()
        return [r.name.split(":", 1)[1] for r in rows if (r.state or {}).get("state") == OPEN]
