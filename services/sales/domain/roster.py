"""Who belongs where: the agents of a team (``TeamRoster``) and the teams of a manager
(``ManagedTeams``). Internal: never published (the public facts are ``sales.agent_registered``,
``sales.agent_moved``, ``sales.agent_departed`` and ``sales.team_manager_appointed``); each is an
aggregate of its own so that it is read in one load and changed atomically with the agent or team
whose change it follows."""

from __future__ import annotations

import uuid
from typing import Self

from crm_shared.domain import CommandMeta, CrmAggregate

ROSTER_NAMESPACE = uuid.UUID("c4a2e9d0-1f37-4b85-9e6a-3d8b7f0c2a51")
MANAGED_NAMESPACE = uuid.UUID("2d7f0a93-5c18-4e6b-8f21-b9e3c4a0d756")


class Membership(CrmAggregate):
    """Ids in the order they were added, each once."""

    class Started(CrmAggregate.Created):
        owner: str

    class Added(CrmAggregate.Event):
        member: str

        def apply(self, membership: Membership) -> None:
            membership.members = [*membership.members, self.member]

    class Removed(CrmAggregate.Event):
        member: str

        def apply(self, membership: Membership) -> None:
            membership.members = [m for m in membership.members if m != self.member]

    def __init__(self, owner: str) -> None:
        self.owner: str = owner
        self.members: list[str] = []

    NAMESPACE = ROSTER_NAMESPACE

    @classmethod
    def id_for(cls, owner: str) -> uuid.UUID:
        return uuid.uuid5(cls.NAMESPACE, owner)

    @classmethod
    def start(cls, owner: str, meta: CommandMeta) -> Self:
        return cls._create(cls.Started, id=cls.id_for(owner), meta=meta.as_event_meta(), owner=owner)

    def add(self, member: str, meta: CommandMeta) -> None:
        if member not in self.members:
            self.trigger_event(self.Added, meta=meta.as_event_meta(), member=member)

    def remove(self, member: str, meta: CommandMeta) -> None:
        if member in self.members:
            self.trigger_event(self.Removed, meta=meta.as_event_meta(), member=member)


class TeamRoster(Membership):
    """A team's agents (its owner is the team id)."""

    NAMESPACE = ROSTER_NAMESPACE


class ManagedTeams(Membership):
    """The teams one user manages (its owner is the user id)."""

    NAMESPACE = MANAGED_NAMESPACE
