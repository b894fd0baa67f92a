"""Agents of the sales force, and who takes over a departed agent's customers.

Every customer belongs to the company and always has an owner: an active agent, or a team's
unassigned pool (an owner id of its own, ``<team id>.pool``, that the team's manager works from).
An agent id never ends in ``.pool``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed

AGENT_NAMESPACE = uuid.UUID("e81c4f2a-6b09-4d73-a5e2-9f1d0b3c7a64")
POOL_SUFFIX = ".pool"


def pool_of(team_id: str) -> str:
    """The owner id of a team's unassigned pool."""
    return f"{team_id}{POOL_SUFFIX}"


def team_of_pool(owner_id: str) -> str | None:
    return owner_id.removesuffix(POOL_SUFFIX) if owner_id.endswith(POOL_SUFFIX) else None


class AgentStatus(StrEnum):
    ACTIVE = "active"
    DEPARTED = "departed"


class SuccessorKind(StrEnum):
    AGENT = "agent"  # one named agent takes the whole book
    ROUND_ROBIN = "round_robin"  # the active agents of a team, in turn
    POOL = "pool"  # the team's unassigned pool


@dataclass(frozen=True)
class SuccessorRule:
    """Who takes over a book. ``team_id`` names the team of a round robin or a pool (by default the
    departing agent's own); ``agent_id`` the successor of kind ``agent``."""

    kind: SuccessorKind
    agent_id: str | None = None
    team_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind == SuccessorKind.AGENT and not self.agent_id:
            raise ValidationFailed.single("successor.agent_id", "required", "name the agent who takes over")
        if self.kind != SuccessorKind.AGENT and self.agent_id:
            raise ValidationFailed.single(
                "successor.agent_id", "not_allowed", f"a {self.kind} successor names a team, not an agent"
            )

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "agent_id": self.agent_id, "team_id": self.team_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuccessorRule:
        return cls(SuccessorKind(data["kind"]), data.get("agent_id"), data.get("team_id"))


def successors(rule: SuccessorRule, departing: str, team_members: list[str]) -> list[str]:
    """The owners a book is spread over, in turn: the i-th customer moved goes to
    ``owners[i % len(owners)]``, so a round robin spreads a book evenly (sizes differ by at most
    one). ``team_members`` are the active agents of the rule's team."""
    if rule.kind == SuccessorKind.AGENT:
        assert rule.agent_id is not None
        return [rule.agent_id]
    if rule.kind == SuccessorKind.POOL:
        assert rule.team_id is not None
        return [pool_of(rule.team_id)]
    owners = [m for m in team_members if m != departing]
    if not owners:
        raise ValidationFailed.single(
            "successor.team_id",
            "no_active_agents",
            f"team {rule.team_id} has no other active agent to share the book; name an agent or "
            "hand it to the team's pool",
        )
    return owners


class Agent(CrmAggregate):
    class Registered(CrmAggregate.Created):
        EVENT_TYPE = "sales.agent_registered"
        agent_id: str
        name: str
        team_id: str
        hired_on: date

    class Moved(CrmAggregate.Event):
        EVENT_TYPE = "sales.agent_moved"
        agent_id: str
        from_team_id: str
        to_team_id: str
        reason: str

        def apply(self, agent: Agent) -> None:
            agent.team_id = self.to_team_id

    class Departed(CrmAggregate.Event):
        EVENT_TYPE = "sales.agent_departed"
        agent_id: str
        team_id: str
        departed_on: date
        reason: str
        successor: dict[str, Any]
        # Who takes the book, in turn, as the roster stood at the departure (see ``successors``).
        successors: list[str]

        def apply(self, agent: Agent) -> None:
            agent.status = AgentStatus.DEPARTED.value
            agent.departed_on = self.departed_on
            agent.successor = self.successor

    agent_id: str
    name: str
    team_id: str
    hired_on: date
    status: str = AgentStatus.ACTIVE.value
    departed_on: date | None = None
    successor: dict[str, Any] | None = None

    @staticmethod
    def id_for(agent_id: str) -> uuid.UUID:
        return uuid.uuid5(AGENT_NAMESPACE, agent_id)

    @property
    def active(self) -> bool:
        return self.status == AgentStatus.ACTIVE.value

    @classmethod
    def register(cls, *, agent_id: str, name: str, team_id: str, hired_on: date, meta: CommandMeta) -> Agent:
        if agent_id.endswith(POOL_SUFFIX):
            raise ValidationFailed.single(
                "agent_id", "reserved", f"agent ids ending in '{POOL_SUFFIX}' name a team's pool"
            )
        return cls._create(
            cls.Registered,
            id=cls.id_for(agent_id),
            meta=meta.as_event_meta(),
            agent_id=agent_id,
            name=name.strip(),
            team_id=team_id,
            hired_on=hired_on,
        )

    def _require_active(self) -> None:
        if not self.active:
            raise InvalidState(f"agent {self.agent_id} departed on {self.departed_on}")

    def move(self, to_team_id: str, reason: str, meta: CommandMeta) -> None:
        self._require_active()
        if to_team_id == self.team_id:
            raise ValidationFailed.single("team_id", "unchanged", f"agent {self.agent_id} is in {to_team_id}")
        self.trigger_event(
            self.Moved,
            meta=meta.as_event_meta(),
            agent_id=self.agent_id,
            from_team_id=self.team_id,
            to_team_id=to_team_id,
            reason=reason,
        )

    def depart(
        self,
        *,
        departed_on: date,
        reason: str,
        successor: SuccessorRule,
        team_members: list[str],
        meta: CommandMeta,
    ) -> None:
        """``team_members``: the active agents of the successor rule's team (for a round robin)."""
        self._require_active()
        if departed_on < self.hired_on:
            raise ValidationFailed.single(
                "departed_on", "before_hire", f"agent {self.agent_id} was hired on {self.hired_on}"
            )
        if successor.agent_id == self.agent_id:
            raise ValidationFailed.single(
                "successor.agent_id", "self", "a departing agent cannot take over their own book"
            )
        self.trigger_event(
            self.Departed,
            meta=meta.as_event_meta(),
            agent_id=self.agent_id,
            team_id=self.team_id,
            departed_on=departed_on,
            reason=reason,
            successor=successor.as_dict(),
            successors=successors(successor, self.agent_id, team_members),
        )
