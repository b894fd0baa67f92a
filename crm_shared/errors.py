"""Structured errors returned by every RPC. Each error has a stable ``code``; validation errors also
name each offending field and the rule it broke."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

_RULE_MESSAGE = re.compile(r"^([a-z_]+): (.+)$")
# Marshmallow's own messages, mapped to rule codes; anything else it says is about the value's type.
_BUILTIN_RULES = {
    "Missing data for required field.": "required",
    "Field may not be null.": "not_null",
    "Unknown field.": "unknown_field",
    "Invalid input type.": "type",
    "Not a valid email address.": "format",
    "Special numeric values (nan or infinity) are not permitted.": "finite",
    "Not a valid aware datetime.": "timezone",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class CrmError(Exception):
    """An error the caller can act on. ``details`` carries extra, code-specific facts."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = [f.as_dict() for f in self.fields]
        error.update(self.details)
        return error


class ValidationFailed(CrmError):
    code = "validation_failed"

    @classmethod
    def from_marshmallow(cls, error: ValidationError) -> ValidationFailed:
        return cls(
            "the request is invalid: see 'fields' for each field and the rule it broke",
            fields=flatten_marshmallow_errors(error.messages),
        )

    @classmethod
    def single(cls, field_name: str, rule: str, message: str) -> ValidationFailed:
        return cls(f"{field_name}: {message}", fields=[FieldError(field_name, rule, message)])


class Unauthenticated(CrmError):
    code = "unauthenticated"


class PermissionDenied(CrmError):
    code = "permission_denied"


class NotFound(CrmError):
    code = "not_found"


class DuplicateCustomer(CrmError):
    code = "duplicate_customer"


class CustomerMerged(CrmError):
    """The customer was merged into another; ``survivor_id`` names it."""

    code = "customer_merged"

    @classmethod
    def into(cls, customer_id: object, survivor_id: object, field: str = "customer_id") -> CustomerMerged:
        return cls(
            f"customer {customer_id} was merged into {survivor_id}: use that customer id",
            fields=[FieldError(field, "customer_merged", f"merged into {survivor_id}")],
            details={"survivor_id": str(survivor_id)},
        )

    @property
    def survivor_id(self) -> str:
        return str(self.details["survivor_id"])


class ConcurrencyConflict(CrmError):
    code = "concurrency_conflict"


class InvalidState(CrmError):
    """The command is valid but the aggregate's current state does not allow it."""

    code = "invalid_state"


class DependencyUnavailable(CrmError):
    code = "dependency_unavailable"


def flatten_marshmallow_errors(messages: Any, prefix: str = "") -> list[FieldError]:
    """Turn marshmallow's nested message dict into (field, rule, message) triples."""
    found: list[FieldError] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            found.extend(flatten_marshmallow_errors(value, name or "_schema"))
    elif isinstance(messages, list):
        for item in messages:
            found.extend(flatten_marshmallow_errors(item, prefix))
    else:
        text = str(messages)
        matched = _RULE_MESSAGE.match(text)
        if matched:
            found.append(FieldError(prefix or "_schema", matched.group(1), matched.group(2)))
        else:
            rule = _BUILTIN_RULES.get(text, "type")
            found.append(FieldError(prefix or "_schema", rule, text))
    return found
