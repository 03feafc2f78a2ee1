"""A durable JetStream pull consumer read as a stream of messages.

One pull request at a time asks for up to ``batch`` messages and stays open ``expires``
seconds; the messages it brings are taken as they arrive. So the requests go with batches and
with time, not with messages: asking for each message at a trickle (a fetch of one, then a
short fetch for whatever came with it) cost the server about as much as storing the message
(``bench/e2e``'s profile), and the client a request and a timeout per message.

Messages that arrived and are not taken yet (every handler busy) are kept in progress, so
JetStream does not redeliver them while they wait here; messages taken are the taker's to keep
in progress and to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

# How long a take waits, once it has a message, for the rest of a burst (no request needed).
TOP_UP_WAIT = 0.005
HEARTBEAT = "100"  # a status that ends no request


class PullStream:
    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        durable: str,
        *,
        batch: int,
        expires: float,
        ack_wait: float,
    ) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires = expires
        self._keep_every = max(0.5, ack_wait / 4)
        self._ready: deque[tuple[float, Msg]] = deque()  # (arrived at, message)
        self._arrived = asyncio.Event()
        self._owed = 0  # messages the open request may still bring
        self._open_until = 0.0  # a request not heard of by then is taken for lost
        self._sub: Subscription | None = None
        self._keeper: asyncio.Task[None] | None = None

    async def open(self) -> PullStream:
        self._sub = await self._nc.subscribe(self._nc.new_inbox(), cb=self._receive)
        self._keeper = asyncio.create_task(self._keep_waiting_in_progress())
        return self

    async def take(self, most: int, wait: float) -> list[Msg]:
        """Up to ``most`` messages, as soon as there is one, or [] after ``wait`` seconds."""
        if not self._ready:
            await self._ask()
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait)
            if not self._ready:
                return []
            if len(self._ready) < most:
                await asyncio.sleep(TOP_UP_WAIT)
        return [self._ready.popleft()[1] for _ in range(min(most, len(self._ready)))]

    async def _ask(self) -> None:
        now = time.monotonic()
        if self._owed > 0 and now < self._open_until:
            return  # the open request is still bringing messages
        assert self._sub is not None
        request = {"batch": self._batch, "expires": int(self._expires * 1e9)}
        await self._nc.publish(self._next, msgspec.json.encode(request), reply=self._sub.subject)
        self._owed = self._batch
        # A request the server lost (a restart, a leader change) says nothing: after its
        # expiry and a margin, the next take asks again.
        self._open_until = now + self._expires + 1.0

    async def _receive(self, msg: Msg) -> None:
        status = JetStreamContext.is_status_msg(msg)
        if status is None:
            self._owed -= 1
            self._ready.append((time.monotonic(), msg))
        elif status != HEARTBEAT:  # expired, or ended by the server: ask again next time
            self._owed = 0
        self._arrived.set()

    async def _keep_waiting_in_progress(self) -> None:
        while True:
            await asyncio.sleep(self._keep_every)
            due = time.monotonic() - self._keep_every
            for arrived, msg in list(self._ready):
                if arrived < due:
                    with contextlib.suppress(Exception):  # reconnecting: the next beat will do
                        await msg.in_progress()

    async def close(self) -> None:
        """Stop; what arrived and was not taken goes back to the bus at once."""
        if self._keeper is not None:
            self._keeper.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        while self._ready:
            with contextlib.suppress(Exception):
                await self._ready.popleft()[1].nak()
