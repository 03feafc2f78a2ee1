"""OpenTelemetry traces: one trace from a journey event or an inbound webhook through the
gateway, the bus, the workers and the vendor call. Off unless the standard ``OTEL_*``
environment variables turn it on (:func:`setup_from_env`, once per process; docs/operations.md
lists which ones and what they mean here).

The hub spends about 3 ms of CPU per journey event, so tracing that is off must cost nothing:
every instrumented stage reads the module-level :data:`ENABLED` and does nothing else when it
is False (no span object, no context attached, no header put on a message). The helpers below
are only called once it is True.

Trace context crosses the bus as W3C ``traceparent`` / ``tracestate`` headers on the NATS
message. Attributes hold ids and names only (subjects, connection, task, event and request
ids, hosts, statuses): never a URL's path or query (a catch-hook path or ``?token=`` is a
secret), a body, an error's message (it may quote the vendor's words about a client) or a
client's name, email or phone.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import structlog
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger(__name__)
T = TypeVar("T")

ENABLED = False  # read by every instrumented stage: the whole cost of tracing when off
DEFAULT_SERVICE_NAME = "journeyhub"
SUPPORTED_EXPORTERS = ("otlp", "console")
_tracer: Tracer | None = None
_owned: TracerProvider | None = None  # made by setup_from_env: flushed by shutdown
# W3C trace context only: OTEL_PROPAGATORS is not read, and baggage is never carried (a
# caller's baggage is untrusted input that would ride every message of its journey).
_propagator = TraceContextTextMapPropagator()


# --- set-up ---------------------------------------------------------------------------------


def install(provider: TracerProvider) -> None:
    """Trace into ``provider`` from now on (a test passes one with an in-memory exporter)."""
    global ENABLED, _tracer
    _tracer = provider.get_tracer("journeyhub")
    ENABLED = True


def uninstall() -> None:
    """Stop tracing (the provider is left as it is: its owner shuts it down)."""
    global ENABLED, _tracer
    ENABLED = False
    _tracer = None


def wanted_exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; [] when tracing stays off.

    ``OTEL_SDK_DISABLED=true`` turns everything off. ``OTEL_TRACES_EXPORTER`` (a comma-separated
    list) names them: ``otlp`` (OTLP over HTTP/protobuf), ``console``; ``none`` or nothing usable
    is off. Unset, the spec's default (``otlp``) applies only when an OTLP endpoint is set
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): a hub
    nobody pointed at a collector does not trace into localhost."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        named = "otlp" if endpoint else "none"
    exporters = []
    for name in dict.fromkeys(part.strip() for part in named.split(",")):
        if name in ("", "none"):
            continue
        if name not in SUPPORTED_EXPORTERS:
            log.warning("otel_exporter_unsupported", exporter=name, supported=SUPPORTED_EXPORTERS)
            continue
        if name == "otlp":
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                log.warning("otel_protocol_unsupported", protocol=protocol)
                continue
        exporters.append(name)
    return exporters


def service_name(environ: Mapping[str, str], detected: str | None) -> str:
    """``OTEL_SERVICE_NAME``, else ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, else
    ``journeyhub`` (the SDK's own default would be ``unknown_service``)."""
    if environ.get("OTEL_SERVICE_NAME"):
        return environ["OTEL_SERVICE_NAME"]
    if detected and not detected.startswith("unknown_service"):
        return detected
    return DEFAULT_SERVICE_NAME


def setup_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on when the environment asks for it (:func:`wanted_exporters`), with a
    TracerProvider (sampler from ``OTEL_TRACES_SAMPLER``), the resource from
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME``, and each exporter in a
    BatchSpanProcessor (``OTEL_BSP_*``). Once per process; True when tracing is on."""
    environ = os.environ if environ is None else environ
    exporters = wanted_exporters(environ)
    if not exporters or _owned is not None:
        return _owned is not None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    detected = Resource.create({})
    name = service_name(environ, str(detected.attributes.get(SERVICE_NAME) or ""))
    provider = TracerProvider(resource=detected.merge(Resource({SERVICE_NAME: name})))
    for exporter_name in exporters:
        exporter: SpanExporter
        if exporter_name == "otlp":
            # Endpoint, headers, timeout, compression and certificates: OTEL_EXPORTER_OTLP_*,
            # read by the exporter itself.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter(service_name=name)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _set_owned(provider)
    install(provider)
    log.info("tracing_on", service_name=name, exporters=exporters)
    return True


def _set_owned(provider: TracerProvider | None) -> None:
    global _owned
    _owned = provider


def shutdown() -> None:
    """Export what is buffered and stop (at the end of the process)."""
    provider = _owned
    uninstall()
    _set_owned(None)
    if provider is not None:
        provider.shutdown()


def _start(
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, Any],
    parent: Any = None,
    links: list[Link] | None = None,
) -> Span:
    assert _tracer is not None, "tracing.ENABLED without a tracer"
    return _tracer.start_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        links=links,
        record_exception=False,  # an exception's message may hold personal data
        set_status_on_exception=False,
    )


def end(span: Span | None, error: BaseException | None = None) -> None:
    """End ``span``; failed with the error's type (never its message) when there is one."""
    if span is None:
        return
    if error is not None:
        fail(span, type(error).__name__)
    span.end()


def fail(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


# --- the gateway ----------------------------------------------------------------------------


@contextmanager
def server_span(
    method: str, route: str, headers: Mapping[str, str] | None, attributes: Mapping[str, Any]
) -> Iterator[Span]:
    """The current span of one gateway request. ``headers`` (a caller we trust to continue
    its trace: the journey engine) may hold its ``traceparent``; None starts a new trace."""
    parent = _propagator.extract(headers) if headers else None
    span = _start(
        f"{method} {route}",
        SpanKind.SERVER,
        {"http.request.method": method, "http.route": route, **attributes},
        parent,
    )
    with _current(span):
        yield span


@contextmanager
def internal_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """The current span of some work of the hub's own (a sync run), child of the current."""
    span = _start(name, SpanKind.INTERNAL, attributes)
    with _current(span):
        yield span


@contextmanager
def _current(span: Span) -> Iterator[None]:
    """``span`` current inside the block, and ended at its end (failed on an exception)."""
    try:
        with trace.use_span(span, end_on_exit=False):
            yield
    except BaseException as exc:
        end(span, exc)
        raise
    else:
        span.end()


def answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        fail(span, str(status))


# --- the bus --------------------------------------------------------------------------------


def destination(prefix: str, subject: str) -> str:
    """A subject's low-cardinality name, for span names: ``jh.push`` for ``jh.push.<id>``."""
    kind = subject[len(prefix) + 1 :].split(".", 1)[0]
    return f"{prefix}.{kind}"


def publish_span(prefix: str, subject: str, msg_id: str, headers: dict[str, str]) -> Span:
    """A producer span for one JetStream publish, child of the current span; its context goes
    into the message's ``headers``."""
    span = _start(
        f"publish {destination(prefix, subject)}",
        SpanKind.PRODUCER,
        {
            "messaging.system": "nats",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": subject,
            "messaging.message.id": msg_id,
        },
    )
    _propagator.inject(headers, context=trace.set_span_in_context(span))
    return span


def parent_of(msg: Msg) -> Any:
    """The trace context a message's publisher put in its headers (an empty one if none)."""
    return _propagator.extract(msg.headers or {})


def process_span(
    prefix: str, msg: Msg, consumer: str, attributes: Mapping[str, Any] | None = None
) -> Span:
    """A consumer span for handling one message, child of its publish span. Not current:
    make it so with :func:`active` around the work done for that message."""
    headers = msg.headers or {}
    return _start(
        f"process {destination(prefix, msg.subject)}",
        SpanKind.CONSUMER,
        {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": msg.subject,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": headers.get("Nats-Msg-Id", ""),
            **(attributes or {}),
        },
        _propagator.extract(headers),
    )


def batch_span(
    prefix: str, messages: list[Msg], consumer: str, attributes: Mapping[str, Any]
) -> Span:
    """One consumer span for messages handled together (one vendor call for several tasks):
    child of the first one's publish span, linked to every one's."""
    links = [Link(trace.get_current_span(parent_of(m)).get_span_context()) for m in messages]
    return _start(
        f"process {destination(prefix, messages[0].subject)}",
        SpanKind.CONSUMER,
        {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": consumer,
            "messaging.batch.message_count": len(messages),
            **attributes,
        },
        parent_of(messages[0]),
        links,
    )


@contextmanager
def active(span: Span | None) -> Iterator[None]:
    """``span`` is the current span inside the block (nothing changes for None)."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


async def within(span: Span | None, work: Awaitable[T]) -> T:
    """Await ``work`` with ``span`` current (the publishes a message's handling makes)."""
    with active(span):
        return await work


# --- the vendor call ------------------------------------------------------------------------


def client_span(method: str, url: str, headers: dict[str, str]) -> Span:
    """A client span for one vendor call, child of the current span; its context goes into
    the request's ``headers`` (W3C ``traceparent``). The host only: a URL's path and query can
    hold a secret."""
    parts = urlsplit(url)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "url.scheme": parts.scheme,
    }
    if parts.port:
        attributes["server.port"] = parts.port
    span = _start(method, SpanKind.CLIENT, attributes)
    _propagator.inject(headers, context=trace.set_span_in_context(span))
    return span


def vendor_answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        fail(span, str(status))


# --- log lines ------------------------------------------------------------------------------


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, when tracing."""
    if not ENABLED:
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict
