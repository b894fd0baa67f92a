"""The one rule every context applies: may this caller act on this customer?

- operators and admins: on every customer;
- the roles a context adds (the service desk reads every customer, for example): on every customer;
- an agent: on the customers they own;
- a manager: on the customers owned by an agent (or the unassigned pool) of a team they manage,
  as the sales force says now (so a manager moved off a team loses the scope with the next lookup);
- anyone else: on none.

A caller outside the scope is told exactly what a caller asking for an unknown customer is told,
so that nobody learns which customer ids exist by probing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from crm_shared.auth import Caller, Role
from crm_shared.errors import FieldError, NotFound

# How long a process may trust what the sales force said of a team, a manager or an agent's status:
# a manager moved off a team loses the scope within this, and a departure is seen within this.
SCOPE_TTL_SECONDS = 2.0


class TeamScope(Protocol):
    """What the sales force says of owners and managers."""

    def team_of(self, owner_id: str) -> str | None:
        """The team of an agent (or of a team's pool); None for an owner it does not know."""
        ...

    def teams_managed_by(self, user_id: str) -> frozenset[str]: ...


class SalesForceScope(TeamScope, Protocol):
    """The scope, able to list a team's owners too (for queries over many customers)."""

    def owners_in_team(self, team_id: str) -> list[str]:
        """The team's agents and its pool."""
        ...


def may_act_on(
    caller: Caller, owning_agent_id: str | None, scope: TeamScope | None, *, also: Iterable[Role] = ()
) -> bool:
    if caller.sees_everything or caller.role in tuple(also):
        return True
    if owning_agent_id is None:
        return False
    if caller.role == Role.AGENT:
        return caller.agent_id == owning_agent_id
    if caller.role == Role.MANAGER and scope is not None:
        managed = scope.teams_managed_by(caller.user_id)
        return bool(managed) and scope.team_of(owning_agent_id) in managed
    return False


def owners_in_scope(
    caller: Caller, scope: SalesForceScope | None, *, also: Iterable[Role] = ()
) -> list[str] | None:
    """The same rule for a query over many customers: the owners whose customers the caller may act
    on (None: every customer; empty: none)."""
    if caller.sees_everything or caller.role in tuple(also):
        return None
    if caller.role == Role.AGENT:
        return [caller.agent_id] if caller.agent_id else []
    if caller.role == Role.MANAGER and scope is not None:
        teams = sorted(scope.teams_managed_by(caller.user_id))
        return [owner for team in teams for owner in scope.owners_in_team(team)]
    return []


def unknown_customer(customer_id: str, field: str = "customer_id") -> NotFound:
    """The answer for a customer that does not exist, or that the caller may not act on (``field``
    names where the request gave its id)."""
    return NotFound(
        f"no customer {customer_id} that you may act on",
        fields=[FieldError(field, "unknown_customer", "no such customer in your scope")],
    )


def require_customer_access(
    caller: Caller,
    customer_id: str,
    owning_agent_id: str | None,
    scope: TeamScope | None,
    *,
    also: Iterable[Role] = (),
    field: str = "customer_id",
) -> None:
    """Refuses unless the customer exists (``owning_agent_id`` is None for one that does not) and
    the caller may act on it, with one answer for both."""
    if owning_agent_id is None or not may_act_on(caller, owning_agent_id, scope, also=also):
        raise unknown_customer(customer_id, field)
