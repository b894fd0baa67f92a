"""The one access rule: may this caller act on this customer (and which owners may they see)."""

from __future__ import annotations

import pytest

from crm_shared.access import may_act_on, owners_in_scope
from crm_shared.auth import Caller, Role


def test_agents_reach_only_their_own_customers() -> None:
    agent = Caller("u1", Role.AGENT, "A-1")
    assert may_act_on(agent, "A-1", None)
    assert not may_act_on(agent, "A-2", None)
    assert may_act_on(Caller("op", Role.OPERATOR), "A-2", None)
    assert not may_act_on(Caller("sd", Role.SERVICE_DESK), "A-2", None)
    assert may_act_on(Caller("sd", Role.SERVICE_DESK), "A-2", None, also=(Role.SERVICE_DESK,))
    assert not may_act_on(Caller("m", Role.MANAGER), "A-2", None)  # no sales force: no team scope


class Teams:
    """A sales force of two teams, T-1 (A-1, A-2, managed by m1) and T-2 (B-1, managed by m2)."""

    members = {"T-1": ["pool:T-1", "A-1", "A-2"], "T-2": ["pool:T-2", "B-1"]}
    managers = {"m1": frozenset({"T-1"}), "m2": frozenset({"T-2"}), "m3": frozenset({"T-1", "T-2"})}

    def team_of(self, owner_id: str) -> str | None:
        return next((t for t, owners in self.members.items() if owner_id in owners), None)

    def teams_managed_by(self, user_id: str) -> frozenset[str]:
        return self.managers.get(user_id, frozenset())

    def owners_in_team(self, team_id: str) -> list[str]:
        return self.members[team_id]


@pytest.mark.parametrize(
    "caller",
    [
        Caller("u1", Role.AGENT, "A-1"),
        Caller("u2", Role.AGENT),
        Caller("m1", Role.MANAGER),
        Caller("m3", Role.MANAGER),
        Caller("m9", Role.MANAGER),
        Caller("sd", Role.SERVICE_DESK),
        Caller("op", Role.OPERATOR),
        Caller("ad", Role.ADMIN),
    ],
)
def test_the_owners_in_scope_are_exactly_those_the_rule_lets_the_caller_act_on(caller: Caller) -> None:
    teams = Teams()
    everyone = [o for owners in teams.members.values() for o in owners] + ["unknown"]
    owners = owners_in_scope(caller, teams)
    if owners is None:
        assert caller.sees_everything
        assert all(may_act_on(caller, o, teams) for o in everyone)
    else:
        assert sorted(owners) == sorted(o for o in everyone if may_act_on(caller, o, teams))
    also = (Role.SERVICE_DESK,)
    assert (owners_in_scope(caller, teams, also=also) is None) == all(
        may_act_on(caller, o, teams, also=also) for o in everyone
    )
