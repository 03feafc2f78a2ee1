"""The published VSCO Workspace contract, as the sandbox holds requests to it.

``contract.json`` is derived from the vendor's OpenAPI document by ``scripts/derive_contract.py``
(structure only). ``Contract.check`` validates a request's query and body against the operation's
schemas and returns the problems as the API's validation error ``detail`` (field -> messages).
The sandbox is stricter than the document in one way, on purpose: a body property the schema does
not list is refused, so the connector cannot come to rely on an undocumented field.
"""

from __future__ import annotations

import json
from copy import deepcopy
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

Problems = dict[str, list[str]]


@cache
def load() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("contract.json").read_text())


def _strict(node: Any) -> Any:
    """Object schemas that list their properties refuse others."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    return [_strict(v) for v in node] if isinstance(node, list) else node


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """A query string value as the type its parameter schema names."""
    kind = schema.get("type")
    if kind == "integer":
        return int(value) if value.lstrip("-").isdigit() else value
    if kind == "boolean":
        return {"true": True, "1": True, "false": False, "0": False}.get(value.lower(), value)
    return value


@cache
def shared() -> Contract:
    return Contract()


@cache
def writable_names(operation: str, kind: Any = None) -> frozenset[str]:
    return frozenset(shared().writable(operation, kind))


class Contract:
    def __init__(self) -> None:
        document = load()
        self.operations: dict[str, Any] = document["operations"]
        self.defs: dict[str, Any] = document["$defs"]
        self.strict_defs = _strict(deepcopy(self.defs))

    def has(self, operation: str) -> bool:
        return operation in self.operations

    def entity(self, ref_or_schema: dict[str, Any], kind: Any = None) -> dict[str, Any] | None:
        """The entity schema a body names (``oneOf`` chosen by ``kind``, as the discriminator)."""
        for option in ref_or_schema.get("oneOf") or [ref_or_schema]:
            schema = self.defs[option["$ref"].rsplit("/", 1)[1]] if "$ref" in option else option
            kinds = schema.get("properties", {}).get("kind", {}).get("enum")
            if "oneOf" not in ref_or_schema or (kinds and kind in kinds):
                return schema
        return None

    def query(self, operation: str, params: Any) -> tuple[dict[str, Any], Problems]:
        """The documented parameters given (others are ignored, as filters the API lacks)."""
        declared = self.operations[operation]["query"]
        values = {k: _coerce(params[k], s) for k, s in declared.items() if k in params}
        schema = {"type": "object", "properties": declared, "$defs": self.defs}
        return values, self.problems(schema, values)

    def body(self, operation: str, body: Any) -> Problems:
        request = self.operations[operation]["request"]
        if not isinstance(body, dict):
            return {"body": ["must be a JSON object"]}
        if "oneOf" in request:  # the discriminator, ``kind``, chooses the schema
            kind = body.get("kind")
            chosen = [o for o in request["oneOf"] if self.entity({"oneOf": [o]}, kind)]
            if not chosen:
                return {"kind": ["is required: one of person, company, location"]}
            request = chosen[0]
        return self.problems({**request, "$defs": self.strict_defs}, body)

    def writable(self, operation: str, kind: Any = None) -> dict[str, Any]:
        """The entity's properties a write sets, with their schemas: those not read-only, and
        the required ones (a JobContact's ``jobId`` is both, as an ``Id``)."""
        return self.writable_of(self.entity(self.operations[operation]["request"], kind) or {})

    def writable_of(self, entity: dict[str, Any]) -> dict[str, Any]:
        required = set(entity.get("required", ()))
        return {
            name: schema
            for name, schema in entity.get("properties", {}).items()
            if name in required or not self.resolve(schema).get("readOnly")
        }

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return self.resolve(self.defs[schema["$ref"].rsplit("/", 1)[1]])
        if "anyOf" in schema:
            return {"nullable": True, **self.resolve(schema["anyOf"][-1])}
        return schema

    @staticmethod
    def problems(schema: dict[str, Any], value: Any) -> Problems:
        """What ``value`` breaks of ``schema``, as the API's validation ``detail``."""
        found: Problems = {}
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        for error in validator.iter_errors(value):
            where = "/".join(str(p) for p in error.absolute_path)
            if error.validator == "additionalProperties":
                for name in error.instance.keys() - set(error.schema.get("properties", {})):
                    found.setdefault("/".join(filter(None, (where, name))), []).append(
                        "is not a property of this entity"
                    )
                continue
            if error.validator == "required":
                name = error.message.split("'")[1]
                found.setdefault("/".join(filter(None, (where, name))), []).append("is required")
                continue
            found.setdefault(where or "body", []).append(error.message)
        return found
