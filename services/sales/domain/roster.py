"""Which agents belong to a team, in the order they joined. Internal: never published (the public
facts are ``sales.agent_registered``, ``sales.agent_moved`` and ``sales.agent_departed``); kept as an
aggregate of its own so that a team's members can be read in one load and changed atomically with
the agent who joins or leaves."""

from __future__ import annotations

import uuid

from crm_shared.domain import CommandMeta, CrmAggregate

ROSTER_NAMESPACE = uuid.UUID("c4a2e9d0-1f37-4b85-9e6a-3d8b7f0c2a51")
MANAGED_NAMESPACE = uuid.UUID("2d7f0a93-5c18-4e6b-8f21-b9e3c4a0d756")


class TeamRoster(CrmAggregate):
    class Started(CrmAggregate.Created):
        team_id: str

    class Joined(CrmAggregate.Event):
        agent_id: str

        def apply(self, roster: TeamRoster) -> None:
            roster.members = [*roster.members, self.agent_id]

    class Left(CrmAggregate.Event):
        agent_id: str

        def apply(self, roster: TeamRoster) -> None:
            roster.members = [m for m in roster.members if m != self.agent_id]

    team_id: str
    members: list[str]

    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        self.members = []

    @staticmethod
    def id_for(team_id: str) -> uuid.UUID:
        return uuid.uuid5(ROSTER_NAMESPACE, team_id)

    @classmethod
    def start(cls, team_id: str, meta: CommandMeta) -> TeamRoster:
        return cls._create(cls.Started, id=cls.id_for(team_id), meta=meta.as_event_meta(), team_id=team_id)

    def join(self, agent_id: str, meta: CommandMeta) -> None:
        if agent_id not in self.members:
            self.trigger_event(self.Joined, meta=meta.as_event_meta(), agent_id=agent_id)

    def leave(self, agent_id: str, meta: CommandMeta) -> None:
        if agent_id in self.members:
            self.trigger_event(self.Left, meta=meta.as_event_meta(), agent_id=agent_id)


class ManagedTeams(CrmAggregate):
    """The teams one user manages, so "whose customers may this manager see" is one load. Changed
    atomically with the team whose manager changes. Internal: never published."""

    class Started(CrmAggregate.Created):
        user_id: str

    class Added(CrmAggregate.Event):
        team_id: str

        def apply(self, managed: ManagedTeams) -> None:
            managed.team_ids = [*managed.team_ids, self.team_id]

    class Removed(CrmAggregate.Event):
        team_id: str

        def apply(self, managed: ManagedTeams) -> None:
            managed.team_ids = [t for t in managed.team_ids if t != self.team_id]

    user_id: str
    team_ids: list[str]

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.team_ids = []

    @staticmethod
    def id_for(user_id: str) -> uuid.UUID:
        return uuid.uuid5(MANAGED_NAMESPACE, user_id)

    @classmethod
    def start(cls, user_id: str, meta: CommandMeta) -> ManagedTeams:
        return cls._create(cls.Started, id=cls.id_for(user_id), meta=meta.as_event_meta(), user_id=user_id)

    def add(self, team_id: str, meta: CommandMeta) -> None:
        if team_id not in self.team_ids:
            self.trigger_event(self.Added, meta=meta.as_event_meta(), team_id=team_id)

    def remove(self, team_id: str, meta: CommandMeta) -> None:
        if team_id in self.team_ids:
            self.trigger_event(self.Removed, meta=meta.as_event_meta(), team_id=team_id)
