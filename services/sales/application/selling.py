"""Selling: policies sold to the customers the caller may act on."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError

from crm_shared.access import TeamScope, may_act_on
from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound, ValidationFailed
from crm_shared.eventstore import CrmApplication
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer, unknown_customer_field
from services.sales.domain import Policy, policy_number_for


def unknown_policy(number: str) -> NotFound:
    return NotFound(
        f"no policy {number} that you may see",
        fields=[FieldError("policy_number", "unknown_policy", "no such policy in your scope")],
    )


class Selling(CrmApplication):
    @command
    def sell_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        caller = meta.actor
        caller.require_role(Role.AGENT, Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        customer_id = str(data["customer_id"])
        owning_agent = owning_agent_of_known_customer(customers, customer_id)
        if not may_act_on(caller, owning_agent, scope):
            raise unknown_customer_field(customer_id)
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

    def get_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> dict[str, Any]:
        """Seen by whoever may act on the policy's customer now (its owner may have changed since
        the sale): the customer context answers as the caller."""
        number = data["policy_number"]
        try:
            policy: Policy = self.repository.get(Policy.id_for(number))
        except AggregateNotFoundError:
            raise unknown_policy(number) from None
        if not meta.actor.sees_everything:
            try:
                owner = owning_agent_of_known_customer(customers, policy.customer_id, follow_merge=True)
            except (NotFound, ValidationFailed):
                raise unknown_policy(number) from None
            if not may_act_on(meta.actor, owner, scope, also=(Role.SERVICE_DESK,)):
                raise unknown_policy(number)
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
