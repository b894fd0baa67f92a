"""The service desk on real processes, two of them, with a clock the test moves (every process reads
the same clock file): tickets on every channel; one warned, then breached and escalated to the
queue's lead; one paused and resumed; one reopened; a complaint closed, called back and surveyed;
each warning and breach exactly once in the store; a breach that fell due while both desk
processes were down fired once after they start; the 360 view, the owning agent's and the
managers' view of the tickets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts import fields
from crm_cli.client import CrmClient
from crm_cli.system import System
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from tests.e2e.conftest import Stores, ok
from tests.e2e.test_sales_force import new_team, register_for
from tests.e2e.test_selling import refused
from tests.support import wait_until

ClientFor = Callable[[Caller], AbstractContextManager[CrmClient]]
DESK = Caller("desk-li", Role.SERVICE_DESK)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def clock(system: System) -> Iterator[FileClock]:
    """The system's clock, at the present second, for the test to move; given back after it."""
    moving = FileClock(system.run_dir / "clock")
    moving.set(datetime.now(UTC).replace(microsecond=0))
    yield moving
    moving.release()


def mine_now(opened: dict[str, dict[str, Any]], customer: str) -> set[str]:
    return {t for t, e in opened.items() if e["payload"]["customer_id"] == customer}


def of_ticket(stores: Stores, event_type: str, ticket_id: str) -> list[dict[str, Any]]:
    return [e for e in stores.events("service_desk", event_type) if e["payload"]["ticket_id"] == ticket_id]


def fired(stores: Stores, event_type: str, ticket_id: str) -> dict[str, Any]:
    """The one event of that type for the ticket, once the timers have fired it."""
    (event,) = wait_until(lambda: of_ticket(stores, event_type, ticket_id), timeout=60, what=event_type)
    return event


def test_the_desk_runs_on_its_clocks_with_two_processes_and_a_restart(
    system: System, rpc: ClientFor, operator_rpc: CrmClient, stores: Stores, clock: FileClock
) -> None:
    t0 = clock()
    team, (agent,) = new_team(operator_rpc, "mgr-desk-1", 1)
    new_team(operator_rpc, "mgr-desk-2", 1)
    customer = register_for(operator_rpc, agent)
    with rpc(DESK) as desk:

        def open_ticket(**given: Any) -> str:
            payload = {
                "customer_id": customer,
                "kind": "complaint",
                "channel": "phone",
                "category": "claims.payment_delay",
                "priority": "urgent",
                "subject": "claim not paid",
                "description": "nothing paid a month after the accident",
                **given,
            }
            return str(ok(desk.call("service_desk", "open_ticket", payload))["ticket_id"])

        on_channels = {
            channel: open_ticket(channel=channel, kind=fields.TICKET_KINDS[i % 3], category="billing.refund")
            for i, channel in enumerate(fields.CHANNELS)
        }
        warned = open_ticket()  # urgent complaint: warned at 36 h, breached at 48 h
        ok(desk.call("service_desk", "assign_ticket", {"ticket_id": warned, "assignee_user_id": "desk-li"}))
        paused = open_ticket(kind="inquiry", priority="ordinary", category="product.coverage")  # 48 h
        ok(
            desk.call(
                "service_desk", "request_customer_info", {"ticket_id": paused, "question": "which car?"}
            )
        )
        reopened = open_ticket(
            kind="service_request", priority="ordinary", category="policy_service.beneficiary"
        )
        ok(desk.call("service_desk", "resolve_ticket", {"ticket_id": reopened, "resolution": "changed"}))
        ok(desk.call("service_desk", "reopen_ticket", {"ticket_id": reopened, "reason": "wrong name"}))
        late = open_ticket(priority="ordinary")  # 5 days: falls due while the desk is down

        opened = {
            e["payload"]["ticket_id"]: e for e in stores.events("service_desk", "service_desk.ticket_opened")
        }
        assert {opened[t]["payload"]["channel"] for t in on_channels.values()} == set(fields.CHANNELS)
        # The owning agent is told of a complaint about their customer by the event: sales puts a
        # call to the customer in their day, once per complaint.
        assert opened[warned]["payload"]["owning_agent_id"] == agent
        complaints = {
            t
            for t, e in opened.items()
            if e["payload"]["kind"] == "complaint" and t in mine_now(opened, customer)
        }

        def calls_planned() -> list[dict[str, Any]] | None:
            with rpc(Caller(f"u-{agent}", Role.AGENT, agent)) as owner:
                day = t0.astimezone(SHANGHAI).date().isoformat()
                plan = ok(owner.call("sales", "get_daily_plan", {"date": day}))
            calls = [a for a in plan["activities"] if a["source"] == "service_desk"]
            return calls if len(calls) >= len(complaints) else None

        calls = wait_until(calls_planned, timeout=60, what="the owner's calls about the complaints")
        assert len(calls) == len(complaints) and all(c["kind"] == "call" for c in calls)
        assert {c["customer_id"] for c in calls} == {customer}
        assert ok(desk.call("service_desk", "get_ticket", {"ticket_id": reopened}))["state"] == "open"

        clock.set(t0 + timedelta(hours=36, minutes=1))
        warning = fired(stores, "service_desk.sla_warning", warned)
        assert warning["payload"]["assignee_user_id"] == "desk-li"
        assert of_ticket(stores, "service_desk.sla_warning", paused) == []  # its clock stands still
        ok(desk.call("service_desk", "record_customer_reply", {"ticket_id": paused, "reply": "the red one"}))

        clock.set(t0 + timedelta(hours=48, minutes=1))
        breach = fired(stores, "service_desk.sla_breached", warned)
        assert breach["occurred_at"] == (t0 + timedelta(hours=48, minutes=1)).isoformat()
        escalation = fired(stores, "service_desk.ticket_escalated", warned)
        assert escalation["payload"]["escalated_to_user_id"] == "desk-lead-complaints"
        mine = ok(desk.call("service_desk", "get_queue", {"assignee_user_id": "desk-li"}))
        assert [(t["ticket_id"], t["sla_state"]) for t in mine["tickets"]] == [(warned, "breached")]
        board = ok(desk.call("service_desk", "get_sla_board", {"queue_id": "complaints"}))
        assert board["total"]["breached"] >= 1

        # The complaint settled: the call-back, the survey, the satisfaction in the 360.
        ok(desk.call("service_desk", "resolve_ticket", {"ticket_id": warned, "resolution": "paid"}))
        closing = ok(desk.call("service_desk", "confirm_resolution", {"ticket_id": warned}))
        assert closing["closed_within_sla"] is False and closing["call_back_id"]
        survey = ok(desk.call("service_desk", "get_survey", {"ticket_id": warned}))
        ok(
            desk.call(
                "service_desk", "record_call_back", {"ticket_id": warned, "reached": True, "satisfied": True}
            )
        )
        answers = [
            {"question_id": q["question_id"], **({"score": 4} if q["answer"] == "score" else {"text": "ok"})}
            for q in survey["questions"]
        ]
        ok(desk.call("service_desk", "record_survey_response", {"ticket_id": warned, "answers": answers}))
        praise = {
            "customer_id": customer,
            "channel": "letter",
            "about_agent_id": agent,
            "text": "very helpful",
        }
        ok(desk.call("service_desk", "record_praise", praise))
        day = clock().astimezone(SHANGHAI).date().isoformat()
        summary = ok(desk.call("service_desk", "get_desk_summary", {"user_id": "desk-li", "date": day}))
        assert (summary["call_backs_made"], summary["call_backs_satisfied"], summary["surveys_answered"]) == (
            1,
            1,
            1,
        )
        assert summary["praise_recorded"] == 1

    # Both desk processes down while the late complaint falls due; it fires once when they are back.
    desk_processes = system.replica_names("service_desk")
    assert len(desk_processes) == 2
    system.stop(desk_processes)
    clock.set(t0 + timedelta(days=5, hours=1))
    system.start(desk_processes)
    system.wait_ready()
    late_breach = fired(stores, "service_desk.sla_breached", late)
    assert late_breach["occurred_at"] >= (t0 + timedelta(days=5, hours=1)).isoformat()

    # Managers see their team's customers' tickets, and no other team's.
    with rpc(Caller("mgr-desk-1", Role.MANAGER)) as manager:
        assert ok(manager.call("service_desk", "get_ticket", {"ticket_id": late}))["customer_id"] == customer

        def settled_view() -> dict[str, Any] | None:
            view = ok(manager.call("analytics", "get_customer_360", {"customer_id": customer}))
            return view if view["satisfaction_history"] and view["feedback"] else None

        view = wait_until(settled_view, timeout=60, what="the 360 view with the survey")
    with rpc(Caller("mgr-desk-2", Role.MANAGER)) as stranger:
        refused(
            stranger.call("service_desk", "get_ticket", {"ticket_id": late}),
            "not_found",
            "ticket_id",
            "unknown_ticket",
        )
    tickets = {t["ticket_id"]: t for t in view["tickets"]}
    assert set(tickets) >= {warned, paused, reopened, late, *on_channels.values()}
    assert tickets[warned]["status"] == "closed" and tickets[warned]["breached_at"]
    assert tickets[late]["sla_state"] == "breached"
    assert {s["source"] for s in view["satisfaction_history"]} == {"call_back", "survey"}

    # Exactly once each, with two processes running throughout and a restart.
    mine = set(opened)
    for event_type in ("service_desk.sla_warning", "service_desk.sla_breached"):
        counts = Counter(e["payload"]["ticket_id"] for e in stores.events("service_desk", event_type))
        assert {t: n for t, n in counts.items() if t in mine and n != 1} == {}, event_type
    assert len(of_ticket(stores, "service_desk.sla_breached", late)) == 1
    assert team
