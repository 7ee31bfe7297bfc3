"""Pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

The API server accepts only *structural* schemas: every node has a ``type`` (or is an
int-or-string / preserve-unknown-fields node), no ``$ref``, no ``anyOf`` of different
types, no ``additionalProperties`` next to ``properties``, and OpenAPI 3.0 spellings
(``exclusiveMinimum: true`` next to ``minimum``). Pydantic emits JSON Schema 2020-12
with ``$defs``, ``anyOf: [X, null]`` for optional fields and titles/defaults; this
module rewrites that into the structural form, and fails loudly on anything it does not
know how to express rather than emitting a schema the API server would reject.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JsonObject = dict[str, Any]

_DROPPED = {"title", "default", "examples"}
_KEPT_FORMATS = {"date-time", "int32", "int64", "double", "float", "byte"}
_INT_OR_STRING = "x-kubernetes-int-or-string"
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
STATUS_PATH = ".status."
"""Optional fields under status are nullable: the operator writes, and may write null."""


class SchemaError(ValueError):
    """The model uses a construct that has no structural OpenAPI equivalent."""


def structural_schema(model: type[BaseModel]) -> JsonObject:
    """Return the structural OpenAPI v3 schema of `model` (aliases, no $ref)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, JsonObject] = raw.pop("$defs", {})
    return _convert(raw, defs, path="")


def _resolve(node: JsonObject, defs: dict[str, JsonObject], path: str) -> JsonObject:
    """Inline a `$ref` (or single-item allOf/anyOf-with-null) and keep sibling keywords."""
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        return {**copy.deepcopy(defs[name]), **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        return {**_resolve(inner, defs, path), **node}
    if "anyOf" in node and not node.get(_INT_OR_STRING):
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(f"{path or '<root>'}: anyOf of several types is not structural")
        del node["anyOf"]
        resolved = {**_resolve(options[0], defs, path), **node}
        if path.startswith(STATUS_PATH) and not resolved.get(_PRESERVE):
            resolved["nullable"] = True  # the operator may write null for "unknown"
        return resolved
    return node


def _convert(node: JsonObject, defs: dict[str, JsonObject], path: str) -> JsonObject:
    """Convert one schema node and its children."""
    node = _resolve(node, defs, path)
    out: JsonObject = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "format":
            if value in _KEPT_FORMATS:
                out[key] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {
                name: _convert(child, defs, f"{path}.{name}") for name, child in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs, f"{path}{{}}")
            # `false` (extra="forbid") is implied: unknown fields are pruned by the API
            # server, and refused with fieldValidation=Strict (kubectl's default).
        elif key == "propertyNames":
            continue  # key constraints are not expressible in OpenAPI 3.0
        elif key == "anyOf":
            out[key] = value  # int-or-string: the one anyOf a structural schema allows
        else:
            out[key] = value
    if "type" not in out and not out.get(_INT_OR_STRING):
        if "properties" in out:
            out["type"] = "object"
        elif "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            raise SchemaError(f"{path or '<root>'}: schema node without a type: {node}")
    if "properties" in out and "additionalProperties" in out:
        raise SchemaError(f"{path}: properties and additionalProperties are exclusive")
    if out.get("properties") == {}:
        # The API server stores a CRD without an empty `properties`; written here, it
        # would make a server-side apply of the same file by another field manager a
        # conflict on spec.versions (an atomic list), as the kustomize install once was.
        del out["properties"]
    return _ordered(out)


def _ordered(node: JsonObject) -> JsonObject:
    """Return `node` with a stable, readable key order: type, description, then sorted."""
    first = [k for k in ("type", "description") if k in node]
    return {k: node[k] for k in [*first, *sorted(k for k in node if k not in first)]}
