"""Selling and the agent's day on real processes: an agent's week (opportunities won and lost,
quotes, sales, a lapse and a reinstatement, a renewal, a cancellation, a claim, days with done,
overdue, cancelled and coming activities), the managers' team day and pipeline for two teams, the
360 views after it, work following a customer to a new owner, and every refusal of a caller
outside their scope."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from crm_cli.client import CrmClient
from crm_shared.auth import Caller, Role
from services.sales.domain.policy import add_years
from services.sales.domain.rating import age_on, catalogue_in_force, load_catalogue
from tests.e2e.conftest import Stores, ok
from tests.e2e.test_sales_force import new_team, register_for
from tests.support import wait_until

ClientFor = Callable[[Caller], AbstractContextManager[CrmClient]]
SHANGHAI = ZoneInfo("Asia/Shanghai")
SYSTEM = Caller("core-policy-system", Role.SYSTEM)


def refused(reply: dict[str, Any], code: str, field: str | None = None, rule: str | None = None) -> None:
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    if field is not None:
        assert {"field": field, "rule": rule} in [
            {"field": f["field"], "rule": f["rule"]} for f in reply["error"]["fields"]
        ], reply


def at(day: Any, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), SHANGHAI).isoformat()


def activity(
    client: CrmClient, day: Any, hour: int, kind: str, customer: str | None, minutes: int = 45
) -> str:
    start = datetime.combine(day, time(hour), SHANGHAI)
    payload = {
        "kind": kind,
        "customer_id": customer,
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(minutes=minutes)).isoformat(),
        "purpose": f"{kind} at {hour}:00",
    }
    return str(ok(client.call("sales", "plan_activity", payload))["activity_id"])


def move(client: CrmClient, opportunity: str, stage: str, **extra: Any) -> dict[str, Any]:
    return ok(
        client.call("sales", "move_opportunity", {"opportunity_id": opportunity, "stage": stage, **extra})
    )


def test_an_agents_week_the_managers_view_and_the_360_after_it(
    operator_rpc: CrmClient, rpc: ClientFor, stores: Stores
) -> None:
    team_a, (a0, a1) = new_team(operator_rpc, "mgr-sell-a", 2)
    team_b, (b0,) = new_team(operator_rpc, "mgr-sell-b", 1)
    buyer = register_for(operator_rpc, a0, working_age=True)  # every product quotes for them
    second, other_team = register_for(operator_rpc, a0), register_for(operator_rpc, b0)
    today = datetime.now(SHANGHAI).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    with (
        rpc(Caller(f"u-{a0}", Role.AGENT, a0)) as agent,
        rpc(Caller("u-b0", Role.AGENT, b0)) as agent_b,
        rpc(Caller("mgr-sell-a", Role.MANAGER)) as manager_a,
        rpc(Caller("mgr-sell-b", Role.MANAGER)) as manager_b,
        rpc(SYSTEM) as core,
    ):
        # Opportunities: one won from a quote, one lost, one still open.
        won = ok(
            agent.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": buyer,
                    "product": "life",
                    "expected_annual_premium": "8000.00",
                    "source": "referral",
                },
            )
        )
        assert (won["stage"], won["customer_kind"], won["weighted_premium"]) == ("new", "prospect", "800.00")
        for stage in ("contacted", "needs_analysis", "proposal"):
            move(agent, won["opportunity_id"], stage)
        refused(
            agent.call(
                "sales", "move_opportunity", {"opportunity_id": won["opportunity_id"], "stage": "contacted"}
            ),
            "invalid_state",
        )
        quote = ok(
            agent.call(
                "sales",
                "issue_quote",
                {"customer_id": buyer, "product": "life", "sum_insured": "500000.00", "term_years": 20},
            )
        )
        born = date.fromisoformat(
            ok(agent.call("customer", "get_customer", {"customer_id": buyer}))["date_of_birth"]
        )
        rated = catalogue_in_force(load_catalogue(), today).rate(
            "life", age_on(born, today), 20, Decimal("500000.00")
        )
        assert (quote["catalogue_version"], quote["age"], quote["annual_premium"]) == (
            "2026.1",
            rated.age,
            str(rated.annual_premium),
        )
        sold = ok(agent.call("sales", "sell_policy", {"customer_id": buyer, "quote_id": quote["quote_id"]}))
        assert sold["annual_premium"] == quote["annual_premium"]
        closed = move(agent, won["opportunity_id"], "won", policy_number=sold["policy_number"])
        assert (closed["stage"], closed["policy_number"], closed["next_stages"]) == (
            "won",
            sold["policy_number"],
            [],
        )

        lost = ok(
            agent.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": second,
                    "product": "health",
                    "expected_annual_premium": "3000.00",
                    "source": "walk_in",
                },
            )
        )
        move(agent, lost["opportunity_id"], "contacted")
        move(agent, lost["opportunity_id"], "lost", lost_reason="price")
        still_open = ok(
            agent.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": second,
                    "product": "auto",
                    "expected_annual_premium": "4000.00",
                    "source": "cross_sell",
                },
            )
        )
        move(agent, still_open["opportunity_id"], "contacted")

        # The policy's life: a policy sold eleven months ago lapses, is reinstated and renewed.
        started = (today - timedelta(days=335)).isoformat()
        home = ok(
            agent.call(
                "sales",
                "sell_policy",
                {
                    "customer_id": second,
                    "product": "property",
                    "annual_premium": "1200.00",
                    "start_date": started,
                    "term_years": 1,
                },
            )
        )["policy_number"]
        ok(
            core.call(
                "sales",
                "record_premium_payment",
                {"policy_number": home, "payment_id": "PAY-1", "amount": "600.00", "due_date": started},
            )
        )
        missed = (today - timedelta(days=150)).isoformat()
        lapsed = ok(
            core.call("sales", "record_policy_lapse", {"policy_number": home, "missed_due_date": missed})
        )
        assert lapsed["status"] == "lapsed"
        refused(
            core.call(
                "sales",
                "record_premium_payment",
                {"policy_number": home, "payment_id": "PAY-2", "amount": "600.00", "due_date": missed},
            ),
            "invalid_state",
        )
        refused(agent.call("sales", "renew_policy", {"policy_number": home}), "invalid_state")
        refused(
            agent.call("sales", "record_policy_lapse", {"policy_number": home, "missed_due_date": missed}),
            "permission_denied",
        )
        assert (
            ok(core.call("sales", "reinstate_policy", {"policy_number": home, "reason": "arrears paid"}))[
                "status"
            ]
            == "active"
        )
        renewed = ok(
            agent.call("sales", "renew_policy", {"policy_number": home, "annual_premium": "1250.00"})
        )
        assert renewed["end_date"] == add_years(date.fromisoformat(started), 2).isoformat()
        # Another sold and cancelled: cancelled is final.
        gone = ok(
            agent.call(
                "sales",
                "sell_policy",
                {
                    "customer_id": second,
                    "product": "health",
                    "annual_premium": "900.00",
                    "start_date": today.isoformat(),
                    "term_years": 1,
                },
            )
        )["policy_number"]
        assert (
            ok(agent.call("sales", "cancel_policy", {"policy_number": gone, "reason": "cooling_off"}))[
                "status"
            ]
            == "cancelled"
        )
        refused(agent.call("sales", "renew_policy", {"policy_number": gone}), "invalid_state")
        refused(
            core.call("sales", "reinstate_policy", {"policy_number": gone, "reason": "no"}), "invalid_state"
        )
        # A claim from the core claims system, reported and paid.
        claim = {
            "policy_number": sold["policy_number"],
            "claim_id": "CLM-1",
            "loss_date": today.isoformat(),
            "amount_claimed": "20000.00",
        }
        ok(core.call("sales", "record_claim", claim | {"status": "reported"}))
        ok(core.call("sales", "record_claim", claim | {"status": "approved"}))
        ok(core.call("sales", "record_claim", claim | {"status": "paid", "amount_paid": "18000.00"}))
        refused(core.call("sales", "record_claim", claim | {"status": "reported"}), "invalid_state")
        assert ok(agent.call("sales", "get_policy", {"policy_number": sold["policy_number"]}))["claims"] == {
            "CLM-1": "paid"
        }

        # The agent's days: yesterday's visit done, a call left overdue, a meeting cancelled;
        # tomorrow's visit to come. Overlapping visits are refused.
        visit = activity(agent, yesterday, 10, "visit", buyer)
        overdue = activity(agent, yesterday, 14, "call", second, minutes=15)
        dropped = activity(agent, yesterday, 16, "meeting", None)
        coming = activity(agent, tomorrow, 9, "visit", second)
        follow_up = activity(agent, tomorrow, 15, "call", buyer, minutes=15)
        refused(
            agent.call(
                "sales",
                "plan_activity",
                {
                    "kind": "visit",
                    "customer_id": buyer,
                    "planned_start": at(tomorrow, 9, 30),
                    "planned_end": at(tomorrow, 10, 30),
                    "purpose": "double",
                },
            ),
            "validation_failed",
            "planned_start",
            "overlaps",
        )
        ok(
            agent.call(
                "sales",
                "complete_activity",
                {
                    "activity_id": visit,
                    "outcome": "interested",
                    "notes": "wants a proposal",
                    "next_step": "send the proposal",
                },
            )
        )
        ok(agent.call("sales", "cancel_activity", {"activity_id": dropped, "reason": "manager away"}))
        day = ok(agent.call("sales", "get_daily_plan", {"date": yesterday.isoformat()}))
        assert [(e["activity_id"], e["status"]) for e in day["activities"]] == [
            (visit, "done"),
            (overdue, "overdue"),
            (dropped, "cancelled"),
        ]
        ahead = ok(agent.call("sales", "get_daily_plan", {"date": tomorrow.isoformat()}))
        assert [(e["activity_id"], e["status"]) for e in ahead["activities"]] == [
            (coming, "to_come"),
            (follow_up, "to_come"),
        ]

        # The managers' view, each of their own team.
        team_yesterday = ok(
            manager_a.call("sales", "get_team_day", {"team_id": team_a, "date": yesterday.isoformat()})
        )
        row = next(r for r in team_yesterday["agents"] if r["agent_id"] == a0)
        assert (row["planned"], row["done"], row["overdue"], row["cancelled"]) == (2, 1, 1, 1)
        team_today = ok(manager_a.call("sales", "get_team_day", {"team_id": team_a}))
        row = next(r for r in team_today["agents"] if r["agent_id"] == a0)
        assert row["opportunities_moved"] == 3 and row["policies_sold"] == 3
        assert Decimal(row["premium_sold"]) == Decimal(quote["annual_premium"]) + Decimal("2100.00")
        assert {r["agent_id"] for r in team_today["agents"]} == {a0, a1, f"{team_a}.pool"}
        pipeline = ok(manager_a.call("sales", "get_pipeline", {"team_id": team_a}))
        counts = {s["stage"]: s["count"] for s in pipeline["stages"]}
        assert (counts["won"], counts["lost"], counts["contacted"], counts["new"]) == (1, 1, 1, 0)
        assert pipeline["open"] == {"count": 1, "expected_premium": "4000.00", "forecast": "800.00"}
        assert pipeline["conversion"]["contacted"] == {"reached": 3, "won": 1, "lost": 1, "win_rate": "0.500"}
        assert pipeline["conversion"]["proposal"]["win_rate"] == "1.000"
        theirs = ok(
            agent_b.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": other_team,
                    "product": "life",
                    "expected_annual_premium": "5000.00",
                    "source": "campaign",
                },
            )
        )
        assert ok(manager_b.call("sales", "get_pipeline", {"team_id": team_b}))["open"]["count"] == 1
        assert ok(agent.call("sales", "get_pipeline", {"agent_id": a0}))["open"]["count"] == 1

        # Nobody acts outside their scope; outside it, records are as unknown as missing ones.
        refused(
            agent.call("sales", "get_opportunity", {"opportunity_id": theirs["opportunity_id"]}), "not_found"
        )
        refused(
            agent.call(
                "sales",
                "move_opportunity",
                {"opportunity_id": theirs["opportunity_id"], "stage": "contacted"},
            ),
            "not_found",
        )
        refused(
            agent.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": other_team,
                    "product": "life",
                    "expected_annual_premium": "1.00",
                    "source": "referral",
                },
            ),
            "validation_failed",
            "customer_id",
            "unknown_customer",
        )
        refused(
            agent.call(
                "sales",
                "plan_activity",
                {
                    "agent_id": b0,
                    "kind": "call",
                    "planned_start": at(tomorrow, 11),
                    "planned_end": at(tomorrow, 12),
                    "purpose": "x",
                },
            ),
            "validation_failed",
            "agent_id",
            "unknown_agent",
        )
        refused(agent.call("sales", "get_daily_plan", {"agent_id": b0}), "not_found")
        refused(agent.call("sales", "get_pipeline", {"agent_id": b0}), "not_found")
        refused(agent.call("sales", "get_team_day", {"team_id": team_a}), "permission_denied")
        refused(
            agent_b.call("sales", "complete_activity", {"activity_id": coming, "outcome": "done"}),
            "not_found",
        )
        refused(manager_a.call("sales", "get_team_day", {"team_id": team_b}), "not_found")
        refused(manager_a.call("sales", "get_pipeline", {"agent_id": b0}), "not_found")
        refused(manager_a.call("sales", "get_daily_plan", {"agent_id": b0}), "not_found")
        refused(
            manager_b.call(
                "sales",
                "move_opportunity",
                {"opportunity_id": still_open["opportunity_id"], "stage": "needs_analysis"},
            ),
            "not_found",
        )
        refused(manager_b.call("sales", "get_policy", {"policy_number": home}), "not_found")
        refused(
            manager_b.call(
                "sales",
                "issue_quote",
                {"customer_id": buyer, "product": "life", "sum_insured": "500000.00", "term_years": 20},
            ),
            "validation_failed",
            "customer_id",
            "unknown_customer",
        )
        assert (
            ok(manager_a.call("sales", "get_daily_plan", {"agent_id": a0, "date": yesterday.isoformat()}))[
                "counts"
            ]["overdue"]
            == 1
        )

        # Work follows the customer: the second customer's open opportunity and planned activities
        # move to the new owner.
        done_call = activity(agent, yesterday, 11, "call", second, minutes=15)
        ok(agent.call("sales", "complete_activity", {"activity_id": done_call, "outcome": "reached"}))
        ok(
            operator_rpc.call(
                "customer",
                "reassign_customer",
                {"customer_id": second, "new_agent_id": a1, "reason": "closer to home"},
            )
        )

        def moved() -> bool:
            opportunity = ok(
                operator_rpc.call(
                    "sales", "get_opportunity", {"opportunity_id": still_open["opportunity_id"]}
                )
            )
            visit_now = ok(operator_rpc.call("sales", "get_activity", {"activity_id": coming}))
            return opportunity["agent_id"] == a1 and visit_now["agent_id"] == a1

        wait_until(moved, timeout=30, interval=0.2, what="the customer's open work moved to the new owner")
        # Overdue work is still to be done: it moves too. Done work stays with whoever did it.
        assert ok(operator_rpc.call("sales", "get_activity", {"activity_id": overdue}))["agent_id"] == a1
        done_with_them = ok(operator_rpc.call("sales", "get_activity", {"activity_id": done_call}))
        assert (done_with_them["agent_id"], done_with_them["state"]) == (a0, "done")
        assert [
            e["activity_id"]
            for e in ok(
                manager_a.call("sales", "get_daily_plan", {"agent_id": a1, "date": tomorrow.isoformat()})
            )["activities"]
        ] == [coming]
        reassigned = [
            e
            for e in stores.events("sales", "sales.opportunity_reassigned")
            if e["aggregate_id"] == still_open["opportunity_id"]
        ]
        assert len(reassigned) == 1

    # The 360 views after the week.
    def view(customer_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def fetch() -> dict[str, Any] | None:
            reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id})
            return reply["result"] if reply["ok"] and ready(reply["result"]) else None

        return wait_until(fetch, timeout=30, interval=0.2, what=f"the 360 view of {customer_id}")  # type: ignore[no-any-return]

    first = view(
        buyer,
        lambda v: bool(v["claims"]) and v["claims"][0]["status"] == "paid" and v["last_activity"] is not None,
    )
    assert first["open_opportunities"] == []
    assert [(p["policy_number"], p["status"]) for p in first["policies"]] == [
        (sold["policy_number"], "active")
    ]
    assert first["claims"][0]["amount_paid"] == "18000.00"
    assert (first["last_activity"]["activity_id"], first["last_activity"]["outcome"]) == (visit, "interested")
    assert first["next_activity"]["activity_id"] == follow_up

    def settled(v: dict[str, Any]) -> bool:
        statuses = {p["policy_number"]: p["status"] for p in v["policies"]}
        return (
            statuses.get(gone) == "cancelled"
            and bool(v["open_opportunities"])
            and v["open_opportunities"][0]["agent_id"] == a1
            # A lapse and a cancellation within the year: the churn warning is up, and its call
            # is in the owner's day.
            and v["churn_follow_up"] is not None
        )

    other = view(second, settled)
    assert [o["opportunity_id"] for o in other["open_opportunities"]] == [still_open["opportunity_id"]]
    history = [
        (h["status"], h["reason"]) for h in other["policy_status_history"] if h["policy_number"] == home
    ]
    assert history == [
        ("active", "sold"),
        ("lapsed", f"premium due {missed} missed"),
        ("active", "reinstated: arrears paid"),
        ("active", f"renewed to {renewed['end_date']}"),
    ]
    home_now = next(p for p in other["policies"] if p["policy_number"] == home)
    assert (home_now["status"], home_now["annual_premium"], home_now["paid_through"]) == (
        "active",
        "1250.00",
        started,
    )
    assert other["churn_risk"]["state"] == "raised"
    assert {r["rule"] for r in other["churn_risk"]["reasons"]} >= {"recent_lapse", "recent_cancellation"}
    assert (
        other["churn_follow_up"]["agent_id"] == a1 and other["churn_follow_up"]["source"] == "churn_warning"
    )
    # The overdue call is not what comes next. The churn warning's call is in today's first free
    # slot: before this moment of the day it is what comes next, after it, overdue beside the other
    # call, and the visit of tomorrow comes next.
    call = other["churn_follow_up"]
    passed = datetime.fromisoformat(call["planned_end"]) <= datetime.now(UTC)
    assert (other["next_activity"]["activity_id"], other["overdue_activity_count"]) == (
        (coming, 2) if passed else (call["activity_id"], 1)
    )
