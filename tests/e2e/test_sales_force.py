"""The sales force and customer ownership on real processes: a departure hands the book over by
itself, evenly and once; managers act on their teams' customers only, and lose the scope when
replaced; every new RPC refuses bad input naming the field, and appends nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from crm_cli.client import CrmClient
from crm_shared.auth import Caller, Role
from tests.e2e.conftest import COMPLAINT, SALE, Stores, ok
from tests.support import customer_payload, wait_until

ClientFor = Callable[[Caller], AbstractContextManager[CrmClient]]


def new_team(client: CrmClient, manager: str, agents: int) -> tuple[str, list[str]]:
    team_id = f"T-{uuid.uuid4().hex[:8]}"
    ok(
        client.call(
            "sales",
            "create_team",
            {"team_id": team_id, "name": "E2E", "branch": "Suzhou", "manager_user_id": manager},
        )
    )
    agent_ids = [f"{team_id}-A{i}" for i in range(agents)]
    for agent_id in agent_ids:
        ok(
            client.call(
                "sales",
                "register_agent",
                {"agent_id": agent_id, "name": agent_id, "team_id": team_id, "hired_on": "2021-05-01"},
            )
        )
    return team_id, agent_ids


def register_for(client: CrmClient, agent_id: str, **options: Any) -> str:
    payload = customer_payload(agent_id=agent_id, **options)
    return str(ok(client.call("customer", "register_customer", payload))["customer_id"])


def test_a_departure_hands_the_book_over_evenly_once_each_and_the_agent_loses_it(
    operator_rpc: CrmClient, rpc: ClientFor, stores: Stores
) -> None:
    _, (leaving, *staying) = new_team(operator_rpc, "mgr-e2e-1", 3)
    book = [register_for(operator_rpc, leaving) for _ in range(300)]
    departure = ok(
        operator_rpc.call(
            "sales",
            "record_agent_departure",
            {
                "agent_id": leaving,
                "departed_on": "2026-11-30",
                "reason": "resigned",
                "successor": {"kind": "round_robin"},
            },
        )
    )
    assert sorted(departure["successors"]) == sorted(staying)

    def finished() -> dict[str, Any] | None:
        reply = operator_rpc.call("customer", "get_book_transfer", {"from_agent_id": leaving})
        return reply["result"] if reply["ok"] and reply["result"]["state"] == "completed" else None

    transfer = wait_until(finished, timeout=120, interval=0.5, what="the departed agent's book handed over")
    assert transfer["moved"] == transfer["total"] == 300
    owners = Counter(
        ok(operator_rpc.call("customer", "get_customer", {"customer_id": c}))["owning_agent_id"] for c in book
    )
    assert set(owners) == set(staying) and abs(owners[staying[0]] - owners[staying[1]]) <= 1
    moves = [e for e in stores.events("customer", "customer.owner_changed") if e["aggregate_id"] in set(book)]
    assert len(moves) == 300 and len({m["aggregate_id"] for m in moves}) == 300  # each moved once

    def shows_new_owner(customer_id: str) -> bool:
        reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id})
        return bool(reply["ok"] and reply["result"]["owning_agent_id"] in staying)

    wait_until(
        lambda: all(shows_new_owner(c) for c in book[:20]), timeout=60, what="the 360 views' new owners"
    )
    view = ok(operator_rpc.call("analytics", "get_customer_360", {"customer_id": book[0]}))
    assert view["ownership_history"][-1]["from_agent_id"] == leaving

    with rpc(Caller(f"user-{leaving}", Role.AGENT, leaving)) as departed:
        customer_id = book[0]
        for service, operation, payload in (
            ("customer", "get_customer", {"customer_id": customer_id}),
            ("analytics", "get_customer_360", {"customer_id": customer_id}),
            ("sales", "sell_policy", {"customer_id": customer_id, **SALE}),
            ("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT}),
        ):
            reply = departed.call(service, operation, payload)
            assert reply["ok"] is False, (service, operation)
        refused = departed.call("customer", "register_customer", customer_payload(agent_id=leaving))
        assert refused["error"]["fields"][0] == {
            "field": "owning_agent_id",
            "rule": "agent_departed",
            "message": refused["error"]["fields"][0]["message"],
        }


def test_a_manager_acts_on_the_teams_customers_only_and_loses_the_scope_when_replaced(
    operator_rpc: CrmClient, rpc: ClientFor
) -> None:
    manager = Caller("mgr-e2e-2", Role.MANAGER)
    _, (mine, colleague) = new_team(operator_rpc, manager.user_id, 2)
    _, (theirs,) = new_team(operator_rpc, "mgr-e2e-other", 1)
    my_customer = register_for(operator_rpc, mine)
    their_customer = register_for(operator_rpc, theirs)
    wait_until(lambda: operator_rpc.call("analytics", "get_customer_360", {"customer_id": my_customer})["ok"])
    wait_until(
        lambda: operator_rpc.call("analytics", "get_customer_360", {"customer_id": their_customer})["ok"]
    )

    def calls(customer_id: str, agent_id: str, new_owner: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            ("customer", "get_customer", {"customer_id": customer_id}),
            ("analytics", "get_customer_360", {"customer_id": customer_id}),
            ("sales", "sell_policy", {"customer_id": customer_id, **SALE}),
            ("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT}),
            ("customer", "list_customers", {"owning_agent_id": agent_id}),
            (
                "customer",
                "reassign_customer",
                {"customer_id": customer_id, "new_agent_id": new_owner, "reason": "x"},
            ),
            ("customer", "register_customer", customer_payload(agent_id=agent_id)),
        ]

    with rpc(manager) as client:
        for service, operation, payload in calls(my_customer, mine, colleague):
            assert client.call(service, operation, payload)["ok"], (service, operation)
        for service, operation, payload in calls(their_customer, theirs, theirs):
            assert not client.call(service, operation, payload)["ok"], (service, operation)
        # Within the team only: not to an agent of another team.
        away = client.call(
            "customer",
            "reassign_customer",
            {"customer_id": my_customer, "new_agent_id": theirs, "reason": "x"},
        )
        assert away["error"]["code"] == "permission_denied"

        team_id = ok(operator_rpc.call("sales", "get_agent", {"agent_id": mine}))["team_id"]
        ok(
            operator_rpc.call(
                "sales",
                "appoint_team_manager",
                {"team_id": team_id, "manager_user_id": "mgr-e2e-successor", "reason": "promoted"},
            )
        )

        def refused_everywhere() -> bool:
            return not any(client.call(s, o, p)["ok"] for s, o, p in calls(my_customer, mine, colleague)[:2])

        wait_until(
            refused_everywhere, timeout=15, interval=0.5, what="the replaced manager to lose the scope"
        )
        for service, operation, payload in calls(my_customer, mine, colleague):
            assert not client.call(service, operation, payload)["ok"], (service, operation)


def test_reassigning_to_the_same_or_a_departed_agent_is_refused(
    operator_rpc: CrmClient, stores: Stores
) -> None:
    _, (first, second) = new_team(operator_rpc, "mgr-e2e-3", 2)
    customer_id = register_for(operator_rpc, first)
    ok(
        operator_rpc.call(
            "sales",
            "record_agent_departure",
            {"agent_id": second, "departed_on": "2026-11-30", "reason": "x", "successor": {"kind": "pool"}},
        )
    )

    def handed_over() -> bool:
        # The departure's (empty) book transfer appends to the customer store by itself: let it
        # finish before counting what the refusals append.
        reply = operator_rpc.call("customer", "get_book_transfer", {"from_agent_id": second})
        return bool(reply["ok"] and reply["result"]["state"] == "completed")

    wait_until(handed_over, timeout=60, interval=0.2, what="the departed agent's transfer completed")
    before = stores.positions()
    for new_owner, rule in ((first, "unchanged"), (second, "agent_departed")):
        reply = operator_rpc.call(
            "customer",
            "reassign_customer",
            {"customer_id": customer_id, "new_agent_id": new_owner, "reason": "x"},
        )
        assert reply["error"]["fields"][0]["field"] == "new_agent_id"
        assert reply["error"]["fields"][0]["rule"] == rule
    assert stores.positions() == before
    history = ok(operator_rpc.call("customer", "get_customer", {"customer_id": customer_id}))[
        "ownership_history"
    ]
    assert history == []
