"""The base of every API model: camelCase aliases, no unknown fields, paired rules.

Each cross-field rule is written once as a :class:`Rule`: a CEL expression the API
server evaluates (it lands in the CRD as ``x-kubernetes-validations``), the message a
person reads when it fails, and the same check in Python, so ``kubeserve render`` and
the operator refuse exactly what the API server refuses, with the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    """A validation rule: CEL for the API server, a Python twin, one human message."""

    cel: str
    message: str
    check: Callable[[Any], bool]


class ApiModel(BaseModel):
    """Base model: camelCase on the wire, unknown fields refused, rules enforced."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()
    """Cross-field rules of this object (CEL + Python + message)."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Add this model's CEL rules to its JSON schema."""
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.cel_rules:
            target["x-kubernetes-validations"] = [
                {"rule": rule.cel, "message": rule.message} for rule in cls.cel_rules
            ]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        """Refuse the object when one of its rules fails, with the rule's message."""
        for rule in self.cel_rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (camelCase, unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
