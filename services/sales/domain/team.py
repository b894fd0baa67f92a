"""Teams of the sales force: a name, a branch and the user who manages it. Which agents a team has
is kept by its roster (``roster.TeamRoster``)."""

from __future__ import annotations

import uuid

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import ValidationFailed

TEAM_NAMESPACE = uuid.UUID("5b0e2c71-8d3a-4f69-b1e4-0a7c9d2f3e18")


class Team(CrmAggregate):
    class Created(CrmAggregate.Created):
        EVENT_TYPE = "sales.team_created"
        team_id: str
        name: str
        branch: str
        manager_user_id: str | None

    class ManagerAppointed(CrmAggregate.Event):
        EVENT_TYPE = "sales.team_manager_appointed"
        team_id: str
        manager_user_id: str
        previous_manager_user_id: str | None
        reason: str

        def apply(self, team: Team) -> None:
            team.manager_user_id = self.manager_user_id

    team_id: str
    name: str
    branch: str
    manager_user_id: str | None

    @staticmethod
    def id_for(team_id: str) -> uuid.UUID:
        return uuid.uuid5(TEAM_NAMESPACE, team_id)

    @classmethod
    def create(
        cls, *, team_id: str, name: str, branch: str, manager_user_id: str | None, meta: CommandMeta
    ) -> Team:
        return cls._create(
            cls.Created,
            id=cls.id_for(team_id),
            meta=meta.as_event_meta(),
            team_id=team_id,
            name=name.strip(),
            branch=branch.strip(),
            manager_user_id=manager_user_id,
        )

    def appoint_manager(self, manager_user_id: str, reason: str, meta: CommandMeta) -> None:
        if manager_user_id == self.manager_user_id:
            raise ValidationFailed.single(
                "manager_user_id", "unchanged", f"{manager_user_id} already manages team {self.team_id}"
            )
        self.trigger_event(
            self.ManagerAppointed,
            meta=meta.as_event_meta(),
            team_id=self.team_id,
            manager_user_id=manager_user_id,
            previous_manager_user_id=self.manager_user_id,
            reason=reason,
        )
