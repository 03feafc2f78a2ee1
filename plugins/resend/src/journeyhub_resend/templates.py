"""Rendering the connection's email templates (Jinja2, sandboxed).

Templates are written by tenants, so they run in a ``SandboxedEnvironment``: no attribute access
to Python internals. HTML is autoescaped (a client named ``<script>`` stays text); subject and
text are not. ``StrictUndefined`` turns a typo such as ``{{ client.frist_name }}`` into a clear
error (a permanent failure) instead of an email with a hole in it; ``None`` renders as nothing.
Rendering is deterministic for a given task, so a retry posts the same body under the same
idempotency key, which is what Resend needs to answer it as a replay.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment


class RenderError(Exception):
    """A template failed to compile or render; the message says where and why."""


def long_date(value: dt.date | None) -> str:
    """A friendly date without zero padding, e.g. ``Saturday 6 June 2026``."""
    if value is None:
        return ""
    return f"{value:%A} {value.day} {value:%B %Y}"


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _date_filter(value: Any, fmt: str = "%d %B %Y") -> str:
    """``{{ wedding.date | date("%d/%m/%Y") }}``; ISO strings are accepted too."""
    parsed = parse_date(value)
    return parsed.strftime(fmt) if parsed is not None else ""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, finalize=_finalize)
    env.filters["date"] = _date_filter
    env.filters["long_date"] = lambda value: long_date(parse_date(value))
    return env


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    return (_HTML if html else _TEXT).from_string(source)


def compile_check(source: str, *, html: bool) -> str | None:
    """None when ``source`` compiles, else what is wrong with it (and on which line)."""
    try:
        _compiled(source, html)
    except TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    return None


def render(source: str, context: dict[str, Any], *, html: bool, where: str) -> str:
    """Render ``source``; raise :class:`RenderError` naming ``where`` on any failure."""
    try:
        return _compiled(source, html).render(context)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{where} does not compile: {exc.message} (line {exc.lineno})") from None
    except Exception as exc:  # a template can raise anything: undefined names, 1/0, sandbox
        raise RenderError(f"{where} failed to render: {type(exc).__name__}: {exc}") from None
