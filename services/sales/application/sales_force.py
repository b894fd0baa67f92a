"""The sales force: teams, their managers, agents joining, moving and leaving. Operators and admins
run it; a manager reads their own teams, an agent reads themselves and their team."""

from __future__ import annotations

from typing import Any

from crm_shared.access import may_act_on
from crm_shared.auth import Caller, Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from crm_shared.eventstore import CrmApplication
from services.sales.domain import (
    Agent,
    ManagedTeams,
    SuccessorKind,
    SuccessorRule,
    Team,
    TeamRoster,
    pool_of,
    successors,
    team_of_pool,
)

RUNS_THE_SALES_FORCE = (Role.OPERATOR, Role.ADMIN)


class SalesForce(CrmApplication):
    # Loading ---------------------------------------------------------------------------------

    def find_team(self, team_id: str) -> Team | None:
        return self.find(Team, Team.id_for(team_id))

    def find_agent(self, agent_id: str) -> Agent | None:
        return self.find(Agent, Agent.id_for(agent_id))

    def known_team(self, team_id: str, field: str = "team_id") -> Team:
        team = self.find_team(team_id)
        if team is None:
            raise ValidationFailed.single(field, "unknown_team", f"the sales force has no team {team_id}")
        return team

    def active_agent(self, agent_id: str, field: str = "agent_id") -> Agent:
        """The agent, refused (naming ``field``) if unknown or departed."""
        agent = self.find_agent(agent_id)
        if agent is None:
            raise ValidationFailed.single(field, "unknown_agent", f"the sales force has no agent {agent_id}")
        if not agent.active:
            raise ValidationFailed.single(
                field, "agent_departed", f"agent {agent_id} departed on {agent.departed_on}"
            )
        return agent

    def _roster(self, team_id: str) -> TeamRoster:
        roster = self.find(TeamRoster, TeamRoster.id_for(team_id))
        if roster is None:  # a team is created with its roster, atomically
            raise RuntimeError(f"team {team_id} has no roster")
        return roster

    def team_agents(self, team_id: str) -> list[str]:
        """The team's active agents, in the order they joined."""
        return list(self._roster(team_id).members)

    def _managed(self, user_id: str, meta: CommandMeta) -> ManagedTeams:
        return self.find(ManagedTeams, ManagedTeams.id_for(user_id)) or ManagedTeams.start(user_id, meta)

    # The scope every context asks about (crm_shared.access.TeamScope) -----------------------------

    def team_of(self, owner_id: str) -> str | None:
        if (pool_team := team_of_pool(owner_id)) is not None:
            return pool_team if self.find_team(pool_team) else None
        agent = self.find_agent(owner_id)
        return agent.team_id if agent else None

    def owner_status(self, owner_id: str) -> str | None:
        if (pool_team := team_of_pool(owner_id)) is not None:
            return "active" if self.find_team(pool_team) else None
        agent = self.find_agent(owner_id)
        return agent.status if agent else None

    def teams_managed_by(self, user_id: str) -> frozenset[str]:
        managed = self.find(ManagedTeams, ManagedTeams.id_for(user_id))
        return frozenset(managed.members) if managed else frozenset()

    def scope_of(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """The teams of some owners and the teams a manager manages, for the other contexts'
        access checks. A manager may ask only about their own teams."""
        caller = meta.actor
        user_id = data.get("manager_user_id")
        if user_id and user_id != caller.user_id and not caller.sees_everything:
            raise PermissionDenied("only operators and admins may ask which teams another user manages")
        return {
            "teams": {owner: self.team_of(owner) for owner in data["owner_ids"]},
            "statuses": {owner: self.owner_status(owner) for owner in data["owner_ids"]},
            "managed_team_ids": sorted(self.teams_managed_by(user_id)) if user_id else [],
        }

    # Commands ----------------------------------------------------------------------------------

    @command
    def create_team(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_THE_SALES_FORCE)
        team_id = data["team_id"]
        team = Team.create(
            team_id=team_id,
            name=data["name"],
            branch=data["branch"],
            manager_user_id=data["manager_user_id"],
            meta=meta,
        )
        changed: list[CrmAggregate] = [team, TeamRoster.start(team_id, meta)]
        if data["manager_user_id"]:
            managed = self._managed(data["manager_user_id"], meta)
            managed.add(team_id, meta)
            changed.append(managed)
        return Decision(
            {"team_id": team_id}, tuple(changed), explain_conflict=lambda: self._refuse_existing_team(team_id)
        )

    def _refuse_existing_team(self, team_id: str) -> None:
        if self.find_team(team_id) is not None:
            raise ValidationFailed.single("team_id", "already_exists", f"team {team_id} exists already")

    @command
    def appoint_team_manager(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_THE_SALES_FORCE)
        team = self.known_team(data["team_id"])
        previous = team.manager_user_id
        team.appoint_manager(data["manager_user_id"], data["reason"], meta)
        incoming = self._managed(data["manager_user_id"], meta)
        incoming.add(team.team_id, meta)
        changed: list[CrmAggregate] = [team, incoming]
        if previous:
            outgoing = self._managed(previous, meta)
            outgoing.remove(team.team_id, meta)
            changed.append(outgoing)
        return Decision(
            {"team_id": team.team_id, "manager_user_id": team.manager_user_id, "version": team.version},
            tuple(changed),
        )

    @command
    def register_agent(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_THE_SALES_FORCE)
        team = self.known_team(data["team_id"])
        agent_id = data["agent_id"]
        if self.find_agent(agent_id) is not None:
            raise ValidationFailed.single(
                "agent_id", "already_exists", f"agent {agent_id} is registered already"
            )
        agent = Agent.register(
            agent_id=agent_id, name=data["name"], team_id=team.team_id, hired_on=data["hired_on"], meta=meta
        )
        roster = self._roster(team.team_id)
        roster.add(agent_id, meta)
        return Decision({"agent_id": agent_id, "team_id": team.team_id}, (agent, roster))

    @command
    def move_agent(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_THE_SALES_FORCE)
        agent = self.active_agent(data["agent_id"])
        to_team = self.known_team(data["team_id"])
        leaving, joining = self._roster(agent.team_id), self._roster(to_team.team_id)
        agent.move(to_team.team_id, data["reason"], meta)
        leaving.remove(agent.agent_id, meta)
        joining.add(agent.agent_id, meta)
        return Decision(
            {"agent_id": agent.agent_id, "team_id": agent.team_id, "version": agent.version},
            (agent, leaving, joining),
        )

    @command
    def record_agent_departure(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_THE_SALES_FORCE)
        agent = self.active_agent(data["agent_id"])
        given = data["successor"]
        rule = SuccessorRule(SuccessorKind(given["kind"]), given.get("agent_id"), given.get("team_id"))
        rule, members = self.succession(agent, rule)
        roster = self._roster(agent.team_id)
        agent.depart(
            departed_on=data["departed_on"],
            reason=data["reason"],
            successor=rule,
            team_members=members,
            meta=meta,
        )
        roster.remove(agent.agent_id, meta)
        answer = {
            "agent_id": agent.agent_id,
            "status": agent.status,
            "successor": rule.as_dict(),
            "successors": successors(rule, agent.agent_id, members),
        }
        return Decision(answer, (agent, roster))

    def succession(self, agent: Agent, rule: SuccessorRule) -> tuple[SuccessorRule, list[str]]:
        """The rule with its team filled in, and that team's active agents; refuses a successor
        that is not an active agent, an unknown team, or a round robin over nobody."""
        if rule.kind == SuccessorKind.AGENT:
            assert rule.agent_id is not None
            self.active_agent(rule.agent_id, field="successor.agent_id")
            return rule, []
        team_id = rule.team_id or agent.team_id
        self.known_team(team_id, field="successor.team_id")
        rule = SuccessorRule(rule.kind, None, team_id)
        members = self._roster(team_id).members
        successors(rule, agent.agent_id, members)  # refuses a round robin over nobody
        return rule, members

    def plan_succession(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """Who would take over an agent's book under a successor rule, now (for a book transfer
        that is not a departure)."""
        meta.actor.require_role(Role.MANAGER, *RUNS_THE_SALES_FORCE)
        agent = self.find_agent(data["agent_id"])
        if agent is None or not may_act_on(meta.actor, agent.agent_id, self):
            raise ValidationFailed.single(
                "agent_id", "unknown_agent", f"no agent {data['agent_id']} in your scope"
            )
        given = data["successor"]
        rule, members = self.succession(
            agent, SuccessorRule(SuccessorKind(given["kind"]), given.get("agent_id"), given.get("team_id"))
        )
        owners = successors(rule, agent.agent_id, members)
        outside = [o for o in owners if not may_act_on(meta.actor, o, self)]
        if outside:
            raise ValidationFailed.single(
                "successor", "outside_scope", f"a manager hands a book over within their teams: {outside}"
            )
        return {"agent_id": agent.agent_id, "successor": rule.as_dict(), "successors": owners}

    # Queries -----------------------------------------------------------------------------------

    def _may_read_team(self, caller: Caller, team_id: str) -> bool:
        if caller.sees_everything or caller.role == Role.SERVICE_DESK:
            return True
        if caller.role == Role.MANAGER:
            return team_id in self.teams_managed_by(caller.user_id)
        if caller.role == Role.AGENT and caller.agent_id:
            return self.team_of(caller.agent_id) == team_id
        return False

    def get_agent(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        agent = self.find_agent(data["agent_id"])
        caller = meta.actor
        visible = agent is not None and (
            caller.agent_id == agent.agent_id
            or may_act_on(caller, agent.agent_id, self, also=(Role.SERVICE_DESK,))
        )
        if agent is None or not visible:
            raise NotFound(
                f"no agent {data['agent_id']} that you may see",
                fields=[FieldError("agent_id", "unknown_agent", "no such agent in your scope")],
            )
        return agent_view(agent)

    def get_team(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        team = self.find_team(data["team_id"])
        if team is None or not self._may_read_team(meta.actor, team.team_id):
            raise NotFound(
                f"no team {data['team_id']} that you may see",
                fields=[FieldError("team_id", "unknown_team", "no such team in your scope")],
            )
        members = [a for m in self._roster(team.team_id).members if (a := self.find_agent(m)) is not None]
        return {
            "team_id": team.team_id,
            "name": team.name,
            "branch": team.branch,
            "manager_user_id": team.manager_user_id,
            # The owner id of the team's unassigned customers.
            "pool_owner_id": pool_of(team.team_id),
            "agents": [agent_view(a) for a in members],
            "version": team.version,
        }


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "name": agent.name,
        "team_id": agent.team_id,
        "hired_on": agent.hired_on.isoformat(),
        "status": agent.status,
        "departed_on": agent.departed_on.isoformat() if agent.departed_on else None,
        "successor": agent.successor,
        "version": agent.version,
    }
