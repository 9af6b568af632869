"""Base classes and scalar types shared by every API model.

Field names are snake_case in Python and camelCase on the wire (Kubernetes convention). Money,
accuracy thresholds and observed figures are decimal *strings* on the wire (no floats in spec) and
:class:`decimal.Decimal` in Python.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NON_NEGATIVE_DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
SIGNED_DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


class SpecModel(BaseModel):
    """A part of ``spec``: unknown fields are refused, as ``kubectl apply`` (strict field validation) does."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The camelCase, JSON-ready form, as it would be stored in the API server."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(BaseModel):
    """A part of ``status``: written by the operator, read leniently (unknown fields ignored)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _decimal_validator(pattern: str, what: str) -> Any:
    compiled = re.compile(pattern)

    def validate(value: object) -> Decimal:
        if isinstance(value, Decimal):
            return value
        if not isinstance(value, str):
            raise ValueError(f'must be a {what} written as a string, e.g. "0.85" (got {type(value).__name__})')
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not a {what} (pattern {pattern})")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees a parse
            raise ValueError(f"{value!r} is not a decimal number") from exc

    return validate


def _decimal_to_str(value: Decimal) -> str:
    return format(value, "f")


Money = Annotated[
    Decimal,
    PlainValidator(_decimal_validator(NON_NEGATIVE_DECIMAL_PATTERN, "non-negative decimal")),
    PlainSerializer(_decimal_to_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": NON_NEGATIVE_DECIMAL_PATTERN, "maxLength": 32}),
]
"""A non-negative decimal string such as ``"0.85"`` (currency units per hour)."""

Threshold = Annotated[
    Decimal,
    PlainValidator(_decimal_validator(SIGNED_DECIMAL_PATTERN, "decimal")),
    PlainSerializer(_decimal_to_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": SIGNED_DECIMAL_PATTERN, "maxLength": 32}),
]
"""A decimal string such as ``"0.999"`` or ``"-0.5"`` (an accuracy bound)."""

QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}


def _quantity(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError('must be an integer or a Kubernetes quantity string such as "500m" or "2Gi"')
    return value


Quantity = Annotated[int | str, PlainValidator(_quantity), WithJsonSchema(QUANTITY_SCHEMA)]
"""A Kubernetes resource quantity: an integer or a string such as ``"500m"``."""
