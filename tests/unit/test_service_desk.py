"""The service desk's domain as pure functions: the ticket state machine, SLA arithmetic with pauses
and reopenings, warnings and breaches once, survey set rotation, the rules kept as data, and what
its events do to the 360 view. No I/O."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, ValidationFailed
from crm_shared.eventstore import build_envelope
from services.analytics.customer_360 import project, public_view
from services.service_desk.domain import CallBack, DeskRules, SlaClock, SlaState, SurveyBank, Ticket
from services.service_desk.domain.rules import CONFIG_DIR, DeskConfigError
from services.service_desk.domain.sla import Due
from services.service_desk.domain.survey import checked_answers
from tests.support import rule_of

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = DeskRules.load()
BANK = SurveyBank.load()


def meta(n: int = 0) -> CommandMeta:
    return CommandMeta("corr", f"cmd-{n}-{datetime.now().timestamp()}", Caller("desk-1", Role.SERVICE_DESK))


def ticket(kind: str = "complaint", priority: str = "urgent", at: datetime = T0) -> Ticket:
    return Ticket.open(
        customer_id="c-1",
        owning_agent_id="A-1",
        kind=kind,
        channel="phone",
        category="claims.payment_delay",
        priority=priority,
        queue_id=RULES.queue_for(kind, "claims.payment_delay").queue_id,
        subject="claim not paid",
        description="paid nothing after a month",
        target=RULES.sla_target(kind, priority),
        warning_share=RULES.warning_share,
        at=at,
        meta=meta(),
    )


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


# The state machine -------------------------------------------------------------------------------


def in_state(state: str) -> Ticket:
    t = ticket()
    if state in ("in_progress", "awaiting_customer", "resolved", "closed"):
        t.assign(queue_id=t.queue_id, assignee_user_id="desk-1", at=hours(1), meta=meta())
    if state == "awaiting_customer":
        t.request_customer_info(question="policy number?", at=hours(2), meta=meta())
    if state in ("resolved", "closed"):
        t.resolve(resolution="paid", auto_close_after=RULES.auto_close_after, at=hours(3), meta=meta())
    if state == "closed":
        t.close(reason="confirmed", at=hours(4), meta=meta())
    assert t.state == state
    return t


ACTIONS: dict[str, Callable[[Ticket], object]] = {
    "assign": lambda t: t.assign(queue_id="complaints", assignee_user_id="desk-2", at=hours(5), meta=meta()),
    "add_note": lambda t: t.add_note(text="called", author_user_id="desk-1", at=hours(5), meta=meta()),
    "request_customer_info": lambda t: t.request_customer_info(question="?", at=hours(5), meta=meta()),
    "record_customer_reply": lambda t: t.record_customer_reply(reply="here", at=hours(5), meta=meta()),
    "escalate": lambda t: t.escalate(level=1, reason="angry", to_user_id="lead", at=hours(5), meta=meta()),
    "resolve": lambda t: t.resolve(
        resolution="done", auto_close_after=timedelta(days=7), at=hours(5), meta=meta()
    ),
    "confirm": lambda t: t.close(reason="confirmed", at=hours(5), meta=meta()),
    "close_as_settled": lambda t: t.close(reason="resolved", at=hours(5), meta=meta()),
    "close_as_withdrawn": lambda t: t.close(reason="withdrawn", at=hours(5), meta=meta()),
    "reopen": lambda t: t.reopen(
        reason="not paid", reopen_within=timedelta(days=14), at=hours(5), meta=meta()
    ),
}
STATES = ("open", "in_progress", "awaiting_customer", "resolved", "closed")
ALLOWED = {
    "assign": {"open", "in_progress", "awaiting_customer"},
    "add_note": {"open", "in_progress", "awaiting_customer", "resolved"},
    "request_customer_info": {"open", "in_progress"},
    "record_customer_reply": {"awaiting_customer"},
    "escalate": {"open", "in_progress", "awaiting_customer"},
    "resolve": {"open", "in_progress", "awaiting_customer"},
    "confirm": {"resolved"},
    "close_as_settled": {"resolved"},
    "close_as_withdrawn": {"open", "in_progress", "awaiting_customer"},
    "reopen": {"resolved", "closed"},
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_transition_is_allowed_or_refused_with_invalid_state(action: str, state: str) -> None:
    t = in_state(state)
    version = t.version
    if state in ALLOWED[action]:
        ACTIONS[action](t)
        assert t.version == version + 1
    else:
        with pytest.raises(InvalidState) as refused:
            ACTIONS[action](t)
        assert refused.value.code == "invalid_state"
        assert state in refused.value.message
        assert t.version == version  # nothing happened


def test_working_a_ticket_moves_it_through_its_states() -> None:
    t = ticket()
    assert t.state == "open" and t.queue_id == "complaints"
    t.assign(queue_id="complaints", assignee_user_id="desk-1", at=hours(1), meta=meta())
    assert t.state == "in_progress"
    assert not t.assign(queue_id="complaints", assignee_user_id="desk-1", at=hours(1), meta=meta())
    t.assign(queue_id="claims", assignee_user_id=None, at=hours(2), meta=meta())  # back to a queue
    assert (t.state, t.queue_id, t.assignee_user_id) == ("open", "claims", None)
    t.assign(queue_id="claims", assignee_user_id="desk-3", at=hours(3), meta=meta())
    t.request_customer_info(question="which policy?", at=hours(4), meta=meta())
    t.assign(queue_id="claims", assignee_user_id="desk-4", at=hours(5), meta=meta())
    assert t.state == "awaiting_customer"  # reassigning does not end the wait
    t.record_customer_reply(reply="POL-1", at=hours(6), meta=meta())
    assert t.state == "in_progress"


def test_escalation_only_goes_up_to_the_top_level() -> None:
    t = ticket()
    t.escalate(level=2, reason="regulator", to_user_id=None, at=hours(1), meta=meta())
    with pytest.raises(InvalidState, match="level from 3 to 3"):
        t.escalate(level=1, reason="again", to_user_id=None, at=hours(2), meta=meta())
    t.escalate(level=3, reason="press", to_user_id="head", at=hours(2), meta=meta())
    with pytest.raises(InvalidState, match="top level"):
        t.escalate(level=3, reason="again", to_user_id=None, at=hours(3), meta=meta())


def test_reopening_is_refused_after_the_window_and_for_tickets_closed_unresolved() -> None:
    t = in_state("closed")  # closed at 4 h
    with pytest.raises(InvalidState, match="more than 14 days ago"):
        t.reopen(
            reason="late",
            reopen_within=timedelta(days=14),
            at=hours(4) + timedelta(days=14, seconds=1),
            meta=meta(),
        )
    t.reopen(
        reason="in time", reopen_within=timedelta(days=14), at=hours(4) + timedelta(days=14), meta=meta()
    )
    assert t.state == "in_progress" and t.reopen_count == 1
    withdrawn = ticket()
    withdrawn.close(reason="withdrawn", at=hours(1), meta=meta())
    with pytest.raises(InvalidState, match="withdrawn"):
        withdrawn.reopen(reason="x", reopen_within=timedelta(days=14), at=hours(2), meta=meta())


def test_a_complaint_closed_as_settled_gets_a_call_back_and_other_closings_do_not() -> None:
    complaint = in_state("resolved")
    call_back_id = complaint.close(reason="confirmed", at=hours(5), meta=meta())
    assert call_back_id is not None and complaint.call_back_id == call_back_id
    withdrawn = ticket()
    assert withdrawn.close(reason="withdrawn", at=hours(1), meta=meta()) is None
    inquiry = ticket(kind="inquiry")
    inquiry.resolve(resolution="told", auto_close_after=timedelta(days=7), at=hours(1), meta=meta())
    assert inquiry.close(reason="resolved", at=hours(2), meta=meta()) is None


def test_a_resolved_ticket_closes_by_itself_once_the_wait_is_over() -> None:
    t = in_state("resolved")  # resolved at 3 h, waits 7 days
    assert not t.auto_close(at=hours(3) + RULES.auto_close_after - timedelta(seconds=1), meta=meta())
    assert t.auto_close(at=hours(3) + RULES.auto_close_after, meta=meta())
    assert (t.state, t.close_reason) == ("closed", "auto_closed") and t.call_back_id
    assert not t.auto_close(at=hours(500), meta=meta())


# SLA arithmetic ------------------------------------------------------------------------------------


def test_the_clock_warns_at_three_quarters_and_breaches_at_the_deadline() -> None:
    clock = SlaClock(T0, timedelta(hours=48), 0.75)
    assert clock.warning_at() == hours(36) and clock.deadline() == hours(48)
    assert clock.next_due() == (Due.WARNING, hours(36))
    assert clock.state(hours(35)) == SlaState.ON_TRACK
    assert clock.state(hours(36)) == SlaState.WARNED
    assert clock.state(hours(48)) == SlaState.BREACHED
    assert clock.remaining(hours(50)) == timedelta(hours=-2)


def test_a_pause_moves_the_warning_and_the_deadline_by_its_length() -> None:
    clock = SlaClock(T0, timedelta(hours=48), 0.75).stop(hours(10))
    assert clock.deadline() is None and clock.warning_at() is None and clock.next_due() is None
    assert clock.remaining(hours(30)) == timedelta(hours=38)  # frozen while paused
    assert clock.state(hours(100)) == SlaState.PAUSED
    clock = clock.start(hours(34))
    assert clock.warning_at() == hours(60) and clock.deadline() == hours(72)
    twice = clock.stop(hours(40)).start(hours(41))
    assert twice.deadline() == hours(73)


def test_stopping_twice_or_starting_a_running_clock_changes_nothing() -> None:
    clock = SlaClock(T0, timedelta(hours=48), 0.75)
    assert clock.start(hours(5)) == clock
    stopped = clock.stop(hours(5))
    assert stopped.stop(hours(9)) == stopped


def test_the_ticket_clock_stands_still_while_waiting_and_resolved_and_runs_on_when_reopened() -> None:
    t = ticket()  # urgent complaint: 48 h, warning at 36 h
    t.assign(queue_id="complaints", assignee_user_id="desk-1", at=hours(1), meta=meta())
    t.request_customer_info(question="?", at=hours(10), meta=meta())
    t.record_customer_reply(reply="!", at=hours(20), meta=meta())  # 10 h paused
    assert t.clock.deadline() == hours(58) and t.clock.warning_at() == hours(46)
    t.resolve(resolution="paid", auto_close_after=timedelta(days=7), at=hours(30), meta=meta())
    t.close(reason="confirmed", at=hours(40), meta=meta())
    t.reopen(reason="not paid after all", reopen_within=timedelta(days=14), at=hours(50), meta=meta())
    # Resolved at 30 h with 28 h left: reopened at 50 h, the deadline is 78 h.
    assert t.clock.deadline() == hours(78)
    assert t.clock.warning_at() == hours(66)


def test_warning_and_breach_each_happen_once_and_a_breach_escalates_to_the_lead() -> None:
    t = ticket()
    assert not t.warn(at=hours(35), meta=meta())
    assert t.warn(at=hours(36), meta=meta())
    assert not t.warn(at=hours(37), meta=meta())
    assert not t.breach(lead_user_id="lead", at=hours(47), meta=meta())
    assert t.breach(lead_user_id="lead", at=hours(48), meta=meta())
    assert not t.breach(lead_user_id="lead", at=hours(49), meta=meta())
    assert (t.escalation_level, t.escalated_to_user_id) == (1, "lead")
    kinds = [type(e).__name__ for e in t.collect_events()]
    assert kinds == ["Opened", "SlaWarning", "SlaBreached", "Escalated"]
    assert t.sla_state(hours(49)) == SlaState.BREACHED


def test_a_ticket_paused_after_its_warning_is_not_warned_again_and_breaches_later() -> None:
    t = ticket()
    t.warn(at=hours(36), meta=meta())
    t.request_customer_info(question="?", at=hours(40), meta=meta())
    assert not t.breach(lead_user_id="lead", at=hours(100), meta=meta())  # paused: not due
    t.record_customer_reply(reply="!", at=hours(100), meta=meta())
    assert t.clock.warning_at() is None and t.clock.deadline() == hours(108)
    assert not t.warn(at=hours(107), meta=meta())
    assert t.breach(lead_user_id="lead", at=hours(108), meta=meta())


def test_a_breached_ticket_reopened_does_not_breach_again() -> None:
    t = ticket()
    t.warn(at=hours(48), meta=meta())
    t.breach(lead_user_id="lead", at=hours(48), meta=meta())
    t.resolve(resolution="late", auto_close_after=timedelta(days=7), at=hours(50), meta=meta())
    t.reopen(reason="again", reopen_within=timedelta(days=14), at=hours(60), meta=meta())
    assert t.clock.next_due() is None
    assert not t.breach(lead_user_id="lead", at=hours(200), meta=meta())


def test_closing_within_sla_is_judged_on_the_clock_time_spent() -> None:
    on_time = ticket()
    on_time.request_customer_info(question="?", at=hours(1), meta=meta())
    on_time.record_customer_reply(reply="!", at=hours(40), meta=meta())  # 39 h paused
    on_time.close(reason="resolved", resolution="done", at=hours(80), meta=meta())
    assert on_time.closed_within_sla  # 41 h of clock time for a 48 h target
    late = ticket()
    late.close(reason="resolved", resolution="done", at=hours(49), meta=meta())
    assert late.closed_within_sla is False


# Surveys ------------------------------------------------------------------------------------------


def test_the_bank_holds_60_items_in_12_sets_of_5() -> None:
    assert len(BANK.sets) == 12
    assert {len(s.questions) for s in BANK.sets} == {5}
    assert len({q.question_id for s in BANK.sets for q in s.questions}) == 60


def test_a_customer_never_gets_the_same_set_twice_in_a_row_and_first_sets_spread() -> None:
    last = None
    given = []
    for _ in range(30):
        chosen = BANK.next_set("customer-7", last)
        assert chosen.set_id != last
        given.append(chosen.set_id)
        last = chosen.set_id
    assert len(set(given)) == 12  # every set comes round
    firsts = {BANK.next_set(f"customer-{i}", None).set_id for i in range(200)}
    assert len(firsts) == 12
    assert BANK.next_set("customer-7", None) == BANK.next_set("customer-7", None)


def test_survey_answers_must_answer_the_set_asked() -> None:
    survey_set = BANK.sets[0]
    scored = [q for q in survey_set.questions if q.answer == "score"]
    text = next(q for q in survey_set.questions if q.answer == "text")
    good = [{"question_id": q.question_id, "score": 4} for q in scored] + [
        {"question_id": text.question_id, "text": "fine", "score": None}
    ]
    answers = checked_answers(survey_set, list(reversed(good)))
    assert [a["question_id"] for a in answers] == [q.question_id for q in survey_set.questions]
    with pytest.raises(ValidationFailed) as missing:
        checked_answers(survey_set, good[:3])
    assert rule_of(missing.value) == ("answers", "incomplete")
    with pytest.raises(ValidationFailed) as foreign:
        checked_answers(survey_set, [*good, {"question_id": "Q60", "score": 2}])
    assert rule_of(foreign.value) == ("answers.5.question_id", "not_in_set")
    with pytest.raises(ValidationFailed) as scored_text:
        checked_answers(survey_set, [*good[:4], {"question_id": text.question_id, "score": 3}])
    assert rule_of(scored_text.value) == ("answers.4.score", "not_allowed")
    with pytest.raises(ValidationFailed) as unscored:
        checked_answers(survey_set, [{"question_id": scored[0].question_id}, *good[1:]])
    assert rule_of(unscored.value) == ("answers.0.score", "required")


def test_a_call_back_is_recorded_once_and_its_survey_answered_once() -> None:
    call_back = CallBack.schedule(
        call_back_id="6f1d0c3a-2b4e-4c59-8a7d-1e9f0b2c3d4e",
        ticket_id="t-1",
        customer_id="c-1",
        queue_id="complaints",
        assignee_user_id="desk-1",
        due_at=hours(24),
        survey_set=BANK.sets[0],
        at=T0,
        meta=meta(),
    )
    with pytest.raises(InvalidState, match="is scheduled: record the call"):
        call_back.answer_survey(answers=[], by_user_id="desk-1", at=hours(24), meta=meta())
    call_back.record(reached=False, satisfied=True, by_user_id="desk-1", at=hours(25), meta=meta())
    assert call_back.state == "not_reached" and call_back.satisfied is None
    with pytest.raises(InvalidState, match="is not_reached"):
        call_back.answer_survey(answers=[], by_user_id="desk-1", at=hours(25), meta=meta())
    call_back.record(reached=True, satisfied=True, by_user_id="desk-1", at=hours(26), meta=meta())
    with pytest.raises(InvalidState, match="made already"):
        call_back.record(reached=True, satisfied=False, by_user_id="desk-1", at=hours(27), meta=meta())
    call_back.answer_survey(
        answers=[{"question_id": "Q01", "score": 5}], by_user_id="desk-1", at=hours(26), meta=meta()
    )
    with pytest.raises(InvalidState, match="answered already"):
        call_back.answer_survey(answers=[], by_user_id="desk-1", at=hours(26), meta=meta())


def test_the_domain_speaks_the_contracts_vocabulary() -> None:
    from contracts import fields
    from services.service_desk.domain.ticket import UNRESOLVED, TicketState

    assert [s.value for s in TicketState] == list(fields.TICKET_STATES)
    assert {s.value for s in UNRESOLVED} == set(fields.UNRESOLVED_TICKET_STATES)
    assert [s.value for s in SlaState] == list(fields.SLA_STATES)


# Rules as data --------------------------------------------------------------------------------------


def test_targets_come_from_configuration_not_code() -> None:
    assert RULES.sla_target("complaint", "urgent") == timedelta(days=2)
    assert RULES.sla_target("complaint", "ordinary") == timedelta(days=5)
    desk = json.loads((CONFIG_DIR / "desk.json").read_text())
    tree = json.loads((CONFIG_DIR / "categories.json").read_text())
    desk["sla_hours"]["inquiry"]["urgent"] = 4
    assert DeskRules.from_data(desk, tree).sla_target("inquiry", "urgent") == timedelta(hours=4)
    desk["warning_share"] = 1.5
    with pytest.raises(DeskConfigError, match="warning_share"):
        DeskRules.from_data(desk, tree)


def test_tickets_are_routed_by_kind_and_category_and_unknown_categories_refused() -> None:
    assert RULES.queue_for("complaint", "billing.refund").queue_id == "complaints"
    assert RULES.queue_for("inquiry", "billing.refund").queue_id == "billing"
    assert RULES.queue_for("service_request", "policy_service").queue_id == "policy_service"
    with pytest.raises(ValidationFailed) as unknown:
        RULES.category("billing.nonsense")
    assert rule_of(unknown.value) == ("category", "unknown_category")


# The 360 view ---------------------------------------------------------------------------------------


def fold(events: list[Any]) -> dict[str, Any]:
    doc = None
    for i, event in enumerate(events):
        message = build_envelope("service_desk", i + 1, event)
        assert message is not None
        doc = project(doc, message) or doc
        assert project(doc, message) is None  # applied once
    assert doc is not None
    return doc


def test_the_360_shows_each_ticket_with_its_sla_state_and_the_satisfaction_history() -> None:
    t = ticket()
    t.assign(queue_id="complaints", assignee_user_id="desk-1", at=hours(1), meta=meta())
    waiting = ticket(kind="inquiry", priority="ordinary")
    waiting.request_customer_info(question="?", at=hours(2), meta=meta())
    events = [*t.collect_events(), *waiting.collect_events()]
    view = public_view(fold(list(events)), hours(3))
    by_id = {x["ticket_id"]: x for x in view["tickets"]}
    assert by_id[t.ticket_id]["sla_state"] == "on_track" and by_id[t.ticket_id]["status"] == "in_progress"
    assert by_id[waiting.ticket_id]["sla_state"] == "paused"
    later = {x["ticket_id"]: x for x in public_view(fold(list(events)), hours(37))["tickets"]}
    assert later[t.ticket_id]["sla_state"] == "warned"
    t.warn(at=hours(36), meta=meta())
    t.breach(lead_user_id="lead", at=hours(48), meta=meta())
    t.resolve(resolution="paid", auto_close_after=timedelta(days=7), at=hours(50), meta=meta())
    call_back_id = t.close(reason="confirmed", at=hours(51), meta=meta())
    events += t.collect_events()
    call_back = CallBack.schedule(
        call_back_id=str(call_back_id), ticket_id=t.ticket_id, customer_id="c-1", queue_id="complaints",
        assignee_user_id="desk-1", due_at=hours(75), survey_set=BANK.sets[0], at=hours(51), meta=meta(),
    )  # fmt: skip
    call_back.record(reached=True, satisfied=True, by_user_id="desk-1", at=hours(76), meta=meta())
    call_back.answer_survey(
        answers=[
            {"question_id": "Q01", "score": 4, "text": None},
            {"question_id": "Q05", "score": None, "text": "ok"},
        ],
        by_user_id="desk-1", at=hours(76), meta=meta(),
    )  # fmt: skip
    events += call_back.collect_events()
    doc = fold(events)
    view = public_view(doc, hours(80))
    closed = next(x for x in view["tickets"] if x["ticket_id"] == t.ticket_id)
    assert closed["status"] == "closed" and closed["sla_state"] is None
    assert closed["breached_at"] and closed["escalation_level"] == 1 and closed["closed_within_sla"] is False
    assert doc["open_ticket_count"] == 1 and doc["open_complaint_count"] == 0
    history = view["satisfaction_history"]
    assert sorted((s["source"], s.get("score"), s.get("satisfied")) for s in history) == [
        ("call_back", None, True),
        ("survey", 4.0, None),
    ]
    assert view["call_backs"][0]["state"] == "made"
    assert [c["ticket_id"] for c in view["complaints"]] == [t.ticket_id]
