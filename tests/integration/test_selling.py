"""Selling on real event stores (SQLite and PostgreSQL) with a clock the test moves: quotes expire,
the daily plan says what is overdue, a follow-up asked for twice is planned once, two overlapping
visits cannot both be planned, and a customer's open work follows them to a new owner once per
owner change, and back when it is undone. The customer context is a real application beside it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import rpc
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import ConcurrencyConflict, CrmError, ValidationFailed
from services.customer.application import CustomerApplication
from services.sales.application import SalesApplication
from services.sales.reactions import COMPLAINT_REACTION, REACTION, SALES_REACTIONS
from tests.support import InProcessCustomers, InProcessSalesForce, customer_payload, staffed

OPERATOR = Caller("op-selling", Role.OPERATOR)
AGENT = Caller("u-a1001", Role.AGENT, "A-1001")
SYSTEM = Caller("core-policy-system", Role.SYSTEM)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(store_env: dict[str, str], tmp_path: Any) -> dict[str, Any]:
    clock = Clock()
    sales = staffed(SalesApplication(env=store_env, clock=clock))
    customer_env = dict(store_env)
    if "SQLITE_DBNAME" in customer_env:
        customer_env["SQLITE_DBNAME"] = str(tmp_path / "customers.sqlite")
    customers = CustomerApplication(env=customer_env, clock=clock)
    force = InProcessSalesForce(sales)
    return {
        "clock": clock,
        "sales": sales,
        "customers": customers,
        "force": force,
        "directory": InProcessCustomers(customers, force),
    }


def register(world: dict[str, Any], agent_id: str = "A-1001") -> str:
    data = rpc.RegisterCustomer().load(customer_payload(agent_id=agent_id, working_age=True))
    return str(
        world["customers"].register_customer(data, CommandMeta.new(OPERATOR), world["force"])["customer_id"]
    )


def call(
    world: dict[str, Any], method: str, schema: type, payload: dict[str, Any], caller: Caller = AGENT
) -> Any:
    sales = world["sales"]
    handler = getattr(sales, method)
    data = schema().load(payload)
    if method in (
        "issue_quote",
        "sell_policy",
        "plan_activity",
        "open_opportunity",
        "record_premium_payment",
    ):
        return handler(data, CommandMeta.new(caller), world["directory"], sales)
    return handler(data, CommandMeta.new(caller))


def test_a_quote_sells_at_its_premium_until_it_expires_and_then_is_refused(world: dict[str, Any]) -> None:
    customer = register(world)
    quote = call(
        world,
        "issue_quote",
        rpc.IssueQuote,
        {"customer_id": customer, "product": "health", "sum_insured": "200000.00", "term_years": 1},
    )
    assert quote["valid_until"] == "2026-12-31"
    world["clock"].now += timedelta(days=31)
    before = world["sales"].max_position()
    with pytest.raises(ValidationFailed) as expired:
        call(world, "sell_policy", rpc.SellPolicy, {"customer_id": customer, "quote_id": quote["quote_id"]})
    assert [(f.field, f.rule) for f in expired.value.fields] == [("quote_id", "expired")]
    assert world["sales"].max_position() == before  # refused: nothing appended

    fresh = call(
        world,
        "issue_quote",
        rpc.IssueQuote,
        {"customer_id": customer, "product": "health", "sum_insured": "200000.00", "term_years": 1},
    )
    sold = call(
        world, "sell_policy", rpc.SellPolicy, {"customer_id": customer, "quote_id": fresh["quote_id"]}
    )
    assert Decimal(sold["annual_premium"]) == Decimal(fresh["annual_premium"])
    with pytest.raises(ValidationFailed) as again:
        call(world, "sell_policy", rpc.SellPolicy, {"customer_id": customer, "quote_id": fresh["quote_id"]})
    assert [(f.field, f.rule) for f in again.value.fields] == [("quote_id", "used")]


def plan(
    world: dict[str, Any],
    kind: str,
    start: datetime,
    minutes: int,
    customer: str | None = None,
    caller: Caller = AGENT,
) -> dict[str, Any]:
    payload = {
        "kind": kind,
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(minutes=minutes)).isoformat(),
        "purpose": f"{kind} at {start:%H:%M}",
        "customer_id": customer,
    }
    return call(world, "plan_activity", rpc.PlanActivity, payload, caller)  # type: ignore[no-any-return]


def test_the_daily_plan_says_what_is_done_overdue_and_to_come_as_the_clock_moves(
    world: dict[str, Any],
) -> None:
    customer = register(world)
    day = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    visit = plan(world, "visit", day, 60, customer)
    call_ = plan(world, "call", day + timedelta(hours=2), 15, customer)
    later = plan(world, "paperwork", day + timedelta(hours=6), 30)
    yesterday = plan(world, "call", day - timedelta(days=1), 15, customer)
    call(
        world,
        "complete_activity",
        rpc.CompleteActivity,
        {"activity_id": visit["activity_id"], "outcome": "interested"},
    )

    def statuses() -> dict[str, str]:
        answer = call(world, "get_daily_plan", rpc.GetDailyPlan, {"date": "2026-12-01"})
        return {e["activity_id"]: e["status"] for e in answer["activities"]} | {
            e["activity_id"]: "carried_over" for e in answer["carried_over"]
        }

    assert statuses() == {
        visit["activity_id"]: "done",
        call_["activity_id"]: "to_come",
        later["activity_id"]: "to_come",
        yesterday["activity_id"]: "carried_over",
    }
    world["clock"].now = day + timedelta(hours=3)
    assert statuses()[call_["activity_id"]] == "overdue"
    answer = call(world, "get_daily_plan", rpc.GetDailyPlan, {"date": "2026-12-01"})
    assert [e["activity_id"] for e in answer["activities"]] == [
        visit["activity_id"],
        call_["activity_id"],
        later["activity_id"],
    ]
    assert answer["counts"] == {"done": 1, "cancelled": 0, "overdue": 1, "to_come": 1}


def test_two_overlapping_visits_cannot_both_be_planned_even_at_once(world: dict[str, Any]) -> None:
    customer = register(world)
    start = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    outcomes: list[object] = []

    def attempt(offset: int) -> None:
        try:
            outcomes.append(plan(world, "visit", start + timedelta(minutes=offset), 60, customer))
        except CrmError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=attempt, args=(i * 10,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    planned = [o for o in outcomes if isinstance(o, dict)]
    assert len(planned) == 1, outcomes
    assert all(
        isinstance(o, ValidationFailed | ConcurrencyConflict) for o in outcomes if not isinstance(o, dict)
    )
    # Back to back is not an overlap.
    plan(world, "visit", datetime.fromisoformat(planned[0]["planned_end"]), 30, customer)


def test_a_follow_up_asked_for_twice_is_planned_once(world: dict[str, Any]) -> None:
    customer = register(world)
    request = {
        "agent_id": "A-1001",
        "customer_id": customer,
        "source": "churn_warning",
        "idempotency_key": "churn:abc:1",
        "due_on": "2026-12-03",
        "purpose": "customer at risk: call",
    }
    first = call(world, "plan_follow_up", rpc.PlanFollowUp, request, SYSTEM)
    second = call(world, "plan_follow_up", rpc.PlanFollowUp, request, SYSTEM)  # another command id
    assert first["activity_id"] == second["activity_id"]
    assert (first["already_planned"], second["already_planned"]) == (False, True)
    assert first["planned_start"] == "2026-12-03T01:00:00+00:00"  # 09:00 in Shanghai
    plans = call(world, "get_daily_plan", rpc.GetDailyPlan, {"date": "2026-12-03"})
    assert [e["activity_id"] for e in plans["activities"]] == [first["activity_id"]]


def test_a_complaint_puts_one_call_in_the_owners_day_however_often_it_is_delivered(
    world: dict[str, Any],
) -> None:
    customer = register(world)
    opened = {
        "event_id": "5d1c9e0a-1111-4c2b-9e7d-3a8f6b2c4d10",
        "event_type": "service_desk.ticket_opened",
        "occurred_at": "2026-12-03T02:30:00+00:00",  # 10:30 in Shanghai
        "correlation_id": "corr-complaint",
        "payload": {
            "ticket_id": "8c2b6f0e-2222-4d3a-8f1e-6b9c0d2e4f21",
            "customer_id": customer,
            "owning_agent_id": "A-1001",
            "kind": "complaint",
            "category": "claims.payment_delay",
            "priority": "urgent",
            "channel": "phone",
        },
    }
    sales = world["sales"]
    for _ in range(2):  # delivered twice: the same command
        sales.follow_up_complaint(
            opened, CommandMeta.for_reaction(opened, COMPLAINT_REACTION, SALES_REACTIONS)
        )
    plans = call(world, "get_daily_plan", rpc.GetDailyPlan, {"date": "2026-12-03"})
    (planned,) = plans["activities"]
    assert (planned["kind"], planned["source"], planned["customer_id"]) == ("call", "service_desk", customer)
    assert "complained" in planned["purpose"]
    # An owner who left gets nothing: their book moves, and the ticket is the desk's.
    departed = {**opened, "event_id": "5d1c9e0a-3333-4c2b-9e7d-3a8f6b2c4d10"}
    departed["payload"] = {**opened["payload"], "owning_agent_id": "A-gone"}
    answer = sales.follow_up_complaint(
        departed, CommandMeta.for_reaction(departed, COMPLAINT_REACTION, SALES_REACTIONS)
    )
    assert answer == {"agent_id": "A-gone", "planned": False}


def owner_changes(customers: CustomerApplication) -> list[dict[str, Any]]:
    return [
        m
        for batch in customers.notifications(0)
        for n in batch
        if (m := customers.envelope(n)) and m["event_type"] == "customer.owner_changed"
    ]


def test_open_work_follows_the_customer_to_a_new_owner_once_and_back_when_undone(
    world: dict[str, Any],
) -> None:
    sales, customers = world["sales"], world["customers"]
    customer = register(world)
    opportunity = call(
        world,
        "open_opportunity",
        rpc.OpenOpportunity,
        {
            "customer_id": customer,
            "product": "life",
            "expected_annual_premium": "6000.00",
            "source": "referral",
        },
    )
    visit = plan(world, "visit", datetime(2026, 12, 4, 1, 0, tzinfo=UTC), 60, customer)
    done = plan(world, "call", datetime(2026, 12, 1, 1, 0, tzinfo=UTC), 10, customer)
    call(
        world,
        "complete_activity",
        rpc.CompleteActivity,
        {"activity_id": done["activity_id"], "outcome": "reached"},
    )
    own = plan(world, "paperwork", datetime(2026, 12, 4, 3, 0, tzinfo=UTC), 30)  # about no customer

    def reassign(to: str) -> dict[str, Any]:
        customers.reassign_customer(
            {"customer_id": customer, "new_agent_id": to, "reason": "test"},
            CommandMeta.new(OPERATOR),
            world["force"],
        )
        return owner_changes(customers)[-1]

    def follow(envelope: dict[str, Any]) -> dict[str, Any]:
        return sales.follow_customer_owner(
            envelope, CommandMeta.for_reaction(envelope, REACTION, SALES_REACTIONS)
        )  # type: ignore[no-any-return]

    def agents() -> tuple[str, str, str, str]:
        return (
            call(
                world,
                "get_opportunity",
                rpc.GetOpportunity,
                {"opportunity_id": opportunity["opportunity_id"]},
                OPERATOR,
            )["agent_id"],
            call(world, "get_activity", rpc.GetActivity, {"activity_id": visit["activity_id"]}, OPERATOR)[
                "agent_id"
            ],
            call(world, "get_activity", rpc.GetActivity, {"activity_id": done["activity_id"]}, OPERATOR)[
                "agent_id"
            ],
            call(world, "get_activity", rpc.GetActivity, {"activity_id": own["activity_id"]}, OPERATOR)[
                "agent_id"
            ],
        )

    moved = reassign("A-2002")
    assert follow(moved) == {
        "customer_id": customer,
        "to_agent_id": "A-2002",
        "opportunities": 1,
        "activities": 1,
    }
    assert agents() == ("A-2002", "A-2002", "A-1001", "A-1001")  # done work and other work stay
    before = sales.max_position()
    follow(moved)  # the same event again
    assert sales.max_position() == before
    new_owner_day = call(
        world, "get_daily_plan", rpc.GetDailyPlan, {"agent_id": "A-2002", "date": "2026-12-04"}, OPERATOR
    )
    assert [e["activity_id"] for e in new_owner_day["activities"]] == [visit["activity_id"]]

    back = reassign("A-1001")
    follow(back)
    assert agents() == ("A-1001", "A-1001", "A-1001", "A-1001")
    again = sales.max_position()
    follow({**moved, "event_id": "a-requeued-copy"})  # the older change arriving late moves nothing
    assert sales.max_position() == again
    assert agents()[0] == "A-1001"


def test_a_book_transfer_moves_the_books_open_work_and_its_undoing_moves_it_back(
    world: dict[str, Any],
) -> None:
    sales, customers, clock = world["sales"], world["customers"], world["clock"]
    book = [register(world) for _ in range(5)]
    opportunities = [
        call(
            world,
            "open_opportunity",
            rpc.OpenOpportunity,
            {"customer_id": c, "product": "auto", "expected_annual_premium": "3000.00", "source": "renewal"},
        )["opportunity_id"]
        for c in book
    ]
    calls = [
        plan(world, "call", datetime(2026, 12, 5, 1, i, tzinfo=UTC), 1, c)["activity_id"]
        for i, c in enumerate(book)
    ]
    transfer_id = customers.transfer_book(
        {
            "from_agent_id": "A-1001",
            "successor": {"kind": "agent", "agent_id": "A-2002"},
            "reason": "reorganised",
        },
        CommandMeta.new(OPERATOR),
        world["force"],
    )["transfer_id"]

    def run_and_follow() -> None:
        for _ in range(100):
            if not customers.advance_transfers():
                # the transfer's completion grace, counted from when it was stored
                clock.now = max(clock.now, datetime.now(UTC)) + timedelta(seconds=10)
            customers.owners.catch_up()
            if not customers.owners.active_transfers():
                break
        for change in owner_changes(customers):
            sales.follow_customer_owner(change, CommandMeta.for_reaction(change, REACTION, SALES_REACTIONS))

    def holders() -> set[str]:
        return {
            call(world, "get_opportunity", rpc.GetOpportunity, {"opportunity_id": o}, OPERATOR)["agent_id"]
            for o in opportunities
        } | {
            call(world, "get_activity", rpc.GetActivity, {"activity_id": a}, OPERATOR)["agent_id"]
            for a in calls
        }

    run_and_follow()
    assert holders() == {"A-2002"}
    customers.undo_book_transfer(
        {"transfer_id": transfer_id, "reason": "wrong agent"}, CommandMeta.new(OPERATOR), world["force"]
    )
    run_and_follow()  # every owner change is followed again, the first ones included: nothing doubles
    assert holders() == {"A-1001"}
    reassigned = [
        m
        for batch in sales.notifications(0)
        for n in batch
        if (m := sales.envelope(n)) and m["event_type"] == "sales.opportunity_reassigned"
    ]
    assert len(reassigned) == 2 * len(book)  # there, and back, once each


def test_two_visits_of_a_day_move_out_of_the_old_owners_day_and_into_the_new_owners(
    world: dict[str, Any],
) -> None:
    sales, customers = world["sales"], world["customers"]
    customer = register(world)
    morning, noon = datetime(2026, 12, 8, 1, 0, tzinfo=UTC), datetime(2026, 12, 8, 4, 0, tzinfo=UTC)
    visits = [plan(world, "visit", at, 60, customer)["activity_id"] for at in (morning, noon)]
    customers.reassign_customer(
        {"customer_id": customer, "new_agent_id": "A-2002", "reason": "test"},
        CommandMeta.new(OPERATOR),
        world["force"],
    )
    change = owner_changes(customers)[-1]
    assert (
        sales.follow_customer_owner(change, CommandMeta.for_reaction(change, REACTION, SALES_REACTIONS))[
            "activities"
        ]
        == 2
    )
    # The old owner's day is free at those hours again; the new owner's holds both visits.
    other = register(world)
    for at in (morning, noon):
        plan(world, "visit", at, 60, other)
    new_owner = Caller("u-a2002", Role.AGENT, "A-2002")
    for at in (morning, noon):
        with pytest.raises(ValidationFailed) as taken:
            plan(world, "meeting", at + timedelta(minutes=30), 30, None, caller=new_owner)
        assert [(f.field, f.rule) for f in taken.value.fields] == [("planned_start", "overlaps")]
    day = call(world, "get_daily_plan", rpc.GetDailyPlan, {"date": "2026-12-08"}, new_owner)
    assert [e["activity_id"] for e in day["activities"]] == visits
