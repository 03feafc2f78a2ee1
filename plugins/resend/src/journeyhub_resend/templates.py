"""The connection's email templates: Jinja2, sandboxed, since tenants write them. HTML is
autoescaped, subject and text are not. ``StrictUndefined`` makes a typo such as
``{{ client.frist_name }}`` a permanent failure naming it, not an email with a hole in it."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from journeyhub.kit import PermanentError


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def long_date(value: Any) -> str:
    """A friendly date without zero padding, e.g. ``Saturday 6 June 2026``."""
    date = parse_date(value)
    return f"{date:%A} {date.day} {date:%B %Y}" if date is not None else ""


def _date(value: Any, fmt: str = "%d %B %Y") -> str:
    """``{{ wedding.date | date("%d/%m/%Y") }}``; ISO strings are accepted too."""
    date = parse_date(value)
    return date.strftime(fmt) if date is not None else ""


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, finalize=lambda v: "" if v is None else v
    )
    env.filters.update(date=_date, long_date=long_date)
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
    """Render ``source``; any failure is a ``PermanentError`` naming ``where``."""
    if problem := compile_check(source, html=html):
        raise PermanentError(f"{where} does not compile: {problem}")
    try:
        return _compiled(source, html).render(context)
    except Exception as exc:  # a template can raise anything: undefined names, 1/0, sandbox
        raise PermanentError(f"{where} failed to render: {type(exc).__name__}: {exc}") from None
