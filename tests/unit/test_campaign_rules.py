"""The rules of a campaign that need no store: reach by consent, the control group draw, spreading
an agent's calls over the campaign's working days, and the uplift against the control group."""

from __future__ import annotations

import random
import uuid
from datetime import date
from decimal import Decimal

import pytest

from services.sales.domain.campaign_rules import (
    CHANNELS,
    Reachable,
    channels_reaching,
    control_draw,
    cost_per_policy,
    in_control,
    spread,
    uplift,
    wilson,
)

GRANTED = {"status": "granted"}
WITHDRAWN = {"status": "withdrawn"}


def test_a_channel_reaches_only_with_marketing_consent_in_force_for_it() -> None:
    who = Reachable({"sms_marketing": GRANTED, "email_marketing": WITHDRAWN, "phone_service": GRANTED})
    assert channels_reaching(who, CHANNELS) == ("sms",)
    phoned = Reachable({"phone_marketing": GRANTED, "post_marketing": GRANTED})
    assert channels_reaching(phoned, CHANNELS) == ("agent_call", "visit", "post")
    assert channels_reaching(phoned, ("post", "agent_call")) == ("post", "agent_call")


def test_do_not_call_closes_the_agents_channels_and_erased_or_merged_customers_are_never_reached() -> None:
    consents = {"phone_marketing": GRANTED, "sms_marketing": GRANTED}
    assert channels_reaching(Reachable(consents, do_not_call=True), CHANNELS) == ("sms",)
    assert channels_reaching(Reachable(consents, erased=True), CHANNELS) == ()
    assert channels_reaching(Reachable(consents, merged=True), CHANNELS) == ()


def test_what_the_360_says_about_reaching_a_customer() -> None:
    view = {
        "consents": {"sms_marketing": GRANTED},
        "contact_preferences": {"do_not_call": True},
        "erased_at": None,
        "merged_into": None,
    }
    assert Reachable.from_360(view) == Reachable({"sms_marketing": GRANTED}, do_not_call=True)
    assert Reachable.from_360({**view, "erased_at": "2026-01-01T00:00:00+00:00"}).erased


def test_the_control_group_is_stable_for_a_customer_and_of_the_right_size() -> None:
    campaign = uuid.uuid4()
    customers = [str(uuid.uuid4()) for _ in range(20_000)]
    share = Decimal("0.10")
    first = {c for c in customers if in_control(campaign, c, share)}
    assert first == {c for c in customers if in_control(str(campaign), c, share)}
    # Binomial(20,000, 0.1): the standard deviation is about 42; 5 of them either side.
    assert abs(len(first) - 2_000) < 5 * 42
    # Another campaign draws another group.
    other = {c for c in customers if in_control(uuid.uuid4(), c, share)}
    assert len(first & other) < 400
    assert all(0 <= control_draw(campaign, c) < 1 for c in customers[:100])
    assert not any(in_control(campaign, c, Decimal(0)) for c in customers[:100])


def test_an_agents_calls_spread_over_the_working_days_at_most_so_many_a_day() -> None:
    # Monday 7 to Friday 18 December 2026: ten working days.
    start, end = date(2026, 12, 7), date(2026, 12, 18)
    due = spread(25, start, end, per_day=3)
    assert len(due) == 25 and all(d.weekday() < 5 and start <= d <= end for d in due)
    per_day = {d: due.count(d) for d in set(due)}
    assert set(per_day.values()) <= {2, 3} and len(per_day) == 10
    # The earliest days fill first when the room is short of a full round.
    assert spread(3, start, end, per_day=3) == [date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9)]
    # A day already holding calls takes fewer; more calls than room land on the last day.
    held = spread(2, start, date(2026, 12, 8), per_day=2, already={date(2026, 12, 7): 2})
    assert held == [date(2026, 12, 8), date(2026, 12, 8)]
    assert spread(5, start, date(2026, 12, 7), per_day=2) == [date(2026, 12, 7)] * 5


@pytest.mark.parametrize("seed", range(10))
def test_the_uplift_interval_holds_the_true_difference_about_95_times_in_100(seed: int) -> None:
    rng = random.Random(seed)
    p_treated, p_control, n = rng.uniform(0.05, 0.3), rng.uniform(0.02, 0.2), rng.choice([200, 1000])
    covered = 0
    for _ in range(200):
        won = sum(rng.random() < p_treated for _ in range(n))
        control_won = sum(rng.random() < p_control for _ in range(n // 4))
        result = uplift(won, n, control_won, n // 4)
        assert result.interval is not None
        covered += result.interval.low <= p_treated - p_control <= result.interval.high
    assert covered >= 200 * 0.89


def test_uplift_arithmetic_and_cost_per_policy() -> None:
    result = uplift(120, 1_000, 10, 250)
    assert (result.treated_rate, result.control_rate) == (0.12, 0.04)
    assert result.uplift == pytest.approx(0.08)
    assert result.interval is not None and 0.04 < result.interval.low < 0.08 < result.interval.high < 0.11
    assert result.significant
    even = uplift(50, 1_000, 12, 250)
    assert not even.significant and even.interval is not None and even.interval.low < 0 < even.interval.high
    assert uplift(5, 100, 0, 0).interval is None and not uplift(5, 100, 0, 0).significant
    assert wilson(0, 0).low == 0.0 and wilson(0, 0).high == 1.0
    assert cost_per_policy(Decimal("10000"), 3) == Decimal("3333.33")
    assert cost_per_policy(Decimal("10000"), 0) is None
