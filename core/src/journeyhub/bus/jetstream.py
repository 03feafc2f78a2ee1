"""JetStream streams, durable consumers and publishing.

Streams and consumers are provisioned explicitly and idempotently at start: a durable that
exists with an old configuration is updated, not silently kept (nats.py's ``pull_subscribe``
alone would keep the old one). Workers then bind to their durable.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from journeyhub import metrics, tracing
from journeyhub.bus.pull import PullStream
from journeyhub.bus.subjects import Subjects
from journeyhub.logs import get_logger
from journeyhub.settings import Settings

log = get_logger(__name__)

DAY = 24 * 3600.0


class BusUnavailable(RuntimeError):
    """The bus did not acknowledge: nothing was stored."""


@dataclass(frozen=True)
class StreamSpec:
    kind: str
    retention: RetentionPolicy
    max_age: float


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    stream_kind: str
    max_ack_pending: int


# Work queues are emptied as workers ack; triggers and dead letters are kept for readers.
STREAMS = (
    StreamSpec("inbound", RetentionPolicy.WORK_QUEUE, 7 * DAY),
    StreamSpec("events", RetentionPolicy.WORK_QUEUE, 7 * DAY),
    StreamSpec("push", RetentionPolicy.WORK_QUEUE, 7 * DAY),
    StreamSpec("triggers", RetentionPolicy.LIMITS, 7 * DAY),
    StreamSpec("dlq", RetentionPolicy.LIMITS, 30 * DAY),
)
CONSUMERS = (
    ConsumerSpec("inbound-worker", "inbound", max_ack_pending=2000),
    ConsumerSpec("router", "events", max_ack_pending=4000),
    # A task waiting for its retry (naked with a delay of up to hours) stays pending here, so a
    # vendor's outage must not use up the limit every other connection's tasks share.
    ConsumerSpec("push-worker", "push", max_ack_pending=100_000),
    ConsumerSpec("trigger-router", "triggers", max_ack_pending=2000),
)


def _call_kind(subject: str, reply: str) -> str:
    """What a message sent to NATS is for, from its subject (see ``metrics.bus_calls``)."""
    if subject.startswith("$JS.API."):
        if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
            return "fetch"
        return ".".join(subject.split(".")[2:4])  # e.g. CONSUMER.INFO, STREAM.INFO
    if subject.startswith("$JS.ACK."):
        return "ack"
    return "publish" if reply else "other"


def _count_calls(nc: NatsClient) -> None:
    """Count every message this client sends, by kind, in ``metrics.bus_calls``. Requests
    (JetStream publishes, API calls) go out through ``publish`` with a reply inbox, as do pull
    requests and acks, so wrapping ``publish`` sees them all once."""
    publish = nc.publish

    async def counted_publish(
        subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        metrics.child(metrics.bus_calls, _call_kind(subject, reply)).inc()
        await publish(subject, payload, reply=reply, headers=headers)

    nc.publish = counted_publish  # type: ignore[method-assign]


class Bus:
    def __init__(self, settings: Settings, url: str, replicas: int = 1) -> None:
        self.settings = settings
        self.url = url
        self.replicas = replicas
        self.subjects = Subjects(settings.subject_prefix)
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        return self._js

    async def connect(self, *, connect_timeout: float = 5.0) -> Bus:
        async def on_error(exc: Exception) -> None:
            log.warning("nats_error", error=repr(exc))

        try:
            # nats.py keeps retrying the first connect when reconnects are unlimited: bound it.
            self.nc = await asyncio.wait_for(
                nats.connect(
                    self.url.split(","),
                    connect_timeout=connect_timeout,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=on_error,
                    name="journeyhub",
                ),
                timeout=connect_timeout * 2,
            )
        except (TimeoutError, NoServersError, OSError) as exc:
            raise BusUnavailable(f"cannot reach NATS at {self.url}: {exc}") from exc
        _count_calls(self.nc)
        self._js = self.nc.jetstream(timeout=5.0)
        return self

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=10)
            except Exception:  # reconnecting or gone: close without draining
                await self.nc.close()
        self.nc = None
        self._js = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def ping(self, timeout: float = 2.0) -> None:
        """Round trip to the server and to JetStream; raises BusUnavailable."""
        if not self.connected:
            raise BusUnavailable("not connected to NATS")
        try:
            assert self.nc is not None
            # nats-py annotates int, but waits with asyncio.wait_for: a float is what it uses
            await self.nc.flush(timeout=timeout)  # type: ignore[arg-type]
            await asyncio.wait_for(self.js.account_info(), timeout)
        except Exception as exc:
            raise BusUnavailable(f"NATS did not answer: {exc!r}") from exc

    # --- provisioning ---------------------------------------------------------------------------

    def stream_config(self, spec: StreamSpec) -> StreamConfig:
        return StreamConfig(
            name=self.subjects.stream(spec.kind),
            subjects=[self.subjects.wildcard(spec.kind)],
            retention=spec.retention,
            storage=StorageType.FILE,
            max_age=spec.max_age,
            duplicate_window=float(self.settings.dedupe_window_seconds),
            num_replicas=self.replicas,
            discard=DiscardPolicy.OLD,
        )

    def consumer_config(self, spec: ConsumerSpec) -> ConsumerConfig:
        # max_deliver stays unlimited: the worker itself moves a message to the dead letters
        # after its last attempt (JOURNEYHUB_MAX_DELIVER for webhooks, the connection's retry
        # policy for pushes), so the server never drops one silently.
        return ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=float(self.settings.ack_wait_seconds),
            max_deliver=-1,
            max_ack_pending=spec.max_ack_pending,
            filter_subject=self.subjects.wildcard(spec.stream_kind),
        )

    async def provision(self) -> None:
        """Create or update every stream and durable consumer; safe to run at every start."""
        for spec in STREAMS:
            config = self.stream_config(spec)
            assert config.name is not None
            try:
                info = await self.js.stream_info(config.name)
            except NotFoundError:
                await self.js.add_stream(config)
                log.info("stream_created", stream=config.name)
                continue
            current = info.config
            if (
                current.subjects != config.subjects
                or current.duplicate_window != config.duplicate_window
                or current.max_age != config.max_age
                or (current.num_replicas or 1) != config.num_replicas
            ):
                # JetStream moves a stream between 1 and N replicas in place (scale up or down).
                await self.js.update_stream(config)
                log.info("stream_updated", stream=config.name)
        for consumer in CONSUMERS:
            stream = self.subjects.stream(consumer.stream_kind)
            wanted = self.consumer_config(consumer)
            try:
                found = await self.js.consumer_info(stream, consumer.durable)
            except NotFoundError:
                await self.js.add_consumer(stream, wanted)
                log.info("consumer_created", stream=stream, durable=consumer.durable)
                continue
            current = found.config
            if (
                current.ack_wait != wanted.ack_wait
                or current.max_ack_pending != wanted.max_ack_pending
                or current.max_deliver != wanted.max_deliver
            ):
                # add_consumer on an existing durable updates its mutable settings
                await self.js.add_consumer(stream, wanted)
                log.info("consumer_updated", stream=stream, durable=consumer.durable)

    # --- publishing ----------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> PubAck:
        """Publish and wait for JetStream's acknowledgement. ``msg_id`` is the dedupe key:
        a second publish with the same id inside the window is acknowledged as a duplicate."""
        all_headers = {"Nats-Msg-Id": msg_id, **(headers or {})}
        span = None
        if tracing.ENABLED:  # its context goes on the message, for the consumer's span
            span = tracing.publish_span(self.subjects.prefix, subject, msg_id, all_headers)
        try:
            return await self.js.publish(subject, payload, timeout=timeout, headers=all_headers)
        except (TimeoutError, NatsTimeoutError) as exc:
            raise BusUnavailable(f"no acknowledgement from JetStream for {subject}") from exc
        except Exception as exc:
            if isinstance(exc, BusUnavailable):
                raise
            raise BusUnavailable(f"publish to {subject} failed: {exc!r}") from exc
        finally:
            if span is not None:
                tracing.end(span, sys.exc_info()[1])

    async def pull(
        self, consumer: str, stream_kind: str, *, batch: int = 100, expires: float = 5.0
    ) -> PullStream:
        """The durable ``consumer``'s messages as a stream (``bus/pull.py``)."""
        if self.nc is None:
            raise BusUnavailable("not connected to NATS")
        return await PullStream(
            self.nc,
            self.subjects.stream(stream_kind),
            consumer,
            batch=batch,
            expires=expires,
            ack_wait=float(self.settings.ack_wait_seconds),
        ).open()
