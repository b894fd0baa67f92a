"""The sales force's rules: teams, agents joining, moving and leaving, who takes over a book, and a
manager's scope. The application runs on eventsourcing's in-memory store: no I/O."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest

from crm_shared.access import may_act_on, require_customer_access
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from services.sales.application import SalesApplication
from services.sales.domain import (
    Agent,
    SuccessorKind,
    SuccessorRule,
    pool_of,
    successors,
    team_of_pool,
)
from tests.support import rule_of

OPERATOR = Caller("op-1", Role.OPERATOR)


def meta(caller: Caller = OPERATOR) -> CommandMeta:
    return CommandMeta.new(caller)


@pytest.fixture
def sales() -> SalesApplication:
    app = SalesApplication()
    app.create_team(
        {"team_id": "T-1", "name": "North", "branch": "Hangzhou", "manager_user_id": "mgr-1"}, meta()
    )
    app.create_team(
        {"team_id": "T-2", "name": "South", "branch": "Ningbo", "manager_user_id": "mgr-2"}, meta()
    )
    for agent_id, team in (("A-1", "T-1"), ("A-2", "T-1"), ("A-3", "T-1"), ("B-1", "T-2")):
        register(app, agent_id, team)
    return app


def register(app: SalesApplication, agent_id: str, team_id: str) -> dict[str, Any]:
    return app.register_agent(
        {"agent_id": agent_id, "name": f"Agent {agent_id}", "team_id": team_id, "hired_on": date(2020, 1, 1)},
        meta(),
    )


def depart(app: SalesApplication, agent_id: str, successor: dict[str, Any]) -> dict[str, Any]:
    return app.record_agent_departure(
        {
            "agent_id": agent_id,
            "departed_on": date(2026, 11, 30),
            "reason": "resigned",
            "successor": successor,
        },
        meta(),
    )


def test_a_team_lists_its_agents_and_moves_keep_rosters_right(sales: SalesApplication) -> None:
    team = sales.get_team({"team_id": "T-1"}, meta())
    assert [a["agent_id"] for a in team["agents"]] == ["A-1", "A-2", "A-3"]
    sales.move_agent({"agent_id": "A-2", "team_id": "T-2", "reason": "new branch"}, meta())
    assert [a["agent_id"] for a in sales.get_team({"team_id": "T-1"}, meta())["agents"]] == ["A-1", "A-3"]
    assert [a["agent_id"] for a in sales.get_team({"team_id": "T-2"}, meta())["agents"]] == ["B-1", "A-2"]
    assert sales.get_agent({"agent_id": "A-2"}, meta())["team_id"] == "T-2"


def test_unknown_teams_and_agents_are_refused_naming_the_field(sales: SalesApplication) -> None:
    with pytest.raises(ValidationFailed) as e:
        register(sales, "A-9", "T-404")
    assert rule_of(e.value) == ("team_id", "unknown_team")
    with pytest.raises(ValidationFailed) as e:
        sales.move_agent({"agent_id": "A-404", "team_id": "T-2", "reason": "x"}, meta())
    assert rule_of(e.value) == ("agent_id", "unknown_agent")
    with pytest.raises(ValidationFailed) as e:
        register(sales, "A-1", "T-2")
    assert rule_of(e.value) == ("agent_id", "already_exists")
    with pytest.raises(ValidationFailed) as e:
        sales.move_agent({"agent_id": "A-1", "team_id": "T-1", "reason": "x"}, meta())
    assert rule_of(e.value) == ("team_id", "unchanged")
    with pytest.raises(ValidationFailed) as e:
        register(sales, "T-1.pool", "T-1")
    assert rule_of(e.value) == ("agent_id", "reserved")


def test_a_departed_agent_can_neither_move_nor_take_over_a_book(sales: SalesApplication) -> None:
    answer = depart(sales, "A-1", {"kind": "round_robin"})
    assert answer["successor"] == {"kind": "round_robin", "agent_id": None, "team_id": "T-1"}
    assert answer["successors"] == ["A-2", "A-3"]
    assert sales.get_agent({"agent_id": "A-1"}, meta())["status"] == "departed"
    assert "A-1" not in [a["agent_id"] for a in sales.get_team({"team_id": "T-1"}, meta())["agents"]]
    with pytest.raises(ValidationFailed) as e:
        sales.move_agent({"agent_id": "A-1", "team_id": "T-2", "reason": "x"}, meta())
    assert rule_of(e.value) == ("agent_id", "agent_departed")
    with pytest.raises(ValidationFailed) as e:
        depart(sales, "A-2", {"kind": "agent", "agent_id": "A-1"})
    assert rule_of(e.value) == ("successor.agent_id", "agent_departed")
    with pytest.raises(ValidationFailed) as e:
        depart(sales, "A-2", {"kind": "agent", "agent_id": "A-2"})
    assert rule_of(e.value) == ("successor.agent_id", "self")


def test_a_round_robin_needs_another_active_agent(sales: SalesApplication) -> None:
    with pytest.raises(ValidationFailed) as e:
        depart(sales, "B-1", {"kind": "round_robin"})
    assert rule_of(e.value) == ("successor.team_id", "no_active_agents")
    assert depart(sales, "B-1", {"kind": "pool"})["successor"]["team_id"] == "T-2"


def test_the_domain_refuses_what_the_schemas_might_let_through() -> None:
    agent = Agent.register(agent_id="A-1", name="A", team_id="T-1", hired_on=date(2024, 1, 1), meta=meta())
    with pytest.raises(ValidationFailed):
        agent.depart(
            departed_on=date(2023, 1, 1),
            reason="x",
            successor=SuccessorRule(SuccessorKind.POOL, None, "T-1"),
            team_members=[],
            meta=meta(),
        )
    with pytest.raises(ValidationFailed):
        SuccessorRule(SuccessorKind.AGENT)
    agent.depart(
        departed_on=date(2026, 1, 1),
        reason="x",
        successor=SuccessorRule(SuccessorKind.POOL, None, "T-1"),
        team_members=[],
        meta=meta(),
    )
    assert agent.collect_events()[-1].successors == ["T-1.pool"]
    with pytest.raises(InvalidState):
        agent.move("T-2", "x", meta())


@pytest.mark.parametrize("book", [0, 1, 2, 7, 100, 1001])
def test_a_round_robin_spreads_a_book_evenly(book: int) -> None:
    owners = successors(
        SuccessorRule(SuccessorKind.ROUND_ROBIN, None, "T-1"), "A-1", ["A-1", "A-2", "A-3", "A-4"]
    )
    assert owners == ["A-2", "A-3", "A-4"]
    shares = Counter(owners[i % len(owners)] for i in range(book))
    if book:
        assert max(shares.values()) - min(shares.get(o, 0) for o in owners) <= 1
    assert successors(SuccessorRule(SuccessorKind.POOL, None, "T-1"), "A-1", []) == [pool_of("T-1")]
    assert team_of_pool(pool_of("T-1")) == "T-1" and team_of_pool("A-1") is None


def test_a_manager_acts_on_their_teams_customers_only_and_loses_the_scope_when_replaced(
    sales: SalesApplication,
) -> None:
    manager = Caller("mgr-1", Role.MANAGER)
    assert may_act_on(manager, "A-1", sales)
    assert may_act_on(manager, pool_of("T-1"), sales)
    assert not may_act_on(manager, "B-1", sales)
    assert not may_act_on(manager, "nobody", sales)
    with pytest.raises(NotFound) as e:
        require_customer_access(manager, "c-1", "B-1", sales)
    assert rule_of(e.value) == ("customer_id", "unknown_customer")
    sales.move_agent({"agent_id": "A-1", "team_id": "T-2", "reason": "x"}, meta())
    assert not may_act_on(manager, "A-1", sales)
    sales.appoint_team_manager({"team_id": "T-1", "manager_user_id": "mgr-3", "reason": "promotion"}, meta())
    assert not may_act_on(manager, "A-2", sales)
    assert may_act_on(Caller("mgr-3", Role.MANAGER), "A-2", sales)
    assert sales.scope_of(
        {"owner_ids": ["A-2"], "manager_user_id": "mgr-3"}, meta(Caller("mgr-3", Role.MANAGER))
    ) == {
        "teams": {"A-2": "T-1"},
        "statuses": {"A-2": "active"},
        "managed_team_ids": ["T-1"],
    }
    with pytest.raises(PermissionDenied):
        sales.scope_of({"owner_ids": [], "manager_user_id": "mgr-3"}, meta(manager))


def test_agents_act_on_their_own_book_and_read_only_their_own_team(sales: SalesApplication) -> None:
    agent = Caller("u-a1", Role.AGENT, agent_id="A-1")
    assert may_act_on(agent, "A-1", sales) and not may_act_on(agent, "A-2", sales)
    assert sales.get_team({"team_id": "T-1"}, meta(agent))["team_id"] == "T-1"
    with pytest.raises(NotFound):
        sales.get_team({"team_id": "T-2"}, meta(agent))
    with pytest.raises(NotFound):
        sales.get_agent({"agent_id": "B-1"}, meta(agent))
    with pytest.raises(PermissionDenied):
        sales.register_agent(
            {"agent_id": "A-5", "name": "x", "team_id": "T-1", "hired_on": date(2020, 1, 1)}, meta(agent)
        )
