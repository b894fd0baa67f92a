"""The service desk on real event stores (SQLite and PostgreSQL) with a clock the test moves:
tickets on every channel routed to their queues, a warning then a breach with its escalation fired
once by two desk processes at once, a paused ticket that fires nothing until the customer answers,
a breach that fell due while the desk was down fired once when it is back, a resolved ticket
closing by itself, and the call-back, survey and the desk's day after a complaint. The customer
context is a real application beside it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import fields, rpc
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, ValidationFailed
from services.customer.application import CustomerApplication
from services.sales.application import SalesApplication
from services.service_desk.application import ServiceDeskApplication
from services.service_desk.domain import Complaint
from tests.support import InProcessCustomers, InProcessSalesForce, customer_payload, rule_of, staffed

DESK = Caller("desk-wang", Role.SERVICE_DESK)
OPERATOR = Caller("op-desk", Role.OPERATOR)
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def own_store(env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    env = dict(env)
    if "SQLITE_DBNAME" in env:
        env["SQLITE_DBNAME"] = str(tmp_path / f"{name}.sqlite")
    return env


class World:
    def __init__(self, store_env: dict[str, str], tmp_path: Path) -> None:
        self.clock = Clock()
        self.env = own_store(store_env, tmp_path, "desk")
        sales = staffed(SalesApplication(env=own_store(store_env, tmp_path, "sales"), clock=self.clock))
        self.customers = CustomerApplication(
            env=own_store(store_env, tmp_path, "customers"), clock=self.clock
        )
        self.force = InProcessSalesForce(sales)
        self.directory = InProcessCustomers(self.customers, self.force)
        self.desk = self.desk_process()

    def desk_process(self) -> ServiceDeskApplication:
        """Another service desk process on the same store."""
        return ServiceDeskApplication(env=self.env, clock=self.clock)

    def register(self) -> str:
        data = rpc.RegisterCustomer().load(customer_payload(agent_id="A-1001"))
        return str(
            self.customers.register_customer(data, CommandMeta.new(OPERATOR), self.force)["customer_id"]
        )

    def open(self, customer_id: str, **overrides: Any) -> dict[str, Any]:
        payload = {
            "customer_id": customer_id,
            "kind": "complaint",
            "channel": "phone",
            "category": "claims.payment_delay",
            "priority": "urgent",
            "subject": "claim not paid",
            "description": "nothing paid a month after the accident",
            **overrides,
        }
        data = rpc.OpenTicket().load(payload)
        return self.desk.open_ticket(data, CommandMeta.new(DESK), self.directory)

    def do(self, operation: str, schema: type, payload: dict[str, Any], caller: Caller = DESK) -> Any:
        return getattr(self.desk, operation)(schema().load(payload), CommandMeta.new(caller))

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [
            m
            for batch in self.desk.notifications(0)
            for n in batch
            if (m := self.desk.envelope(n)) and m["event_type"] == event_type
        ]


@pytest.fixture
def world(store_env: dict[str, str], tmp_path: Path) -> World:
    return World(store_env, tmp_path)


def test_tickets_on_every_channel_go_to_their_queues_nearest_to_breach_first(world: World) -> None:
    customer = world.register()
    opened = {}
    for i, channel in enumerate(fields.CHANNELS):
        kind = fields.TICKET_KINDS[i % 3]
        opened[channel] = world.open(customer, channel=channel, kind=kind, category="billing.refund")
        world.clock.advance(minutes=10)
    assert {t["queue_id"] for c, t in opened.items() if t["state"] == "open"} == {"complaints", "billing"}
    billing = world.do("get_queue", rpc.GetQueue, {"queue_id": "billing"})
    to_breach = [t["seconds_to_breach"] for t in billing["tickets"]]
    assert to_breach == sorted(to_breach) and len(to_breach) == 5  # four inquiries, ... requests
    assert {t["kind"] for t in billing["tickets"]} == {"inquiry", "service_request"}
    # Paged: two at a time, in the same order.
    first = world.do("get_queue", rpc.GetQueue, {"queue_id": "billing", "limit": 2})
    world.clock.advance(hours=3)  # the next page is ranked at the first page's moment
    second = world.do("get_queue", rpc.GetQueue, {"queue_id": "billing", "limit": 2, "after": first["next"]})
    assert [t["ticket_id"] for t in first["tickets"] + second["tickets"]] == [
        t["ticket_id"] for t in billing["tickets"][:4]
    ]
    board = world.do("get_sla_board", rpc.GetSlaBoard, {})
    assert board["total"] == {"on_track": 7, "warned": 0, "breached": 0, "paused": 0}
    assert {q["queue_id"] for q in board["by_queue"]} == {"complaints", "billing"}


def test_two_desk_processes_fire_each_warning_and_breach_once_and_the_breach_escalates(world: World) -> None:
    customer = world.register()
    ticket = world.open(customer)  # urgent complaint: warned at 36 h, breached at 48 h
    world.do(
        "assign_ticket", rpc.AssignTicket, {"ticket_id": ticket["ticket_id"], "assignee_user_id": "desk-wang"}
    )
    other = world.desk_process()

    def fire_from_both() -> None:
        threads = [threading.Thread(target=app.fire_due) for app in (world.desk, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    world.clock.advance(hours=35, minutes=59)
    fire_from_both()
    assert world.events("service_desk.sla_warning") == []
    world.clock.advance(minutes=2)
    fire_from_both()
    fire_from_both()
    (warning,) = world.events("service_desk.sla_warning")
    assert warning["payload"]["assignee_user_id"] == "desk-wang"
    assert warning["actor"]["user_id"] == "service:service-desk-timers"
    queue = world.do("get_queue", rpc.GetQueue, {"assignee_user_id": "desk-wang"})
    assert queue["tickets"][0]["sla_state"] == "warned"
    world.clock.advance(hours=12)
    fire_from_both()
    fire_from_both()
    (breach,) = world.events("service_desk.sla_breached")
    (escalation,) = world.events("service_desk.ticket_escalated")
    assert escalation["payload"]["escalated_to_user_id"] == "desk-lead-complaints"
    assert escalation["payload"]["on_breach"] is True
    assert breach["payload"]["sla_deadline"] == ticket["sla_deadline"]
    board = world.do("get_sla_board", rpc.GetSlaBoard, {"queue_id": "complaints"})
    assert board["total"]["breached"] == 1
    seen = world.do("get_ticket", rpc.GetTicket, {"ticket_id": ticket["ticket_id"]})
    assert seen["sla"]["state"] == "breached" and seen["escalation_level"] == 1


def test_a_paused_ticket_fires_nothing_until_the_customer_answers(world: World) -> None:
    customer = world.register()
    ticket = world.open(customer, kind="inquiry", priority="ordinary", category="product.coverage")  # 48 h
    world.clock.advance(hours=10)
    world.do(
        "request_customer_info", rpc.RequestCustomerInfo, {"ticket_id": ticket["ticket_id"], "question": "?"}
    )
    world.clock.advance(days=10)
    assert world.desk.fire_due().total == 0
    board = world.do("get_sla_board", rpc.GetSlaBoard, {})
    assert board["total"]["paused"] == 1
    reply = world.do(
        "record_customer_reply", rpc.RecordCustomerReply, {"ticket_id": ticket["ticket_id"], "reply": "x"}
    )
    assert reply["sla_deadline"] == (world.clock.now + timedelta(hours=38)).isoformat()
    world.clock.advance(hours=26)  # 36 h of clock time: the warning
    assert world.desk.fire_due().warnings == 1
    world.clock.advance(hours=12)
    assert world.desk.fire_due().breaches == 1


def test_a_breach_that_fell_due_while_the_desk_was_down_fires_once_when_it_is_back(world: World) -> None:
    customer = world.register()
    world.open(customer)
    world.desk.close()  # down
    world.clock.advance(days=5)
    back = world.desk_process()
    world.desk = back
    fired = back.fire_due()
    assert (fired.warnings, fired.breaches) == (1, 1)
    assert back.fire_due().total == 0
    late = world.events("service_desk.sla_breached")[0]
    assert late["occurred_at"] == world.clock.now.isoformat()  # fired late, at the restart
    assert len(world.events("service_desk.sla_warning")) == 1


def test_a_rejected_command_appends_nothing(world: World) -> None:
    customer = world.register()
    ticket = world.open(customer)
    before = world.desk.max_position()
    with pytest.raises(InvalidState):
        world.do("confirm_resolution", rpc.ConfirmResolution, {"ticket_id": ticket["ticket_id"]})
    with pytest.raises(ValidationFailed) as unknown:
        world.do("assign_ticket", rpc.AssignTicket, {"ticket_id": ticket["ticket_id"], "queue_id": "nowhere"})
    assert rule_of(unknown.value) == ("queue_id", "unknown_queue")
    with pytest.raises(ValidationFailed) as category:
        world.open(customer, category="claims.nonsense")
    assert rule_of(category.value) == ("category", "unknown_category")
    assert world.desk.max_position() == before


def test_after_a_complaint_the_call_back_the_rotating_survey_and_the_desk_day(world: World) -> None:
    customer = world.register()
    sets = []
    for _ in range(2):
        ticket = world.open(customer, priority="ordinary")
        tid = ticket["ticket_id"]
        world.do("assign_ticket", rpc.AssignTicket, {"ticket_id": tid, "assignee_user_id": "desk-wang"})
        world.do("resolve_ticket", rpc.ResolveTicket, {"ticket_id": tid, "resolution": "paid with interest"})
        closed = world.do("confirm_resolution", rpc.ConfirmResolution, {"ticket_id": tid})
        assert closed["closed_within_sla"] is True and closed["call_back_id"]
        survey = world.do("get_survey", rpc.GetSurvey, {"ticket_id": tid})
        assert 4 <= len(survey["questions"]) <= 5
        sets.append(survey["survey_set_id"])
    assert sets[0] != sets[1]  # never the same set twice in a row
    world.clock.advance(days=1)
    due = world.do("get_queue", rpc.GetQueue, {"assignee_user_id": "desk-wang"})["call_backs_due"]
    assert len(due) == 2
    world.do("record_call_back", rpc.RecordCallBack, {"ticket_id": tid, "reached": True, "satisfied": True})
    answers = [
        {"question_id": q["question_id"], "score": 5} if q["answer"] == "score" else
        {"question_id": q["question_id"], "text": "quick and kind"}
        for q in survey["questions"]
    ]  # fmt: skip
    answered = world.do(
        "record_survey_response", rpc.RecordSurveyResponse, {"ticket_id": tid, "answers": answers}
    )
    assert answered["average_score"] == 5.0
    with pytest.raises(InvalidState):
        world.do("record_survey_response", rpc.RecordSurveyResponse, {"ticket_id": tid, "answers": answers})
    praise = {
        "customer_id": customer,
        "channel": "letter",
        "about_user_id": "desk-wang",
        "ticket_id": tid,
        "text": "thank you",
    }
    world.desk.record_praise(rpc.RecordPraise().load(praise), CommandMeta.new(DESK), world.directory)
    suggestion = {"customer_id": customer, "channel": "web", "text": "let me upload claim photos"}
    world.desk.record_suggestion(
        rpc.RecordSuggestion().load(suggestion), CommandMeta.new(DESK), world.directory
    )
    day = world.do("get_desk_summary", rpc.GetDeskSummary, {"user_id": "desk-wang", "date": "2026-12-02"})
    assert (day["call_backs_made"], day["call_backs_satisfied"], day["surveys_answered"]) == (1, 1, 1)
    assert (day["praise_recorded"], day["suggestions_recorded"]) == (1, 1)
    opening_day = world.do(
        "get_desk_summary", rpc.GetDeskSummary, {"user_id": "desk-wang", "date": "2026-12-01"}
    )
    assert (opening_day["complaints_recorded"], opening_day["closed_within_sla"]) == (2, 2)
    month = world.do("get_desk_summary", rpc.GetDeskSummary, {"queue_id": "complaints", "month": "2026-12"})
    assert (month["complaints_recorded"], month["call_backs_made"], month["breached"]) == (2, 1, 0)
    assert (month["praise_recorded"], month["suggestions_recorded"]) == (1, 0)  # about its ticket


def test_a_resolved_ticket_closes_by_itself_and_may_be_reopened_for_14_days(world: World) -> None:
    customer = world.register()
    tid = world.open(customer)["ticket_id"]
    world.do("resolve_ticket", rpc.ResolveTicket, {"ticket_id": tid, "resolution": "paid"})
    world.clock.advance(days=6, hours=23)
    assert world.desk.fire_due().auto_closed == 0
    world.clock.advance(hours=1)
    assert world.desk.fire_due().auto_closed == 1
    closed = world.do("get_ticket", rpc.GetTicket, {"ticket_id": tid})
    assert (closed["state"], closed["close_reason"]) == ("closed", "auto_closed") and closed["call_back_id"]
    world.clock.advance(days=13)
    world.do("reopen_ticket", rpc.ReopenTicket, {"ticket_id": tid, "reason": "not paid after all"})
    assert len(world.events("service_desk.ticket_reopened")) == 1
    world.do("close_ticket", rpc.CloseTicket, {"ticket_id": tid, "reason": "withdrawn"})
    world.clock.advance(days=1)
    with pytest.raises(InvalidState, match="withdrawn"):
        world.do("reopen_ticket", rpc.ReopenTicket, {"ticket_id": tid, "reason": "again"})


def test_a_complaint_of_version_1_still_reads_and_closes(world: World) -> None:
    customer = world.register()
    legacy = Complaint.open(
        customer_id=customer,
        channel="phone",
        category="claims",
        priority="urgent",
        description="opened before the upgrade",
        opened_at=world.clock.now,
        meta=CommandMeta.new(DESK),
    )
    world.desk.save(legacy)
    tid = str(legacy.id)
    assert world.do("get_ticket", rpc.GetTicket, {"ticket_id": tid})["status"] == "open"
    with pytest.raises(InvalidState, match="version 1"):
        world.do("assign_ticket", rpc.AssignTicket, {"ticket_id": tid, "assignee_user_id": "desk-wang"})
    closed = world.do(
        "close_complaint", rpc.CloseComplaint, {"ticket_id": tid, "resolution": "paid", "satisfaction": 4}
    )
    assert closed["closed_within_sla"] is True
    assert [e["event_type"] for e in world.events("service_desk.complaint_closed")] == [
        "service_desk.complaint_closed"
    ]


def test_the_file_clock_moves_every_reader_and_refuses_a_file_others_may_write(tmp_path: Path) -> None:
    clock = FileClock(tmp_path / "clock")
    before = datetime.now(UTC)
    assert clock() >= before  # no file: the system clock
    clock.set(START + timedelta(days=3))
    assert FileClock(tmp_path / "clock")() == START + timedelta(days=3)  # another reader
    (tmp_path / "clock").chmod(0o666)
    with pytest.raises(PermissionError, match="written by others"):
        clock()
    clock.release()
    assert clock() >= before
