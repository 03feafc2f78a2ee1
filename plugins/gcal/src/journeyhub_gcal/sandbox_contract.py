"""The sandbox's check of every Calendar API request against ``calendar_v3.json`` (derived from
Google's discovery document): the method by HTTP method and path, its query parameters (known
names, booleans, integers within bounds, enums, RFC 3339 times) and its JSON body (the request
schema; unknown names refused). A refusal is what Google answers a request it cannot bind:
400 ``INVALID_ARGUMENT`` (the message texts are assumed, see the README)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator

SPEC: dict[str, Any] = json.loads(
    files("journeyhub_gcal").joinpath("calendar_v3.json").read_text("utf-8")
)
ROUTES = [
    (m["httpMethod"], re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", m["path"]) + "$"), name)
    for name, m in SPEC["methods"].items()
]
BODIES = {
    name: Draft202012Validator({"$defs": SPEC["$defs"], "$ref": f"#/$defs/{m['request']}"})
    for name, m in SPEC["methods"].items()
    if "request" in m
}


def method_of(http_method: str, path: str) -> str | None:
    """The discovery method a request names (``path`` after ``/calendar/v3/``), if any."""
    return next((n for m, rx, n in ROUTES if m == http_method and rx.match(path)), None)


def _bad_value(name: str, value: str, spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    if kind == "boolean":
        return value not in ("true", "false")
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            return True
        return not spec.get("minimum", number) <= number <= spec.get("maximum", number)
    if "enum" in spec:
        return value not in spec["enum"]
    if spec.get("format") == "date-time":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None
        except ValueError:
            return True
    return False


def _without_nulls(value: Any) -> Any:
    """A patch's nulls clear fields: any field may be null."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def check(method: str, query: list[tuple[str, str]], body: Any) -> str | None:
    """Why Google would refuse this call of ``method`` (None: it would not)."""
    known = {**SPEC["parameters"], **SPEC["methods"][method]["parameters"]}
    seen: set[str] = set()
    for name, value in query:
        spec = known.get(name)
        if spec is None:
            return (
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                f"parameter. Field '{name}' could not be found in request message."
            )
        if name in seen and not spec.get("repeated"):
            return f"Invalid JSON payload received. Field '{name}' is not repeated."
        seen.add(name)
        if _bad_value(name, value, spec):
            return f"Invalid value at '{name}' ({spec['type']}), \"{value}\""
    validator = BODIES.get(method)
    if validator is None or not isinstance(body, dict):
        return None  # no body, or not JSON: the route answers parseError
    error = next(iter(validator.iter_errors(_without_nulls(body))), None)
    if error is None:
        return None
    where = "resource" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
    )
    if error.validator == "additionalProperties":
        unknown = min(set(error.instance) - set(error.schema.get("properties", {})))
        return (
            f"Invalid JSON payload received. Unknown name \"{unknown}\" at '{where}': "
            "Cannot find field."
        )
    return f"Invalid value at '{where}' ({error.schema.get('type')}), {json.dumps(error.instance)}"
