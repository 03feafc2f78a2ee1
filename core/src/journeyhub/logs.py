"""structlog set-up: JSON lines (console on a TTY), a correlation id on every line, and a
processor that scrubs secrets before anything is written."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import msgspec
import structlog

from journeyhub.tracing import add_trace_ids

# Keys whose values are always secret, whatever they hold.
_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|credential|signature|private[_-]?key)",
    re.IGNORECASE,
)
# Values that look like a credential wherever they appear inside a string.
_SECRET_VALUE = re.compile(
    r"(whsec_[A-Za-z0-9+/=_-]+|[sr]k_(live|test)_[A-Za-z0-9]+|re_[A-Za-z0-9]+_[A-Za-z0-9]{16,}|"
    r"jh_[a-z0-9]+_[A-Za-z0-9_-]{20,}|Bearer\s+[A-Za-z0-9._~+/=-]+)"
)
REDACTED = "[redacted]"


class SecretRegistry:
    """Every secret value the process has decrypted or minted; scrubbed from any log line.

    Pattern matching alone misses vendor keys of unknown shape, so the store registers each
    credential value here when it decrypts it."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                self.add(item)
            return
        if isinstance(value, list | tuple):
            for item in value:
                self.add(item)
            return
        if isinstance(value, str) and len(value) >= 6:
            # As it is, and as it reads inside a JSON string (a quote or a backslash in it is
            # escaped there): the JSON lines are scrubbed once they are rendered.
            forms = {value, msgspec.json.encode(value).decode()[1:-1]}
            with self._lock:
                if not forms <= self._values:
                    self._values |= forms
                    self._pattern = None

    def scrub(self, text: str) -> str:
        text = _SECRET_VALUE.sub(REDACTED, text)
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                escaped = sorted((re.escape(v) for v in self._values), key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(escaped))
        return pattern.sub(REDACTED, text) if pattern else text


secrets_registry = SecretRegistry()


def _redact(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEY.search(key) and value not in (None, "", {}, []):
        return REDACTED
    if isinstance(value, str):
        return secrets_registry.scrub(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    if isinstance(value, BaseException):
        return secrets_registry.scrub(repr(value))
    return value


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and scrub secret values everywhere."""
    for key in list(event_dict):
        event_dict[key] = _redact(event_dict[key], None if key == "event" else key)
    return event_dict


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _mask_keys(value: Any, key: str | None = None) -> Any:
    if key is not None and _secret_key(key) and value not in (None, "", {}, []):
        return REDACTED
    if isinstance(value, dict):
        return {k: _mask_keys(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_keys(v) for v in value]
    if isinstance(value, BaseException):
        return repr(value)
    return value


def mask_secret_keys(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor for JSON lines: mask the values of secret-named keys, at any depth.
    Secret values elsewhere are scrubbed from the rendered line (``_scrub_rendered``), which
    holds every value once, instead of value by value here."""
    for key in list(event_dict):
        if key != "event":
            event_dict[key] = _mask_keys(event_dict[key], key)
    return event_dict


def _scrub_rendered(_: Any, __: str, rendered: Any) -> Any:
    # Last line of defence: tracebacks are rendered after redact_secrets ran.
    return secrets_registry.scrub(rendered) if isinstance(rendered, str) else rendered


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now (pytest swaps it per test), not at set-up."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


class _NamedPrintLogger(structlog.WriteLogger):
    """A line and its newline in one write (a print writes them apart: two system calls)."""

    def __init__(self, file: Any, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    """Print loggers that know the name given to ``get_logger``, for ``add_logger_name``."""

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(_STDERR, str(args[0]) if args else "")


def _add_logger_name(
    logger: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def _json(event_dict: Any, **_: Any) -> str:
    """A log line as JSON, with msgspec (a quarter of a line's cost less than the stdlib's);
    a value it cannot encode is written as its ``repr``."""
    return msgspec.json.encode(event_dict, enc_hook=repr).decode()


def configure_logging(log_format: str | None = None, level: str = "info") -> None:
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    # httpx logs every request URL at INFO through the standard library; a vendor URL may
    # carry a token (Zapier catch hooks, ?token=). Our own lines say what was called.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,  # trace_id and span_id when tracing is on
        _add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        tail: list[Any] = [redact_secrets, renderer]
    else:
        tail = [
            structlog.processors.format_exc_info,
            mask_secret_keys,
            structlog.processors.JSONRenderer(serializer=_json),
        ]
    structlog.configure(
        processors=[*shared, *tail, _scrub_rendered],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_NamedPrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger whose lines name their module (``logger``): the gateway, a worker, a plugin."""
    return structlog.get_logger(name)


def bind_correlation_id(correlation_id: str) -> None:
    """Carry one correlation id from the webhook or event through bus, worker and vendor call."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


MAX_CORRELATION_ID = 80  # the width of deliveries.correlation_id


def child_correlation_id(parent: str, child: str) -> str:
    """``parent:child`` (a request's id and one event's id), at most 80 characters: a long
    child is replaced by a digest, so the parent stays a searchable prefix."""
    joined = f"{parent}:{child}" if parent else child
    if len(joined) <= MAX_CORRELATION_ID:
        return joined
    digest = hashlib.sha256(child.encode()).hexdigest()[:16]
    return f"{parent[: MAX_CORRELATION_ID - len(digest) - 1]}:{digest}"


def correlation_scope(correlation_id: str | None, **more: Any) -> Any:
    """A ``with`` block whose log lines carry ``correlation_id`` (and ``more``); the previous
    values come back at its end, so one message's ids never leak onto the next one's lines."""
    values = {k: v for k, v in more.items() if v is not None}
    if correlation_id:
        values["correlation_id"] = correlation_id
    return structlog.contextvars.bound_contextvars(**values)


def reset_log_context(**values: Any) -> None:
    """Forget every bound value of this context (a new message, a new request) and bind
    ``values``."""
    structlog.contextvars.clear_contextvars()
    if values:
        structlog.contextvars.bind_contextvars(**values)
