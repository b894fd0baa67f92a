"""Customer context command and query handlers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError

from contracts.validators import normalise_national_id
from crm_shared.access import TeamScope, may_act_on, require_customer_access
from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, json_ready
from crm_shared.errors import DuplicateCustomer, PermissionDenied, ValidationFailed
from services.customer.domain import PROFILE_FIELDS, Customer, NationalIdClaim
from services.customer.handover import Handover


def change_history(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The record's changes from its events: each field's value before and after."""
    current: dict[str, Any] = {}
    changes: list[dict[str, Any]] = []
    for event in events:
        when, who = event.timestamp.isoformat(), event.meta["actor"]
        if isinstance(event, Customer.Registered):
            current = {
                name: json_ready(getattr(event, name)) for name in (*PROFILE_FIELDS, "owning_agent_id")
            }
            changes.append({"what": "registered", "changes": [], "who": who, "when": when, "why": None})
        elif isinstance(event, Customer.ProfileUpdated):
            fields = [{"field": n, "from": current.get(n), "to": v} for n, v in sorted(event.changes.items())]
            current.update(event.changes)
            changes.append(
                {"what": "profile_updated", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
        elif isinstance(event, Customer.OwnerChanged):
            fields = [{"field": "owning_agent_id", "from": event.previous_agent_id, "to": event.new_agent_id}]
            current["owning_agent_id"] = event.new_agent_id
            changes.append(
                {"what": "owner_changed", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
    return changes


class SalesForce(TeamScope, Protocol):
    """What the customer context asks the sales force: the scope rule's questions, and whether an
    owner may own customers now."""

    def owner_status(self, owner_id: str) -> str | None:
        """``active`` (an active agent, or the pool of an existing team), ``departed``, or None
        for an owner the sales force does not know."""
        ...


def require_active_owner(sales_force: SalesForce, owner_id: str, field: str) -> None:
    status = sales_force.owner_status(owner_id)
    if status is None:
        raise ValidationFailed.single(field, "unknown_agent", f"the sales force has no agent {owner_id}")
    if status != "active":
        raise ValidationFailed.single(
            field, "agent_departed", f"agent {owner_id} has departed: choose an active agent"
        )


class CustomerApplication(Handover):
    CONTEXT = "customer"

    def customer_in_scope(
        self, customer_id: str, meta: CommandMeta, scope: TeamScope, *, also: tuple[Role, ...] = ()
    ) -> Customer:
        """The customer, if the caller may act on it; otherwise the same refusal as for a customer
        that does not exist."""
        customer = self.find(Customer, customer_id)
        require_customer_access(
            meta.actor, customer_id, customer.owning_agent_id if customer else None, scope, also=also
        )
        assert customer is not None
        return customer

    @command
    def register_customer(self, data: dict[str, Any], meta: CommandMeta, sales_force: SalesForce) -> Decision:
        caller = meta.actor
        caller.require_role(Role.AGENT, Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        owner = data["owning_agent_id"]
        if not may_act_on(caller, owner, sales_force):
            raise PermissionDenied(
                f"you may register customers only for yourself (agents) or for the agents of your "
                f"teams (managers), not for '{owner}'"
            )
        require_active_owner(sales_force, owner, "owning_agent_id")
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
            explain_conflict=lambda: self._refuse_if_claimed(national_id, meta, sales_force),
        )

    def _refuse_if_claimed(self, national_id: str, meta: CommandMeta, scope: TeamScope) -> None:
        try:
            claim: NationalIdClaim = self.repository.get(NationalIdClaim.id_for(national_id))
        except AggregateNotFoundError:
            return
        existing = self.find(Customer, claim.customer_id)
        if existing is not None and may_act_on(meta.actor, existing.owning_agent_id, scope):
            raise DuplicateCustomer(
                f"a customer with this national id already exists: {claim.customer_id}",
                details={"existing_customer_id": claim.customer_id},
            )
        # Someone else's customer: that the person is a customer already cannot be hidden (a
        # national id is registered once), but which customer it is, and who owns it, is.
        raise DuplicateCustomer(
            "a customer with this national id already exists, outside your book; ask your manager "
            "or the service desk to reassign the customer to you"
        )

    @command
    def reassign_customer(self, data: dict[str, Any], meta: CommandMeta, sales_force: SalesForce) -> Decision:
        caller = meta.actor
        caller.require_role(Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        customer_id = str(data["customer_id"])
        customer = self.customer_in_scope(customer_id, meta, sales_force)
        new_owner = data["new_agent_id"]
        if not may_act_on(caller, new_owner, sales_force):
            raise PermissionDenied(f"a manager reassigns within their teams only; {new_owner} is not in them")
        require_active_owner(sales_force, new_owner, "new_agent_id")
        customer.change_owner(new_owner, data["reason"], meta)
        return Decision(
            {"customer_id": customer_id, "owning_agent_id": new_owner, "version": customer.version},
            (customer,),
        )

    @command
    def update_profile(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        meta.actor.require_role(Role.AGENT, Role.MANAGER, Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        changes = customer.update_profile(data, data["reason"], meta)
        answer = {"customer_id": str(customer.id), "changed": sorted(changes), "version": customer.version}
        return Decision(answer, (customer,) if changes else ())

    def get_customer_history(
        self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope
    ) -> dict[str, Any]:
        """Every change of the record: what, from, to, who, when and why, oldest first."""
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        return {
            "customer_id": str(customer.id),
            "changes": change_history(self.repository.event_store.get(customer.id)),
        }

    def get_customer(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        return {
            "customer_id": str(customer.id),
            "full_name": customer.full_name,
            "national_id": customer.national_id,
            "mobile_phone": customer.mobile_phone,
            "email": customer.email,
            "date_of_birth": customer.date_of_birth.isoformat(),
            "address": customer.address,
            "owning_agent_id": customer.owning_agent_id,
            "ownership_history": customer.ownership,
            "version": customer.version,
            "registered_at": customer.created_on.isoformat(),
        }
