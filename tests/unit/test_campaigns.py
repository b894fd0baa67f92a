"""The campaign and its members as aggregates: who of a segment is in the frozen target and how,
the launch's states, the messages a member gets and the answers recorded. No I/O."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, ValidationFailed
from services.sales.domain.campaign import (
    Campaign,
    CampaignMember,
    CampaignState,
    Chosen,
    Exclusion,
    Group,
    LaunchPage,
    Position,
    Tally,
    Target,
    TargetFacts,
    select,
)

MARKETING = Caller("marketing-li", Role.OPERATOR)
TARGET = Target("value_churn", "high_value_at_risk")


def meta() -> CommandMeta:
    return CommandMeta.new(MARKETING)


def facts(**given: Any) -> TargetFacts:
    data = {
        "customer_id": str(uuid.uuid4()),
        "owning_agent_id": "A-1",
        "region": "Zhejiang",
        "products_held": ["life"],
        "marketing_consents": {"phone": True, "sms": True, "email": False, "post": False},
        "do_not_call": False,
        "erased": False,
        "merged": False,
    }
    return TargetFacts.from_dict(data | given)


def campaign(**given: Any) -> Campaign:
    data = {
        "name": "Keep our best",
        "purpose": "retention",
        "products": ["life", "health"],
        "offer": "A loyalty review of your cover",
        "target": {"scheme": "value_churn", "segment": "high_value_at_risk"},
        "channels": ["agent_call", "sms"],
        "start_date": date(2026, 12, 7),
        "end_date": date(2026, 12, 31),
        "budget": Decimal("50000.00"),
        "control_share": Decimal("0.10"),
        "daily_calls_per_agent": 6,
        "expected_annual_premium": Decimal("8000.00"),
    }
    return Campaign.create(data | given, meta())


def test_the_narrowing_by_province_and_products_comes_before_anything_else() -> None:
    narrowed = Target("value_churn", "high_value_at_risk", regions=("zhejiang ",), not_holding=("auto",))
    channels = ("agent_call",)
    assert isinstance(select("c", narrowed, channels, Decimal(0), facts()), Chosen)
    assert select("c", narrowed, channels, Decimal(0), facts(region="Jiangsu")) == Exclusion.OUTSIDE_NARROWING
    assert (
        select("c", narrowed, channels, Decimal(0), facts(products_held=["auto"]))
        == Exclusion.OUTSIDE_NARROWING
    )
    holders = Target("value_churn", "high_value_at_risk", holding=("health", "auto"))
    assert select("c", holders, channels, Decimal(0), facts()) == Exclusion.OUTSIDE_NARROWING
    assert isinstance(select("c", holders, channels, Decimal(0), facts(products_held=["auto"])), Chosen)


def test_a_customer_no_channel_reaches_is_left_out_with_the_reason() -> None:
    channels = ("agent_call", "sms")
    assert select("c", TARGET, channels, Decimal(0), facts(erased=True)) == Exclusion.ERASED
    assert select("c", TARGET, channels, Decimal(0), facts(merged=True)) == Exclusion.MERGED
    none = {"phone": False, "sms": False, "email": True, "post": False}
    assert select("c", TARGET, channels, Decimal(0), facts(marketing_consents=none)) == Exclusion.NO_CONSENT
    phone_only = {"phone": True, "sms": False, "email": False, "post": False}
    assert (
        select("c", TARGET, channels, Decimal(0), facts(marketing_consents=phone_only, do_not_call=True))
        == Exclusion.DO_NOT_CALL
    )
    # Do-not-call with an sms consent: reached by sms only.
    chosen = select("c", TARGET, channels, Decimal(0), facts(do_not_call=True))
    assert isinstance(chosen, Chosen) and chosen.channels == ("sms",) and chosen.agent_channel is None


def test_the_control_group_is_drawn_among_those_who_could_be_reached() -> None:
    share = Decimal("0.25")
    outcomes = [select("camp-1", TARGET, ("agent_call", "sms"), share, facts()) for _ in range(4_000)]
    assert all(isinstance(o, Chosen) for o in outcomes)
    control = sum(1 for o in outcomes if isinstance(o, Chosen) and o.group == Group.CONTROL)
    assert abs(control - 1_000) < 5 * 28  # Binomial(4,000, 0.25): sd about 27
    again = [
        select("camp-1", TARGET, ("agent_call", "sms"), share, o.facts)
        for o in outcomes
        if isinstance(o, Chosen)
    ]
    assert [o.group for o in outcomes] == [a.group for a in again if isinstance(a, Chosen)]
    tally = Tally()
    for o in [*outcomes, Exclusion.NO_CONSENT]:
        tally.count(o)
    assert tally.as_dict() == {
        "contacted": 4_000 - control,
        "control": control,
        "excluded": {"no_consent": 1},
    }


def test_a_call_comes_before_a_visit_and_messages_are_the_other_channels() -> None:
    all_channels = ("visit", "email", "agent_call", "sms")
    consents = {"phone": True, "sms": True, "email": True, "post": True}
    chosen = select("c", TARGET, all_channels, Decimal(0), facts(marketing_consents=consents))
    assert isinstance(chosen, Chosen)
    # One contact by the agent: the call (a visit is arranged on it).
    assert chosen.channels == ("email", "agent_call", "sms")
    assert chosen.agent_channel == "agent_call" and chosen.message_channels == ("email", "sms")
    visit = select("c", TARGET, ("visit",), Decimal(0), facts())
    assert isinstance(visit, Chosen) and visit.agent_channel == "visit"


def test_a_campaign_with_an_agent_channel_says_what_an_opportunity_is_worth() -> None:
    with pytest.raises(ValidationFailed) as refused:
        campaign(expected_annual_premium=None)
    assert refused.value.fields[0].field == "expected_annual_premium"
    assert campaign(channels=["sms"], expected_annual_premium=None).channels == ("sms",)


def test_launching_twice_changes_nothing_and_a_paused_campaign_resumes_where_it_was() -> None:
    c = campaign()
    assert c.state == CampaignState.DRAFT and c.created_by == "marketing-li"
    assert c.launch(None, date(2026, 12, 9), meta())
    assert c.state == CampaignState.LAUNCHING and c.work_from == date(2026, 12, 9)
    assert not c.launch(None, date(2026, 12, 9), meta())
    first = LaunchPage.record(
        c, 1, Tally(3, 1, {"no_consent": 2}), Tally(), Position(0, "cust-9"), False, meta()
    )
    assert first.id == LaunchPage.id_for(c.campaign_id, 1) and first.position == Position(0, "cust-9")
    assert c.pause("budget review", meta()) and not c.pause("again", meta())
    with pytest.raises(InvalidState):
        LaunchPage.record(c, 2, Tally(), first.totals, Position(1), True, meta())
    assert c.launch(None, date(2026, 12, 10), meta()) and c.state == CampaignState.LAUNCHING
    second = LaunchPage.record(c, 2, Tally(2, 0, {"no_consent": 1}), first.totals, Position(1), True, meta())
    assert second.totals.as_dict() == {"contacted": 5, "control": 1, "excluded": {"no_consent": 3}}
    payload = second.collect_events()[0].public_payload()  # type: ignore[attr-defined]
    assert "after" not in payload and payload["excluded_total"] == {"no_consent": 3} and payload["last"]
    c.complete_launch(second.totals, meta())
    assert c.state == CampaignState.RUNNING
    assert c.frozen == {"contacted": 5, "control": 1, "excluded": {"no_consent": 3}}
    assert c.pause("stop", meta()) and c.launch(None, date(2026, 12, 11), meta())
    assert c.state == CampaignState.RUNNING  # its launch had completed
    assert c.close("done", date(2026, 12, 20), meta()) and not c.close("again", date(2026, 12, 21), meta())
    assert c.measured_until() == date(2026, 12, 20)
    with pytest.raises(InvalidState):
        c.launch(None, date(2026, 12, 21), meta())


def test_a_campaign_past_its_end_cannot_launch_and_a_draft_cannot_pause() -> None:
    c = campaign()
    with pytest.raises(InvalidState):
        c.pause("why", meta())
    with pytest.raises(InvalidState, match="ended"):
        c.launch(None, date(2027, 1, 1), meta())
    assert c.close("never ran", date(2027, 1, 5), meta()) and c.measured_until() == date(2026, 12, 31)


def test_a_contacted_member_gets_a_message_per_message_channel_and_the_control_group_none() -> None:
    c = campaign(channels=["agent_call", "sms", "email"])
    consents = {"phone": True, "sms": True, "email": True, "post": False}
    chosen = select(c.campaign_id, TARGET, c.channels, Decimal(0), facts(marketing_consents=consents))
    assert isinstance(chosen, Chosen)
    member = CampaignMember.select(c, chosen, "A-1", "T-1", uuid.uuid4(), uuid.uuid4(), meta())
    events = member.collect_events()
    assert [type(e).__name__ for e in events] == ["Selected", "MessageRequested", "MessageRequested"]
    assert [e.channel for e in events[1:]] == ["sms", "email"]  # type: ignore[attr-defined]
    assert member.id == CampaignMember.id_for(c.campaign_id, chosen.facts.customer_id)
    held_back = Chosen(chosen.facts, Group.CONTROL, chosen.channels)
    control = CampaignMember.select(c, held_back, "A-1", "T-1", None, None, meta())
    assert [type(e).__name__ for e in control.collect_events()] == ["Selected"]
    with pytest.raises(ValidationFailed) as refused:
        control.record_response("sms", "replied", None, None, meta())
    assert refused.value.fields[0].rule == "control_group"


def test_a_response_names_a_channel_and_message_the_member_was_reached_by() -> None:
    c = campaign()
    chosen = select(c.campaign_id, TARGET, c.channels, Decimal(0), facts())
    assert isinstance(chosen, Chosen)
    member = CampaignMember.select(c, chosen, "A-1", None, None, None, meta())
    sms = member.messages["sms"]
    with pytest.raises(ValidationFailed) as refused:
        member.record_response("email", "clicked", None, None, meta())
    assert refused.value.fields[0].rule == "not_used"
    with pytest.raises(ValidationFailed) as refused:
        member.record_response("sms", "clicked", str(uuid.uuid4()), None, meta())
    assert refused.value.fields[0].rule == "unknown_message"
    member.record_response("sms", "delivered", sms, None, meta())
    member.record_response("agent_call", "converted", None, "signed up on the call", meta())
    assert member.responses == [
        {"channel": "sms", "response": "delivered"},
        {"channel": "agent_call", "response": "converted"},
    ]
    recorded = member.collect_events()[-1]
    assert "note" not in recorded.public_payload()  # type: ignore[attr-defined]
    assert recorded.public_payload()["message_id"] is None  # type: ignore[attr-defined]
