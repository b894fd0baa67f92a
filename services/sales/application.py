"""Sales context command and query handlers."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError

from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound
from crm_shared.eventstore import CrmApplication
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.sales.domain import Policy, policy_number_for


class SalesApplication(CrmApplication):
    CONTEXT = "sales"

    @command
    def sell_policy(self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory) -> Decision:
        caller = meta.actor
        caller.require_role(Role.AGENT, Role.OPERATOR, Role.ADMIN)
        customer_id = str(data["customer_id"])
        owning_agent = owning_agent_of_known_customer(customers, customer_id)
        caller.require_customer_access(owning_agent, f"customer {customer_id}")
        policy = Policy.sell(
            policy_number=policy_number_for(meta.causation_id),
            customer_id=customer_id,
            product=data["product"],
            annual_premium=data["annual_premium"],
            start_date=data["start_date"],
            term_years=data["term_years"],
            agent_id=owning_agent,
            meta=meta,
        )
        return Decision({"policy_number": policy.policy_number}, (policy,))

    def get_policy(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        number = data["policy_number"]
        try:
            policy: Policy = self.repository.get(Policy.id_for(number))
        except AggregateNotFoundError:
            raise NotFound(
                f"no policy {number}",
                fields=[FieldError("policy_number", "unknown_policy", "no such record exists")],
            ) from None
        meta.actor.require_customer_access(policy.agent_id, f"policy {number}", also=(Role.SERVICE_DESK,))
        return {
            "policy_number": policy.policy_number,
            "customer_id": policy.customer_id,
            "product": policy.product,
            "annual_premium": str(policy.annual_premium),
            "start_date": policy.start_date.isoformat(),
            "end_date": policy.end_date.isoformat(),
            "term_years": policy.term_years,
            "agent_id": policy.agent_id,
            "status": policy.status,
            "version": policy.version,
        }
