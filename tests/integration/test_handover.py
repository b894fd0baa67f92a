"""Books handed over on the real SQLite store, with a clock the test moves: every customer moved
once, spread evenly, none left behind (also those registered while it runs), undone as one step,
and a departure delivered twice starting one transfer."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import rpc
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import sqlite_env
from services.customer.application import CustomerApplication
from services.customer.handover import COMPLETION_GRACE_SECONDS, HANDOVER
from services.customer.handover_process import REACTION
from services.sales.application import SalesApplication
from tests.support import InProcessSalesForce, customer_payload, staffed

OPERATOR = Caller("op-handover", Role.OPERATOR)
BOOK_AGENTS = ("A-1", "A-2", "A-3")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def pass_grace(self) -> None:
        self.now += timedelta(seconds=COMPLETION_GRACE_SECONDS + 1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> tuple[CustomerApplication, InProcessSalesForce]:
    sales = staffed(SalesApplication(env=sqlite_env(tmp_path / "sales.sqlite")), agents=BOOK_AGENTS)
    customers = CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"), clock=clock)
    return customers, InProcessSalesForce(sales)


def register(
    customers: CustomerApplication, sales_force: InProcessSalesForce, n: int, agent: str
) -> list[str]:
    return [
        customers.register_customer(
            rpc.RegisterCustomer().load(customer_payload(agent_id=agent)),
            CommandMeta.new(OPERATOR),
            sales_force,
        )["customer_id"]
        for _ in range(n)
    ]


def run_until_done(customers: CustomerApplication, clock: Clock, steps: int = 1000) -> None:
    for _ in range(steps):
        if not customers.advance_transfers():
            clock.pass_grace()  # nothing moved this round: let the completion grace pass
        customers.owners.catch_up()
        if not customers.owners.active_transfers():
            return
    raise AssertionError("the transfers never finished")


def owners_of(customers: CustomerApplication, ids: list[str], sales_force: Any) -> Counter[str]:
    return Counter(
        customers.get_customer({"customer_id": uuid.UUID(c)}, CommandMeta.new(OPERATOR), sales_force)[
            "owning_agent_id"
        ]
        for c in ids
    )


def owner_changes(customers: CustomerApplication) -> list[Any]:
    return [
        m
        for batch in customers.notifications(0)
        for n in batch
        if (m := customers.envelope(n)) and m["event_type"] == "customer.owner_changed"
    ]


def transfer(customers: CustomerApplication, sales_force: InProcessSalesForce) -> str:
    answer = customers.transfer_book(
        {
            "from_agent_id": "A-1",
            "successor": {"kind": "round_robin", "team_id": None},
            "reason": "reorganised",
        },
        CommandMeta.new(OPERATOR),
        sales_force,
    )
    return str(answer["transfer_id"])


def status(customers: CustomerApplication, transfer_id: str, sales_force: Any) -> dict[str, Any]:
    return customers.get_book_transfer(
        {"transfer_id": uuid.UUID(transfer_id)}, CommandMeta.new(OPERATOR), sales_force
    )


def test_a_book_is_spread_evenly_and_each_customer_moves_once(world: Any, clock: Clock) -> None:
    customers, sales_force = world
    book = register(customers, sales_force, 301, "A-1")
    transfer_id = transfer(customers, sales_force)
    customers.advance_transfers()
    mid = status(customers, transfer_id, sales_force)
    assert mid["state"] == "running" and 0 < mid["moved"] < 301 and mid["total"] == 301
    late = register(customers, sales_force, 7, "A-1")  # registered while it runs: moved too
    run_until_done(customers, clock)
    shares = owners_of(customers, book + late, sales_force)
    assert set(shares) == {"A-2", "A-3"} and abs(shares["A-2"] - shares["A-3"]) <= 1
    changes = owner_changes(customers)
    assert len(changes) == 308 and len({c["aggregate_id"] for c in changes}) == 308
    done = status(customers, transfer_id, sales_force)
    assert (done["state"], done["moved"], done["total"]) == ("completed", 308, 308)
    history = customers.get_customer(
        {"customer_id": uuid.UUID(book[0])}, CommandMeta.new(OPERATOR), sales_force
    )
    [change] = history["ownership_history"]
    assert change["from_agent_id"] == "A-1" and change["transfer_id"] == transfer_id


def test_an_undo_moves_back_what_was_not_moved_since_and_names_the_rest(world: Any, clock: Clock) -> None:
    customers, sales_force = world
    book = register(customers, sales_force, 40, "A-1")
    transfer_id = transfer(customers, sales_force)
    run_until_done(customers, clock)
    moved_again = book[:3]
    for customer_id in moved_again:
        current = customers.get_customer(
            {"customer_id": uuid.UUID(customer_id)}, CommandMeta.new(OPERATOR), sales_force
        )
        other = "A-3" if current["owning_agent_id"] == "A-2" else "A-2"
        customers.reassign_customer(
            {"customer_id": uuid.UUID(customer_id), "new_agent_id": other, "reason": "customer asked"},
            CommandMeta.new(OPERATOR),
            sales_force,
        )
    customers.undo_book_transfer(
        {"transfer_id": uuid.UUID(transfer_id), "reason": "wrong agent"},
        CommandMeta.new(OPERATOR),
        sales_force,
    )
    run_until_done(customers, clock)
    shares = owners_of(customers, book, sales_force)
    assert shares["A-1"] == 37
    undone = status(customers, transfer_id, sales_force)
    assert undone["state"] == "undone" and undone["moved_back"] == 37
    assert undone["left_where_they_are"]["count"] == 3
    assert sorted(undone["left_where_they_are"]["first"]) == sorted(moved_again)


def test_the_same_departure_delivered_twice_starts_one_transfer(world: Any, clock: Clock) -> None:
    customers, sales_force = world
    register(customers, sales_force, 5, "A-1")
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": "sales.agent_departed",
        "correlation_id": "corr-1",
        "payload": {
            "agent_id": "A-1",
            "team_id": "T-1",
            "departed_on": "2026-11-30",
            "reason": "resigned",
            "successor": {"kind": "agent", "agent_id": "A-2", "team_id": None},
            "successors": ["A-2"],
        },
    }
    first = customers.hand_over_departed_agents_book(
        envelope, CommandMeta.for_reaction(envelope, REACTION, HANDOVER)
    )
    again = customers.hand_over_departed_agents_book(
        envelope, CommandMeta.for_reaction(envelope, REACTION, HANDOVER)
    )
    assert first == again
    customers.owners.catch_up()
    assert customers.owners.active_transfers() == [first["transfer_id"]]
    run_until_done(customers, clock)
    assert customers.owners.count_of("A-2") == 5 and customers.owners.count_of("A-1") == 0


def test_pages_of_a_book_are_stable_while_customers_are_registered(world: Any) -> None:
    customers, sales_force = world
    book = set(register(customers, sales_force, 120, "A-2"))
    seen: list[str] = []
    cursor = None
    while True:
        page = customers.list_customers(
            {"owning_agent_id": "A-2", "page_size": 25, "cursor": cursor},
            CommandMeta.new(OPERATOR),
            sales_force,
        )
        seen += [c["customer_id"] for c in page["customers"]]
        register(customers, sales_force, 3, "A-2")  # arriving while the pages are read
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen))  # nothing twice
    assert book <= set(seen)  # nothing that was there from the start is skipped
    assert seen == sorted(seen)


def test_two_transfers_between_the_same_agents_run_one_after_the_other(world: Any, clock: Clock) -> None:
    customers, sales_force = world
    first_book = register(customers, sales_force, 30, "A-1")
    second_book = register(customers, sales_force, 20, "A-2")
    for source, target in (("A-1", "A-2"), ("A-2", "A-1")):  # a swap: without an order, ping-pong
        customers.transfer_book(
            {"from_agent_id": source, "successor": {"kind": "agent", "agent_id": target}, "reason": "swap"},
            CommandMeta.new(OPERATOR),
            sales_force,
        )
    run_until_done(customers, clock)
    # The first moved A-1's book to A-2; the second, waiting for it, then moved all of A-2's to A-1.
    assert owners_of(customers, first_book + second_book, sales_force) == Counter({"A-1": 50})
    assert len(owner_changes(customers)) == 30 + 50
