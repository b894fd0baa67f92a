"""The sales context's domain: the sales force (teams, their rosters, agents), opportunities,
quotes from the catalogue, policies through their life, and the agent's day. Pure: no I/O. (Events
stored before this became a package name ``services.sales.domain`` as their module; the names below
keep resolving them.)"""

from services.sales.domain.activity import Activity, AgentDay
from services.sales.domain.agent import (
    Agent,
    AgentStatus,
    SuccessorKind,
    SuccessorRule,
    pool_of,
    successors,
    team_of_pool,
)
from services.sales.domain.opportunity import Opportunity
from services.sales.domain.policy import Policy, add_years, policy_number_for
from services.sales.domain.rating import Quote
from services.sales.domain.roster import ManagedTeams, TeamRoster
from services.sales.domain.team import Team

__all__ = [
    "Activity",
    "Agent",
    "AgentDay",
    "AgentStatus",
    "ManagedTeams",
    "Opportunity",
    "Policy",
    "Quote",
    "SuccessorKind",
    "SuccessorRule",
    "Team",
    "TeamRoster",
    "add_years",
    "policy_number_for",
    "pool_of",
    "successors",
    "team_of_pool",
]
