"""Customer context command and query handlers."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError

from contracts.validators import normalise_national_id
from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import (
    DuplicateCustomer,
    FieldError,
    NotFound,
    PermissionDenied,
)
from crm_shared.eventstore import CrmApplication
from services.customer.domain import Customer, NationalIdClaim


class CustomerApplication(CrmApplication):
    CONTEXT = "customer"

    @command
    def register_customer(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        caller = meta.actor
        caller.require_role(Role.AGENT, Role.OPERATOR, Role.ADMIN)
        if caller.role == Role.AGENT and data["owning_agent_id"] != caller.agent_id:
            raise PermissionDenied(
                f"agent '{caller.agent_id}' may register customers only for themselves, "
                f"not for '{data['owning_agent_id']}'"
            )
        national_id = normalise_national_id(data["national_id"])
        customer = Customer.register(
            full_name=data["full_name"],
            national_id=national_id,
            mobile_phone=data["mobile_phone"],
            email=data["email"],
            date_of_birth=data["date_of_birth"],
            address=data["address"],
            owning_agent_id=data["owning_agent_id"],
            meta=meta,
        )
        # The claim's id is derived from the national id, so a person registered before (or by a
        # registration racing this one) collides with it in the same atomic append: no read first.
        claim = NationalIdClaim.claim(national_id, str(customer.id), meta)
        return Decision(
            {"customer_id": str(customer.id)},
            (customer, claim),
            explain_conflict=lambda: self._refuse_if_claimed(national_id),
        )

    def _refuse_if_claimed(self, national_id: str) -> None:
        try:
            claim: NationalIdClaim = self.repository.get(NationalIdClaim.id_for(national_id))
        except AggregateNotFoundError:
            return
        raise DuplicateCustomer(
            f"a customer with this national id already exists: {claim.customer_id}",
            details={"existing_customer_id": claim.customer_id},
        )

    def get_customer(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        customer_id = data["customer_id"]
        try:
            customer: Customer = self.repository.get(customer_id)
        except AggregateNotFoundError:
            raise NotFound(
                f"no customer {customer_id}",
                fields=[FieldError("customer_id", "unknown_customer", "no such record exists")],
            ) from None
        if not isinstance(customer, Customer):
            raise NotFound(f"no customer {customer_id}")
        meta.actor.require_customer_access(
            customer.owning_agent_id, f"customer {customer_id}", also=(Role.SERVICE_DESK,)
        )
        return {
            "customer_id": str(customer.id),
            "full_name": customer.full_name,
            "national_id": customer.national_id,
            "mobile_phone": customer.mobile_phone,
            "email": customer.email,
            "date_of_birth": customer.date_of_birth.isoformat(),
            "address": customer.address,
            "owning_agent_id": customer.owning_agent_id,
            "version": customer.version,
            "registered_at": customer.created_on.isoformat(),
        }
