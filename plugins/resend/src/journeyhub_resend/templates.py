"""The connection's email templates: Jinja2, sandboxed, since tenants write them. HTML is
autoescaped, subject and text are not. ``StrictUndefined`` makes a typo such as
``{{ client.frist_name }}`` a permanent failure naming it, not an email with a hole in it.
Dates and amounts are formatted by Babel (CLDR) in the ``locale`` of the render context."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from journeyhub.kit import PermanentError


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def locale_of(tag: str | None) -> Locale | None:
    """Babel's locale for a BCP 47 tag (``de-CH``), or None when CLDR has no data for it."""
    try:
        return Locale.parse(tag, sep="-") if tag else None
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def long_date(value: Any, locale: Locale | str = "en") -> str:
    """The full date in ``locale``: ``Saturday, June 6, 2026``, ``samedi 6 juin 2026``."""
    date = parse_date(value)
    return format_date(date, "full", locale=locale) if date is not None else ""


@pass_context
def _date(context: Context, value: Any, fmt: str = "long") -> str:
    """``date("%d/%m/%Y")`` (strftime), or a CLDR width or pattern in the email's locale:
    ``date("short")``, ``date("d MMMM y")``; ISO strings are accepted too."""
    date = parse_date(value)
    if date is None:
        return ""
    return date.strftime(fmt) if "%" in fmt else format_date(date, fmt, locale=context["locale"])


@pass_context
def _long_date(context: Context, value: Any) -> str:
    return long_date(value, context["locale"])


@pass_context
def _money(context: Context, amount: Any, currency: str) -> str:
    """``{{ data.amount | money("EUR") }}``: an amount in major units, in the email's locale."""
    return format_currency(Decimal(str(amount)), currency, locale=context["locale"])


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, finalize=lambda v: "" if v is None else v
    )
    env.filters.update(date=_date, long_date=_long_date, money=_money)
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
