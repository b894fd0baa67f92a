"""How every RPC operation runs, independent of nameko: authenticate the caller, validate the payload
against its contract schema, run the handler, and turn every outcome into a result envelope:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code": ..., ...}}``. An unexpected
failure is logged with its correlation id and reported as ``internal_error``; it never escapes."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from marshmallow import Schema, ValidationError

from crm_shared.auth import Caller, Role
from crm_shared.commands import Repeated
from crm_shared.domain import CommandMeta
from crm_shared.errors import CrmError, CustomerMerged, NotFound, PermissionDenied, ValidationFailed

log = logging.getLogger("crm.rpc")

Handler = Callable[[dict[str, Any], CommandMeta], Any]


@functools.cache
def _instance(schema: type[Schema]) -> Schema:
    """One instance per schema: building one costs three times what validating with it does, and
    an instance keeps no state between loads."""
    return schema()


def error_envelope(error: CrmError, correlation_id: str) -> dict[str, Any]:
    return {"ok": False, "error": error.as_dict() | {"correlation_id": correlation_id}}


def internal_error_envelope(correlation_id: str) -> dict[str, Any]:
    """What a caller hears of an unexpected failure: no exception class, no traceback."""
    return {
        "ok": False,
        "error": {
            "code": "internal_error",
            "message": "the service failed unexpectedly; quote the correlation id to the operators, "
            "who will find it in the service log",
            "correlation_id": correlation_id,
        },
    }


class CustomerDirectory(Protocol):
    """What the sales and service desk contexts need to know of a customer: that it exists and who
    owns it. Raises NotFound for an unknown customer, PermissionDenied if the caller may not see it."""

    def owning_agent_of(self, customer_id: str) -> str: ...

    def birth_date_of(self, customer_id: str) -> date | None:
        """None for a record that holds none (an erased customer)."""
        ...


def unknown_customer_field(customer_id: str) -> ValidationFailed:
    """A command naming a customer that does not exist, or that the caller may not act on: one
    answer for both (see ``crm_shared.access``)."""
    return ValidationFailed.single(
        "customer_id", "unknown_customer", f"no customer {customer_id} that you may act on"
    )


def owning_agent_of_known_customer(
    customers: CustomerDirectory, customer_id: str, *, follow_merge: bool = False
) -> str:
    """The customer's owning agent; an unknown customer is the command's fault, not a lookup's.
    A customer merged into another refuses new business (``customer_merged``, naming the survivor,
    so that the caller corrects the id it holds rather than have a policy or a ticket land on a
    record it did not name); with ``follow_merge`` (reading what exists) the survivor's owner
    answers."""
    try:
        return customers.owning_agent_of(customer_id)
    except NotFound:
        raise unknown_customer_field(customer_id) from None
    except CustomerMerged as merged:
        if not follow_merge:
            raise
        return owning_agent_of_known_customer(customers, merged.survivor_id, follow_merge=True)


class Verifier(Protocol):
    def verify(self, token: object) -> Caller:
        """The caller a token names, or ``Unauthenticated``."""
        ...


# Who calls the operations that need no token (signing in).
ANONYMOUS = Caller("anonymous", Role.ANONYMOUS, kind="anonymous")


@dataclass(frozen=True)
class RequestContext:
    auth_token: object
    correlation_id: str
    command_id: str | None
    verifier: Verifier
    # The service answering: a service account may call only the operations its scopes name.
    service: str = ""

    @classmethod
    def from_headers(cls, data: dict[str, Any], verifier: Verifier, service: str = "") -> RequestContext:
        """``command_id`` is the caller's idempotency key: a command sent again with the same id
        (a client retry, or the broker redelivering a request whose reply was lost) has its effect
        once. Commands refuse to run without one; queries need none."""
        command_id = data.get("command_id")
        return cls(
            auth_token=data.get("auth_token"),
            correlation_id=str(data.get("correlation_id") or uuid.uuid4()),
            command_id=str(command_id) if command_id else None,
            verifier=verifier,
            service=service,
        )

    def caller(self, operation: str) -> Caller:
        caller = self.verifier.verify(self.auth_token)
        if caller.kind == "service" and f"{self.service}.{operation}" not in caller.scopes:
            raise PermissionDenied(
                f"service account {caller.user_id} may not call {self.service}.{operation}: "
                "an administrator adds it to the account's scopes"
            )
        return caller

    def run(
        self,
        operation: str,
        schema: type[Schema],
        payload: object,
        handler: Handler,
        *,
        command: bool = False,
        public: bool = False,
    ) -> dict:
        """``public``: an operation that needs no token (signing in), run as ``ANONYMOUS``."""
        try:
            caller = ANONYMOUS if public else self.caller(operation)
            if command and not self.command_id:
                raise ValidationFailed.single(
                    "command_id",
                    "required",
                    "send a unique command_id context header with every command (reuse it only "
                    "to retry the same command)",
                )
            if not isinstance(payload, dict):
                raise ValidationFailed.single("_payload", "type", "the payload must be an object")
            try:
                data = _instance(schema).load(payload)
            except ValidationError as e:
                raise ValidationFailed.from_marshmallow(e) from None
            causation = self.command_id or str(uuid.uuid4())
            result = handler(data, CommandMeta(self.correlation_id, causation, caller))
            if isinstance(result, Repeated):
                return {"ok": True, "result": dict(result), "repeated": True}
            return {"ok": True, "result": result}
        except CrmError as e:
            log.info(
                "%s refused: %s %s (correlation_id=%s)",
                operation,
                e.code,
                e.message,
                self.correlation_id,
            )
            return error_envelope(e, self.correlation_id)
        except Exception:
            log.exception("%s failed unexpectedly (correlation_id=%s)", operation, self.correlation_id)
            return internal_error_envelope(self.correlation_id)
