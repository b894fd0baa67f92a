"""Selling's rules, without I/O: an opportunity's stages and forecast, quotes rated from the
catalogue, the policy's state machine, and the daily plan's order, overdue and overlap rules."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from contracts import fields
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, ValidationFailed
from services.sales.application.planning import with_clashes
from services.sales.domain.activity import (
    Activity,
    ActivityKind,
    AgentDay,
    Booking,
    PlanStatus,
    clashes,
    day_bounds,
    days_touched,
    plan_status,
)
from services.sales.domain.following import FollowedOwner
from services.sales.domain.opportunity import (
    CLOSED_STAGES,
    PROBABILITY,
    TRANSITIONS,
    Opportunity,
    Stage,
    forecast,
)
from services.sales.domain.policy import (
    ALLOWED,
    CLAIM_MOVES,
    ClaimStatus,
    Policy,
    PolicyAction,
    PolicyStatus,
)
from services.sales.domain.rating import Catalogue, age_on, catalogue_in_force, load_catalogue
from tests.support import rule_of

AGENT = Caller("u-a1", Role.AGENT, "A-1")
# The day the policies of these tests are serviced on: after all they report.
TODAY = date(2029, 1, 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def meta() -> CommandMeta:
    return CommandMeta.new(AGENT)


# Opportunities ------------------------------------------------------------------------------------


def opportunity(premium: str = "10000.00") -> Opportunity:
    return Opportunity.open(
        customer_id="c-1",
        customer_kind="prospect",
        agent_id="A-1",
        product="life",
        expected_annual_premium=Decimal(premium),
        source="referral",
        expected_close_date=None,
        note=None,
        meta=meta(),
    )


def at_stage(stage: Stage) -> Opportunity:
    """An opportunity walked to ``stage`` along the shortest allowed path."""
    path = {
        Stage.NEW: [],
        Stage.CONTACTED: [Stage.CONTACTED],
        Stage.NEEDS_ANALYSIS: [Stage.CONTACTED, Stage.NEEDS_ANALYSIS],
        Stage.PROPOSAL: [Stage.CONTACTED, Stage.NEEDS_ANALYSIS, Stage.PROPOSAL],
        Stage.NEGOTIATION: [Stage.CONTACTED, Stage.NEEDS_ANALYSIS, Stage.PROPOSAL, Stage.NEGOTIATION],
        Stage.WON: [Stage.CONTACTED, Stage.NEEDS_ANALYSIS, Stage.PROPOSAL, Stage.WON],
        Stage.LOST: [Stage.LOST],
    }[stage]
    opp = opportunity()
    for step in path:
        move(opp, step)
    return opp


def move(opp: Opportunity, to: Stage) -> None:
    opp.move(
        to,
        lost_reason="price" if to == Stage.LOST else None,
        policy_number="POL-0000000000000001" if to == Stage.WON else None,
        meta=meta(),
    )


def test_the_stage_vocabulary_is_the_contracts() -> None:
    assert tuple(s.value for s in Stage) == fields.OPPORTUNITY_STAGES


@pytest.mark.parametrize(("origin", "target"), list(itertools.product(Stage, Stage)))
def test_every_transition_is_allowed_or_refused_as_the_table_says(origin: Stage, target: Stage) -> None:
    opp = at_stage(origin)
    if target in TRANSITIONS[origin]:
        move(opp, target)
        assert opp.stage == target
        assert opp.probability == PROBABILITY[target]
    else:
        with pytest.raises(InvalidState):
            move(opp, target)
        assert opp.stage == origin


def test_closed_stages_are_final_and_open_ones_can_always_be_lost() -> None:
    for stage in CLOSED_STAGES:
        assert TRANSITIONS[stage] == frozenset()
    for stage in set(Stage) - set(CLOSED_STAGES):
        assert Stage.LOST in TRANSITIONS[stage]


def test_forecast_is_expected_premium_times_the_stage_probability() -> None:
    assert forecast(Decimal("10000.00"), Stage.NEW) == Decimal("1000.00")
    assert forecast(Decimal("10000.00"), Stage.PROPOSAL) == Decimal("6000.00")
    assert forecast(Decimal("333.33"), Stage.CONTACTED) == Decimal("66.67")  # rounded half up to cents
    assert forecast(Decimal("10000.00"), Stage.LOST) == Decimal("0.00")
    opp = at_stage(Stage.NEGOTIATION)
    assert opp.weighted_premium == Decimal("8000.00")
    rising = [PROBABILITY[s] for s in Stage if s != Stage.LOST]
    assert rising == sorted(rising) and rising[-1] == 1 and PROBABILITY[Stage.LOST] == 0


def test_lost_needs_a_reason_and_won_needs_the_policy() -> None:
    opp = at_stage(Stage.PROPOSAL)
    with pytest.raises(ValidationFailed) as lost:
        opp.move(Stage.LOST, meta=meta())
    assert rule_of(lost.value) == ("lost_reason", "required")
    with pytest.raises(ValidationFailed) as won:
        opp.move(Stage.WON, meta=meta())
    assert rule_of(won.value) == ("policy_number", "required")
    with pytest.raises(ValidationFailed) as stray:
        opp.move(Stage.NEGOTIATION, lost_reason="price", meta=meta())
    assert rule_of(stray.value) == ("lost_reason", "not_allowed")


def test_open_work_follows_the_customers_owner_now_whatever_order_the_changes_come_in() -> None:
    followed = FollowedOwner.start("c-1", meta())
    opp, closed = opportunity(), at_stage(Stage.LOST)
    owner, former = followed.learn(3, "A-1", "A-2", meta())
    assert (owner, former) == ("A-2", frozenset({"A-1"}))
    assert opp.follow_owner(former, owner, 3, "moved", meta()) is True
    assert opp.agent_id == "A-2"
    assert opp.follow_owner(former, owner, 3, "moved", meta()) is False  # moved already
    assert closed.follow_owner(former, owner, 3, "moved", meta()) is False  # closed work stays
    # The undoing (A-2 -> A-1) is followed before a requeued older change (A-1 -> A-2) comes back:
    # the older one cannot move the work away from the owner now.
    undone = FollowedOwner.start("c-2", meta())
    work = opportunity()  # held by A-1, the first change never followed
    owner, former = undone.learn(4, "A-2", "A-1", meta())
    assert owner == "A-1" and work.follow_owner(former, owner, 4, "undone", meta()) is False
    owner, former = undone.learn(3, "A-1", "A-2", meta())
    assert (owner, former) == ("A-1", frozenset({"A-2"}))
    assert work.follow_owner(former, owner, 3, "late", meta()) is False
    assert work.agent_id == "A-1"


def test_an_older_change_arriving_late_still_moves_what_a_former_owner_holds() -> None:
    followed = FollowedOwner.start("c-3", meta())
    work = opportunity()  # held by A-1
    followed.learn(6, "A-2", "A-3", meta())  # the newer change, first: A-1's work is not A-2's
    owner, former = followed.learn(5, "A-1", "A-2", meta())  # then the older one: A-1 owned before
    assert (owner, former) == ("A-3", frozenset({"A-1", "A-2"}))
    assert work.follow_owner(former, owner, 6, "late", meta()) is True
    assert work.agent_id == "A-3"


# Quotes -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return catalogue_in_force(load_catalogue(), date(2026, 12, 1))


def test_the_catalogue_is_versioned_data_for_the_four_products(catalogue: Catalogue) -> None:
    assert catalogue.version == "2026.1"
    assert set(catalogue.products) == set(fields.PRODUCTS)
    assert catalogue.quote_valid_days == 30
    with pytest.raises(ValidationFailed) as early:
        catalogue_in_force(load_catalogue(), date(2025, 12, 31))
    assert rule_of(early.value) == ("start_date", "no_catalogue")


def test_a_premium_is_the_rate_per_thousand_of_the_sum_insured(catalogue: Catalogue) -> None:
    rating = catalogue.rate("life", 35, 20, Decimal("500000.00"))
    assert (rating.age_band, rating.rate_per_thousand) == ("31-40", Decimal("1.85"))
    assert rating.annual_premium == Decimal("925.00")
    # The band edges belong to their band.
    assert catalogue.rate("life", 30, 20, Decimal("500000.00")).rate_per_thousand == Decimal("1.20")
    assert catalogue.rate("life", 31, 20, Decimal("500000.00")).rate_per_thousand == Decimal("1.85")


def test_a_premium_is_never_below_the_products_minimum(catalogue: Catalogue) -> None:
    assert catalogue.rate("property", 40, 1, Decimal("100000.00")).annual_premium == Decimal("150.00")


@pytest.mark.parametrize(
    ("product", "age", "term", "sum_insured", "rule"),
    [
        ("life", 35, 7, "500000.00", ("term_years", "one_of")),
        ("life", 65, 20, "500000.00", ("term_years", "not_offered_at_age")),
        ("life", 75, 5, "500000.00", ("customer_id", "not_eligible")),
        ("life", 35, 20, "1000.00", ("sum_insured", "range")),
        ("boat", 35, 1, "1000.00", ("product", "one_of")),
    ],
)
def test_a_quote_outside_the_rating_rules_is_refused(
    catalogue: Catalogue, product: str, age: int, term: int, sum_insured: str, rule: tuple[str, str]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        catalogue.rate(product, age, term, Decimal(sum_insured))
    assert rule_of(refused.value) == rule


def test_age_is_counted_in_whole_years_on_the_start_date() -> None:
    assert age_on(date(1990, 6, 15), date(2026, 6, 14)) == 35
    assert age_on(date(1990, 6, 15), date(2026, 6, 15)) == 36


def test_a_quote_sells_once_to_its_customer_while_it_is_valid(catalogue: Catalogue) -> None:
    from services.sales.domain.rating import Quote

    quote = Quote.issue(
        rating=catalogue.rate("health", 30, 1, Decimal("100000.00")),
        customer_id="c-1",
        agent_id="A-1",
        start_date=date(2026, 12, 1),
        issued_on=date(2026, 12, 1),
        valid_days=30,
        meta=meta(),
    )
    assert quote.valid_until == date(2026, 12, 31)
    quote.require_usable("c-1", date(2026, 12, 31))
    for customer, on, rule in (
        ("c-1", date(2027, 1, 1), "expired"),
        ("c-2", date(2026, 12, 2), "other_customer"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            quote.require_usable(customer, on)
        assert rule_of(refused.value) == ("quote_id", rule)
    quote.accept("POL-0000000000000001", meta())
    with pytest.raises(ValidationFailed) as used:
        quote.require_usable("c-1", date(2026, 12, 2))
    assert rule_of(used.value) == ("quote_id", "used")


# The policy's life --------------------------------------------------------------------------------


def policy(status: PolicyStatus = PolicyStatus.ACTIVE) -> Policy:
    sold = Policy.sell(
        policy_number="POL-0000000000000001",
        customer_id="c-1",
        product="life",
        annual_premium=Decimal("1200.00"),
        start_date=date(2026, 1, 1),
        term_years=1,
        agent_id="A-1",
        meta=meta(),
    )
    if status != PolicyStatus.ACTIVE:
        sold.lapse(today=TODAY, missed_due_date=date(2026, 6, 1), lapsed_on=date(2026, 8, 1), meta=meta())
    if status == PolicyStatus.CANCELLED:
        sold.cancel(today=TODAY, on=date(2026, 8, 2), reason="non_payment", note=None, meta=meta())
    return sold


def act(on: Policy, action: PolicyAction) -> None:
    match action:
        case PolicyAction.RENEW:
            on.renew(
                on=date(2026, 12, 1),
                term_years=1,
                annual_premium=Decimal("1300.00"),
                quote_id=None,
                meta=meta(),
            )
        case PolicyAction.PAY:
            on.pay(
                today=TODAY,
                payment_id="p-1",
                amount=Decimal("100.00"),
                due_date=date(2026, 9, 1),
                paid_on=date(2026, 9, 3),
                meta=meta(),
            )
        case PolicyAction.LAPSE:
            on.lapse(today=TODAY, missed_due_date=date(2026, 9, 1), lapsed_on=date(2026, 11, 1), meta=meta())
        case PolicyAction.REINSTATE:
            on.reinstate(today=TODAY, on=date(2026, 11, 15), reason="arrears paid", meta=meta())
        case PolicyAction.CANCEL:
            on.cancel(today=TODAY, on=date(2026, 9, 1), reason="customer_request", note=None, meta=meta())


@pytest.mark.parametrize(("status", "action"), list(itertools.product(PolicyStatus, PolicyAction)))
def test_every_policy_action_is_allowed_or_refused_as_the_state_machine_says(
    status: PolicyStatus, action: PolicyAction
) -> None:
    subject = policy(status)
    version = subject.version
    if action in ALLOWED[status]:
        act(subject, action)
        assert subject.version == version + 1
    else:
        with pytest.raises(InvalidState):
            act(subject, action)
        assert subject.version == version


def test_the_state_machine_ends_where_it_should() -> None:
    lapsed = policy(PolicyStatus.ACTIVE)
    act(lapsed, PolicyAction.LAPSE)
    assert lapsed.status == PolicyStatus.LAPSED
    act(lapsed, PolicyAction.REINSTATE)
    assert (lapsed.status, lapsed.lapsed_on) == (PolicyStatus.ACTIVE, None)
    renewed = policy()
    act(renewed, PolicyAction.RENEW)
    assert (renewed.end_date, renewed.annual_premium, renewed.renewals) == (
        date(2028, 1, 1),
        Decimal("1300.00"),
        1,
    )
    assert renewed.term_start == date(2027, 1, 1)


def test_renewals_open_90_days_before_the_end_and_close_30_days_after() -> None:
    for on, refused in (
        (date(2026, 10, 2), True),
        (date(2026, 10, 3), False),
        (date(2027, 1, 31), False),
        (date(2027, 2, 1), True),
    ):
        subject = policy()

        def renew(subject: Policy = subject, on: date = on) -> None:
            subject.renew(on=on, term_years=1, annual_premium=Decimal("1.00"), quote_id=None, meta=meta())

        if refused:
            with pytest.raises(InvalidState):
                renew()
        else:
            renew()


def test_a_premium_is_paid_once_per_due_date_and_a_paid_one_does_not_lapse() -> None:
    subject = policy()
    subject.pay(
        today=TODAY,
        payment_id="p-1",
        amount=Decimal("100.00"),
        due_date=date(2026, 2, 1),
        paid_on=date(2026, 2, 10),
        meta=meta(),
    )
    assert subject.pending_events[-1].days_late == 9  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed) as again:
        subject.pay(
            today=TODAY,
            payment_id="p-2",
            amount=Decimal("100.00"),
            due_date=date(2026, 2, 1),
            paid_on=date(2026, 2, 10),
            meta=meta(),
        )
    assert rule_of(again.value) == ("due_date", "already_paid")
    with pytest.raises(InvalidState):
        subject.lapse(today=TODAY, missed_due_date=date(2026, 2, 1), lapsed_on=date(2026, 4, 1), meta=meta())
    with pytest.raises(ValidationFailed) as early:
        subject.lapse(today=TODAY, missed_due_date=date(2026, 3, 1), lapsed_on=date(2026, 3, 1), meta=meta())
    assert rule_of(early.value) == ("lapsed_on", "after_due_date")


def test_reinstatement_is_possible_for_two_years_after_a_lapse() -> None:
    subject = policy(PolicyStatus.LAPSED)
    with pytest.raises(InvalidState):
        subject.reinstate(today=TODAY, on=date(2028, 8, 1) + timedelta(days=1), reason="late", meta=meta())
    with pytest.raises(ValidationFailed):
        subject.reinstate(today=TODAY, on=date(2026, 7, 31), reason="before", meta=meta())
    subject.reinstate(today=TODAY, on=date(2028, 7, 31), reason="in time", meta=meta())


def record(
    subject: Policy, status: ClaimStatus, loss: date = date(2026, 3, 1), paid: str | None = None
) -> bool:
    return subject.record_claim(
        claim_id="CL-1",
        loss_date=loss,
        amount_claimed=Decimal("5000.00"),
        status=status,
        amount_paid=Decimal(paid) if paid else None,
        meta=meta(),
    )


def test_a_claim_is_for_a_loss_while_the_policy_was_in_force() -> None:
    lapsed = policy(PolicyStatus.LAPSED)  # lapsed on 2026-08-01
    assert record(lapsed, ClaimStatus.REPORTED, loss=date(2026, 7, 31)) is True
    with pytest.raises(InvalidState):
        lapsed.record_claim(
            claim_id="CL-2", loss_date=date(2026, 8, 1), amount_claimed=Decimal("1.00"),
            status=ClaimStatus.REPORTED, amount_paid=None, meta=meta(),
        )  # fmt: skip
    with pytest.raises(InvalidState):
        record(policy(), ClaimStatus.REPORTED, loss=date(2025, 12, 31))


def test_a_loss_while_lapsed_is_not_covered_after_a_reinstatement_either() -> None:
    subject = policy(PolicyStatus.LAPSED)  # lapsed on 2026-08-01
    subject.reinstate(today=TODAY, on=date(2026, 9, 1), reason="arrears paid", meta=meta())
    with pytest.raises(InvalidState):
        record(subject, ClaimStatus.REPORTED, loss=date(2026, 8, 15))
    assert record(subject, ClaimStatus.REPORTED, loss=date(2026, 9, 1)) is True


def test_the_same_payment_reported_again_changes_nothing_and_dates_cannot_be_ahead() -> None:
    subject = policy()
    pay = {"payment_id": "p-1", "amount": Decimal("100.00"), "due_date": date(2026, 3, 1), "meta": meta()}
    assert subject.pay(today=TODAY, paid_on=date(2026, 3, 1), **pay) is True
    assert subject.pay(today=TODAY, paid_on=date(2026, 3, 1), **pay) is False
    subject.pay(
        today=TODAY,
        payment_id="p-0",
        amount=Decimal("100.00"),
        due_date=date(2026, 2, 1),
        paid_on=date(2026, 3, 2),
        meta=meta(),
    )
    assert subject.paid_through == date(2026, 3, 1)  # an earlier due date paid late
    for change, field in (
        (
            lambda: subject.pay(
                today=date(2026, 4, 1),
                payment_id="p-9",
                amount=Decimal("1.00"),
                due_date=date(2026, 5, 1),
                paid_on=date(2026, 4, 2),
                meta=meta(),
            ),
            "paid_on",
        ),
        (
            lambda: subject.lapse(
                today=date(2026, 4, 1),
                missed_due_date=date(2026, 4, 1),
                lapsed_on=date(2026, 6, 1),
                meta=meta(),
            ),
            "lapsed_on",
        ),
        (
            lambda: subject.cancel(
                today=date(2026, 4, 1), on=date(2026, 4, 2), reason="customer_request", note=None, meta=meta()
            ),
            "cancelled_on",
        ),
        (
            lambda: subject.cancel(
                today=TODAY, on=date(2025, 12, 31), reason="customer_request", note=None, meta=meta()
            ),
            "cancelled_on",
        ),
    ):
        with pytest.raises(ValidationFailed) as refused:
            change()
        assert rule_of(refused.value)[0] == field


@pytest.mark.parametrize(("first", "then"), list(itertools.product(ClaimStatus, ClaimStatus)))
def test_a_claims_status_moves_as_its_table_says(first: ClaimStatus, then: ClaimStatus) -> None:
    subject = policy()
    if first == ClaimStatus.PAID:
        record(subject, ClaimStatus.APPROVED)
    record(subject, first, paid="4000.00" if first == ClaimStatus.PAID else None)
    paid = "4000.00" if then == ClaimStatus.PAID else None
    if then == first:
        assert record(subject, then, paid=paid) is False  # the state sent again changes nothing
    elif then in CLAIM_MOVES[first]:
        assert record(subject, then, paid=paid) is True
        assert subject.claims == {"CL-1": then.value}
    else:
        with pytest.raises(InvalidState):
            record(subject, then, paid=paid)


# The agent's day ----------------------------------------------------------------------------------


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


def test_a_plans_status_is_done_cancelled_overdue_or_to_come() -> None:
    now = at(12).astimezone(UTC)
    assert plan_status("done", at(9), now) == PlanStatus.DONE
    assert plan_status("cancelled", at(9), now) == PlanStatus.CANCELLED
    assert plan_status("planned", at(12), now) == PlanStatus.OVERDUE  # its end has come
    assert plan_status("planned", at(12, 1), now) == PlanStatus.TO_COME  # under way


def test_appointments_overlap_when_their_times_intersect_and_may_touch() -> None:
    booked = [Booking("v1", at(9), at(10)), Booking("v2", at(14), at(15))]
    assert clashes(booked, at(9, 30), at(11)) == ["v1"]
    assert clashes(booked, at(10), at(14)) == []  # back to back
    assert clashes(booked, at(8), at(16)) == ["v1", "v2"]
    assert clashes(booked, at(9), at(10), ignore="v1") == []  # itself, rescheduled


def test_an_agents_day_refuses_an_overlapping_visit_unless_it_is_handed_over() -> None:
    day = AgentDay.start("A-1", date(2026, 12, 1), meta())
    day.book("v1", at(9), at(10), meta())
    with pytest.raises(ValidationFailed) as overlap:
        day.book("v2", at(9, 30), at(10, 30), meta())
    assert rule_of(overlap.value) == ("planned_start", "overlaps")
    day.book("v3", at(9, 30), at(10, 30), meta(), force=True)
    day.release("v1", meta())
    assert sorted(day.bookings) == ["v3"]


def test_days_are_the_business_days_an_activity_touches() -> None:
    assert days_touched(at(23), at(23, 59), SHANGHAI) == [date(2026, 12, 1)]
    assert days_touched(at(23), at(1, day=2), SHANGHAI) == [date(2026, 12, 1), date(2026, 12, 2)]
    assert days_touched(at(23), at(0, day=2), SHANGHAI) == [date(2026, 12, 1)]  # ends at midnight
    start, end = day_bounds(date(2026, 12, 1), SHANGHAI)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-30T16:00:00+00:00", "2026-12-01T16:00:00+00:00")


def test_an_activity_lasts_at_most_twelve_hours_and_ends_after_it_starts() -> None:
    for start, end, rule in ((at(9), at(9), "after_start"), (at(6), at(19), "too_long")):
        with pytest.raises(ValidationFailed) as refused:
            Activity.plan(
                agent_id="A-1", customer_id="c-1", kind=ActivityKind.CALL, planned_start=start,
                planned_end=end, purpose="p", source="agent", source_key=None, meta=meta(),
            )  # fmt: skip
        assert rule_of(refused.value) == ("planned_end", rule)


def test_a_done_or_cancelled_activity_is_final() -> None:
    activity = Activity.plan(
        agent_id="A-1", customer_id="c-1", kind=ActivityKind.VISIT, planned_start=at(9),
        planned_end=at(10), purpose="p", source="agent", source_key=None, meta=meta(),
    )  # fmt: skip
    activity.complete(outcome="reached", notes=None, next_step=None, at=at(10), meta=meta())
    for change in (
        lambda: activity.cancel("late", meta()),
        lambda: activity.reschedule(at(11), at(12), "again", meta()),
        lambda: activity.complete(outcome="reached", notes=None, next_step=None, at=at(11), meta=meta()),
    ):
        with pytest.raises(InvalidState):
            change()


def test_a_plan_marks_planned_appointments_that_clash() -> None:
    def entry(activity_id: str, kind: str, start: datetime, end: datetime, state: str = "planned") -> dict:
        return {
            "activity_id": activity_id, "kind": kind, "state": state,
            "planned_start": start.isoformat(), "planned_end": end.isoformat(),
        }  # fmt: skip

    entries = with_clashes(
        [
            entry("v1", "visit", at(9), at(10)),
            entry("m1", "meeting", at(9, 30), at(11)),
            entry("c1", "call", at(9), at(10)),  # a call fits around a visit
            entry("v2", "visit", at(9), at(10), state="cancelled"),
        ]
    )
    assert {e["activity_id"]: e["clashes_with"] for e in entries} == {
        "v1": ["m1"],
        "m1": ["v1"],
        "c1": [],
        "v2": [],
    }
