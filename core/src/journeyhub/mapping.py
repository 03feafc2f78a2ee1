"""The field-mapping engine: a connection's list of {source, target, transform, default}
applied to a journey event, producing the vendor fields a connector sends.

Mappings are validated when a connection is saved (:func:`validate_mappings`), so a typo is a
422 at configuration time, not a failed delivery at 3 a.m.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, get_args, get_origin, get_type_hints

import msgspec
from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from journeyhub.model import FieldMapping, JourneyEvent

TRANSFORMS = (
    "date",
    "upper",
    "lower",
    "strip",
    "title",
    "map",
    "template",
    "first_name",
    "last_name",
    "string",
    "int",
)
_env = SandboxedEnvironment(autoescape=False, undefined=Undefined)


class MappingError(ValueError):
    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"field_mappings[{index}].{field}: {message}")
        self.index = index
        self.field = field
        self.path = f"$.field_mappings[{index}].{field}"


# --- source paths ------------------------------------------------------------------------------


def _free_form(kind: Any) -> bool:
    return get_origin(kind) is dict or kind is Any


def _check_path(path: str) -> str | None:
    """None when ``path`` can address a journey-event field, else why not."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        return "must be a dotted path such as 'client.email'"
    kind: Any = JourneyEvent
    for depth, part in enumerate(parts):
        if _free_form(kind):
            return None  # inside ``data``: any key is allowed
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            hints = get_type_hints(kind)
            if part not in hints:
                known = ", ".join(sorted(hints))
                where = ".".join(parts[:depth]) or "the event"
                return f"{where} has no field {part!r} (known: {known})"
            kind = hints[part]
            args = [a for a in get_args(kind) if a is not type(None)]
            if args and get_origin(kind) is not dict:
                kind = args[0]
            continue
        return f"{'.'.join(parts[:depth])} is a value; it has no field {part!r}"
    return None


def resolve(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# --- transforms ----------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _template(source: str) -> Any:
    return _env.from_string(source)


def _parse_date(value: Any) -> dt.date | dt.datetime:
    if isinstance(value, dt.date):
        return value
    text = str(value)
    try:
        return (
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if "T" in text
            else (dt.date.fromisoformat(text))
        )
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date") from None


def _split_transform(transform: str) -> tuple[str, str]:
    name, _, arg = transform.partition(":")
    return name.strip(), arg


def apply_one(mapping: FieldMapping, event: dict[str, Any]) -> Any:
    value = resolve(event, mapping.source)
    if mapping.transform is None:
        return mapping.default if value is None else value
    name, arg = _split_transform(mapping.transform)
    if name == "template":
        try:
            rendered = _template(mapping.options.get("template", "")).render(
                event=event, value=value
            )
        except Exception as exc:  # the user's template: undefined fields, 1/0, sandbox refusals
            raise ValueError(f"template failed: {type(exc).__name__}: {exc}") from None
        return rendered if rendered != "" else mapping.default
    if value is None or value == "":
        return mapping.default
    if name == "date":
        return _parse_date(value).strftime(arg or "%Y-%m-%d")
    if name in ("upper", "lower", "strip", "title"):
        return getattr(str(value), name)()
    if name == "map":
        values = mapping.options.get("values", {})
        return values.get(str(value), mapping.default if mapping.default is not None else value)
    if name in ("first_name", "last_name"):
        parts = str(value).split()
        if not parts:
            return mapping.default
        return parts[0] if name == "first_name" else (" ".join(parts[1:]) or mapping.default)
    if name == "string":
        return str(value)
    if name == "int":
        try:
            return int(value)
        except OverflowError:  # int(float("inf"))
            raise ValueError(f"{value!r} is not an integer") from None
    raise ValueError(f"unknown transform {name!r}")


def apply_mappings(mappings: Sequence[FieldMapping], event: JourneyEvent) -> dict[str, Any]:
    """The vendor fields for ``event``: ``{target: value}``; a target may be dotted."""
    data = msgspec.to_builtins(event)
    out: dict[str, Any] = {}
    written: set[str] = set()  # targets that hold a value
    containers: set[str] = set()  # targets made objects by a dotted target below them
    for mapping in mappings:
        value = apply_one(mapping, data)
        if value is None:
            continue
        *parents, leaf = mapping.target.split(".")
        above = {".".join(parents[: i + 1]) for i in range(len(parents))}
        if mapping.target in containers or above & written:
            # e.g. a plugin's default "contact.email" and a connection's own "contact"
            raise ValueError(f"target {mapping.target!r} conflicts with another mapping's target")
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
        written.add(mapping.target)
        containers |= above
    return out


def merge_defaults(
    defaults: Sequence[FieldMapping], overrides: Sequence[FieldMapping]
) -> list[FieldMapping]:
    """The plugin's default mappings, with the connection's own replacing the same targets."""
    own = {m.target for m in overrides}
    return [m for m in defaults if m.target not in own] + list(overrides)


# --- validation -----------------------------------------------------------------------------------


def validate_mappings(mappings: Sequence[FieldMapping]) -> None:
    """Raise :class:`MappingError` naming the first bad entry."""
    targets: set[str] = set()
    for index, mapping in enumerate(mappings):
        if problem := _check_path(mapping.source):
            raise MappingError(index, "source", problem)
        if not mapping.target or any(not p for p in mapping.target.split(".")):
            raise MappingError(index, "target", "must be a non-empty field name")
        for other in targets:
            # "a" and "a.b" cannot both be written: one is a value, the other needs an object
            if mapping.target.startswith(other + ".") or other.startswith(mapping.target + "."):
                raise MappingError(
                    index, "target", f"{mapping.target!r} and {other!r} cannot both be set"
                )
        targets.add(mapping.target)
        if mapping.transform is None:
            continue
        name, arg = _split_transform(mapping.transform)
        if name not in TRANSFORMS:
            raise MappingError(
                index, "transform", f"unknown transform {name!r} (known: {', '.join(TRANSFORMS)})"
            )
        if name == "date":
            try:
                dt.date(2026, 6, 20).strftime(arg or "%Y-%m-%d")
            except ValueError as exc:
                raise MappingError(index, "transform", f"bad date format {arg!r}: {exc}") from None
            if arg and "%" not in arg:
                raise MappingError(index, "transform", f"date format {arg!r} has no % directive")
        if name == "map" and not isinstance(mapping.options.get("values"), dict):
            raise MappingError(
                index, "options", "a 'map' transform needs options.values {from: to}"
            )
        if name == "template":
            source = mapping.options.get("template")
            if not isinstance(source, str) or not source:
                raise MappingError(
                    index, "options", "a 'template' transform needs options.template"
                )
            try:
                _template(source)
            except TemplateError as exc:
                raise MappingError(index, "options.template", f"does not compile: {exc}") from None
