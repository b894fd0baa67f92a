"""What the sales handlers share: the business's time zone and day, the tables beside the store,
and "may this caller act on this customer" through the customer context."""

from __future__ import annotations

import functools
from typing import Any

from crm_shared.access import TeamScope, may_act_on
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound, PermissionDenied
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer, unknown_customer_field
from services.sales.application.sales_force import SalesForce
from services.sales.domain.agent import pool_of
from services.sales.work import WorkIndex

# Who works sales: agents their own customers and days, managers their teams', operators and
# admins everyone's.
SELLERS = (Role.AGENT, Role.MANAGER, Role.OPERATOR, Role.ADMIN)


class SalesBase(SalesForce):
    @functools.cached_property
    def work(self) -> WorkIndex:
        return WorkIndex(self)

    def create_own_tables(self) -> None:
        self.work.create_tables()

    def owner_in_scope(
        self, customer_id: str, meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> str:
        """The customer's owning agent, refused as an unknown customer unless the caller may act
        on them."""
        owner = owning_agent_of_known_customer(customers, customer_id)
        if not may_act_on(meta.actor, owner, scope):
            raise unknown_customer_field(customer_id)
        return owner

    def agent_in_view(self, agent_id: str | None, caller: Caller) -> str:
        """The agent (or team pool) whose work a question is about, the caller by default;
        refused outside the caller's scope with the answer an unknown agent gets."""
        agent_id = agent_id or caller.agent_id
        if not agent_id or self.team_of(agent_id) is None or not may_act_on(caller, agent_id, self):
            raise NotFound(
                f"no agent {agent_id} that you may see",
                fields=[FieldError("agent_id", "unknown_agent", "no such agent in your scope")],
            )
        return agent_id

    def agents_in_view(self, data: dict[str, Any], caller: Caller) -> tuple[str, list[str]]:
        """Whose work a question is about: one agent, or a team's agents and its pool (whoever may
        act on the team's pool may see the team). Refused outside the caller's scope, with the
        answer an unknown agent or team gets."""
        if data.get("agent_id"):
            return "agent", [self.agent_in_view(data["agent_id"], caller)]
        team_id = data["team_id"]
        pool = pool_of(team_id)
        if self.team_of(pool) is None or not may_act_on(caller, pool, self):
            if caller.role == Role.AGENT:
                raise PermissionDenied("an agent sees their own pipeline and day; ask for agent_id")
            raise NotFound(
                f"no team {team_id} that you may see",
                fields=[FieldError("team_id", "unknown_team", "no such team in your scope")],
            )
        return "team", [*self.team_agents(team_id), pool]
