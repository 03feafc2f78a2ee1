"""Derive the Tave sandbox's contract from VSCO Workspace's published OpenAPI document.

    uv run --frozen python plugins/tave/scripts/derive_contract.py \
        /work/shared/vendor-specs/vsco-workspace-openapi.json

writes ``src/journeyhub_tave/contract.json``: for each operation the connector makes, the query
parameters, the request body and the answers' schemas, as structure only (types, required,
enums, properties, bounds; a named schema under ``$defs``, ``allOf`` merged, OpenAPI's
``nullable`` turned into JSON Schema, no prose), and the error answers' shapes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = (
    ("GET", "/address-book"),
    ("POST", "/address-book"),
    ("GET", "/address-book/{id}"),
    ("PUT", "/address-book/{id}"),
    ("GET", "/job"),
    ("POST", "/job"),
    ("GET", "/job/{id}"),
    ("PUT", "/job/{id}"),
    ("DELETE", "/job/{id}"),
    ("GET", "/note"),
    ("POST", "/note"),
    ("GET", "/job-contact"),
    ("POST", "/job-contact"),
    ("GET", "/job-type"),
    ("GET", "/lead-status"),
    ("GET", "/payment"),
    ("GET", "/payment/{id}"),
    ("GET", "/order/{id}"),
    ("GET", "/studio/me"),
    ("POST", "/rest-hook"),
)
KEEP = {
    "type", "required", "enum", "format", "pattern", "default", "readOnly", "writeOnly",
    "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "multipleOf",
}  # fmt: skip
SCHEMAS = "#/components/schemas/"


class Deriver:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.defs: dict[str, Any] = {}

    def pointer(self, ref: str) -> Any:
        node: Any = self.spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, node: Any, seen: tuple[str, ...] = (), inline: bool = False) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            name = ref.removeprefix(SCHEMAS)
            if "/" in name or inline:  # a part of a schema, or one to merge: inlined
                return {} if ref in seen else self.schema(self.pointer(ref), (*seen, ref))
            if name not in self.defs:
                self.defs[name] = {}  # a schema that contains itself refers to itself
                self.defs[name] = self.schema(self.pointer(ref), (ref,))
            return {"$ref": "#/$defs/" + name}
        out: dict[str, Any] = {k: v for k, v in node.items() if k in KEEP}
        if isinstance(node.get("properties"), dict):
            out["properties"] = {k: self.schema(v, seen) for k, v in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            out["items"] = self.schema(node["items"], seen)
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = self.schema(node["additionalProperties"], seen)
        for key in ("oneOf", "anyOf"):
            if key in node:
                out[key] = [self.schema(s, seen) for s in node[key]]
        for part in (self.schema(s, seen, inline=True) for s in node.get("allOf", ())):
            merge(out, part)
        if node.get("nullable") and out.get("type") != "null":
            return {"anyOf": [{"type": "null"}, out]}
        return out

    def parameters(self, op: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for param in op.get("parameters", ()):
            param = self.pointer(param["$ref"]) if "$ref" in param else param
            if param.get("in") == "query":
                found[param["name"]] = self.schema(param.get("schema", {}))
        return found

    def body(self, holder: dict[str, Any]) -> Any:
        holder = self.pointer(holder["$ref"]) if "$ref" in holder else holder
        content = holder.get("content", {}).get("application/json")
        return self.schema(content["schema"]) if content else None

    def operation(self, method: str, path: str) -> dict[str, Any]:
        op = self.spec["paths"][path][method.lower()]
        return {
            "query": self.parameters(op),
            "request": self.body(op["requestBody"]) if "requestBody" in op else None,
            "responses": {code: self.body(r) for code, r in op["responses"].items()},
        }


def merge(into: dict[str, Any], part: Any) -> None:
    """``allOf`` as one schema: both parts hold (properties merged alike, required joined, enums
    intersected); for other keys the later part's value."""
    if not isinstance(part, dict):
        return
    if set(part) == {"anyOf"} and part["anyOf"][:1] == [{"type": "null"}]:
        into.setdefault("anyOf", [{"type": "null"}])  # a nullable member keeps null allowed
        part = part["anyOf"][1]
    for key, value in part.items():
        if key == "properties":
            properties = into.setdefault("properties", {})
            for name, schema in value.items():
                merge(properties.setdefault(name, {}), schema)
        elif key == "required":
            into["required"] = sorted({*into.get("required", ()), *value})
        elif key == "enum" and "enum" in into:
            into["enum"] = [v for v in into["enum"] if v in value]
        elif key != "anyOf" or "anyOf" not in into:
            into[key] = value


def nullable_last(node: Any) -> Any:
    """A merged schema whose allOf allowed null: ``anyOf[null, the rest]``."""
    if isinstance(node, dict):
        node = {k: nullable_last(v) for k, v in node.items()}
        if node.get("anyOf") == [{"type": "null"}]:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return {"anyOf": [{"type": "null"}, rest]}
        return node
    return [nullable_last(v) for v in node] if isinstance(node, list) else node


def derive(spec: dict[str, Any]) -> dict[str, Any]:
    deriver = Deriver(spec)
    errors = spec["components"]["responses"]
    contract = {
        "source": f"VSCO Workspace API {spec['info']['version']} OpenAPI document "
        "(workspace.vsco.co/api/v2/openapi.json), derived by scripts/derive_contract.py",
        "operations": {f"{m} {p}": deriver.operation(m, p) for m, p in OPERATIONS},
        "errors": {name: deriver.body(r) for name, r in errors.items()},
    }
    return nullable_last({**contract, "$defs": deriver.defs})


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    target = Path(__file__).parents[1] / "src" / "journeyhub_tave" / "contract.json"
    target.write_text(json.dumps(derive(spec), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
