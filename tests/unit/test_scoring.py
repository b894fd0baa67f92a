"""Scores as pure functions of a customer's 360 document at a moment: the facts (features), value
tiers on a skewed book, RFM quintiles and the watch list, every churn rule, the risk score and the
lifecycle. No I/O."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.analytics.customer_360 import empty_document
from services.analytics.scoring.churn import assess, crossing, meets
from services.analytics.scoring.config import CONFIG_FILE, ScoringConfig, ScoringConfigError, churn_rules
from services.analytics.scoring.features import Features, features_of
from services.analytics.scoring.lifecycle import (
    ACTIVE,
    AT_RISK,
    LAPSED,
    LOST,
    LOYAL,
    NEW,
    PROSPECT,
    lifecycle_stage,
)
from services.analytics.scoring.rfm import Rfm, fallen, quintile, ranked_quintiles
from services.analytics.scoring.risk import risk_score
from services.analytics.scoring.value import (
    GENERAL,
    HIGH_AT_RISK,
    IMPORTANT,
    LOW_VALUE,
    NO_VALUE,
    POTENTIAL,
    STABLE_HIGH,
    STABLE_LOW,
    VIP,
    is_potential,
    matrix_cell,
    tier_sizes,
    tier_thresholds,
    value_tier,
)

CONFIG = ScoringConfig.load()
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def policy(
    number: str, premium: str, start_days_ago: int, years: int = 1, status: str = "active"
) -> dict[str, Any]:
    start = TODAY - timedelta(days=start_days_ago)
    return {
        "policy_number": number,
        "annual_premium": premium,
        "start_date": start.isoformat(),
        "end_date": start.replace(year=start.year + years).isoformat(),
        "status": status,
        "paid_through": None,
    }


def customer(
    *policies: dict[str, Any], history: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    doc = empty_document("c-1")
    doc["registered_at"] = at(2000)
    doc["owning_agent_id"] = "A-1"
    doc["policies"] = list(policies)
    sold = [
        {
            "policy_number": p["policy_number"],
            "status": "active",
            "reason": "sold",
            "at": p["start_date"] + "T09:00:00+00:00",
        }
        for p in policies
    ]
    doc["policy_status_history"] = sorted(sold + (history or []), key=lambda e: e["at"])
    doc.update(fields)
    return doc


def status(number: str, status: str, days_ago: int, reason: str | None = None) -> dict[str, Any]:
    return {"policy_number": number, "status": status, "reason": reason or status, "at": at(days_ago)}


# Features -----------------------------------------------------------------------------------------


def test_premium_is_earned_pro_rata_while_in_force() -> None:
    # Bought 200 days ago, 3650 a year: 200 days earned in the last 12 months, none before.
    f = features_of(customer(policy("P-1", "3650.00", 200)), NOW)
    assert f.premium_12m == Decimal("2000.00") and f.premium_prior_12m == 0
    assert f.policies_in_force == 1 and f.annual_premium_in_force == Decimal("3650.00")
    # Lapsed 100 days ago: earned 100 days, then nothing; reinstated 30 days ago: 30 more.
    lapsed = customer(policy("P-1", "3650.00", 200, status="lapsed"), history=[status("P-1", "lapsed", 100)])
    assert features_of(lapsed, NOW).premium_12m == Decimal("1000.00")
    assert features_of(lapsed, NOW).policies_in_force == 0
    assert features_of(lapsed, NOW).in_force_until == TODAY - timedelta(days=100)
    reinstated = customer(
        policy("P-1", "3650.00", 200),
        history=[status("P-1", "lapsed", 100), status("P-1", "active", 30, "reinstated: paid")],
    )
    assert features_of(reinstated, NOW).premium_12m == Decimal("1300.00")
    # The same document a year later: that premium is last year's.
    later = features_of(customer(policy("P-1", "3650.00", 200, years=2)), NOW + timedelta(days=365))
    assert later.premium_prior_12m == Decimal("2000.00") and later.premium_12m == Decimal("3650.00")


def test_contact_complaints_and_satisfaction_are_counted_up_to_the_moment() -> None:
    doc = customer(
        policy("P-1", "1000.00", 400),
        tickets=[
            {"kind": "complaint", "opened_at": at(10), "breached_at": at(5)},
            {"kind": "complaint", "opened_at": at(200), "breached_at": None},
            {"kind": "inquiry", "opened_at": at(50), "breached_at": None},
        ],
        satisfaction_history=[
            {"at": at(300), "score": 5, "source": "survey"},
            {"at": at(3), "score": 2, "source": "survey"},
            {"at": at(1), "satisfied": True, "source": "call_back"},
        ],
        activities=[{"state": "done", "completed_at": at(40)}, {"state": "planned", "completed_at": None}],
    )
    f = features_of(doc, NOW)
    assert (f.complaints_90d, f.complaints_12m, f.breaches_12m) == (1, 2, 1)
    assert f.last_satisfaction == 2 and f.satisfaction_12m == 3.5
    assert f.days_since_contact == 1  # the call-back
    before = features_of(doc, NOW - timedelta(days=20))
    assert (
        before.complaints_90d == 0 and before.last_satisfaction == 5 and before.days_since_contact == 20 - 0
    )


def test_of_two_answers_at_one_moment_the_later_given_is_the_last() -> None:
    # A clock standing still (a test's) dates both alike: the history's order decides.
    doc = customer(
        policy("P-1", "1000.00", 400),
        satisfaction_history=[
            {"at": at(3), "score": 5, "source": "survey"},
            {"at": at(3), "score": 1, "source": "closing"},
        ],
    )
    assert features_of(doc, NOW).last_satisfaction == 1


# Value tiers -------------------------------------------------------------------------------------


def test_value_tiers_on_a_skewed_book_put_the_top_fifth_in_the_top_tiers() -> None:
    # 1,000 customers (premium in cents), the top fifth bringing 80% of the premium; 200 below the
    # low-value line of 1,000 yuan.
    book = [4_000_000] * 50 + [800_000] * 150 + [125_000] * 600 + [25_000] * 200
    random.Random(7).shuffle(book)
    premiums = sorted(book, reverse=True)
    assert sum(premiums[:200]) / sum(premiums) == 0.8
    lines = tier_thresholds(len(premiums), lambda rank: premiums[rank], CONFIG.value)
    assert lines == (4_000_000, 800_000)
    tiers = sorted(
        (value_tier(p, False, lines, CONFIG.value) for p in book),
        key=[VIP, IMPORTANT, GENERAL, LOW_VALUE].index,
    )
    assert tier_sizes(1000, CONFIG.value) == (50, 200)
    assert tiers == [VIP] * 50 + [IMPORTANT] * 150 + [GENERAL] * 600 + [LOW_VALUE] * 200
    assert tier_sizes(7, CONFIG.value) == (1, 2)  # a small book still has its top customers
    # Ties at a line share the better tier.
    assert value_tier(800_000, False, (800_000, 800_000), CONFIG.value) == VIP


def test_prospects_and_the_dormant_are_potential() -> None:
    prospect = features_of(customer(), NOW)
    assert prospect.is_prospect and is_potential(prospect, TODAY, CONFIG.value)
    assert value_tier(0, True, None, CONFIG.value) == POTENTIAL
    cancelled = customer(
        policy("P-1", "9000.00", 800, years=5, status="cancelled"), history=[status("P-1", "cancelled", 400)]
    )
    dormant = features_of(cancelled, NOW)
    assert dormant.premium_12m == 0 and is_potential(dormant, TODAY, CONFIG.value)
    assert not is_potential(features_of(customer(policy("P-1", "10.00", 30)), NOW), TODAY, CONFIG.value)
    assert matrix_cell(POTENTIAL, True) == NO_VALUE


def test_the_value_churn_matrix() -> None:
    assert [matrix_cell(t, r) for t in (VIP, IMPORTANT, GENERAL, LOW_VALUE) for r in (False, True)] == [
        STABLE_HIGH,
        HIGH_AT_RISK,
        STABLE_HIGH,
        HIGH_AT_RISK,
        STABLE_LOW,
        "low_value_at_risk",
        STABLE_LOW,
        "low_value_at_risk",
    ]


# RFM ---------------------------------------------------------------------------------------------


def test_quintiles_split_a_ranking_in_fifths_and_ties_stay_together() -> None:
    assert [quintile(r, 10) for r in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [quintile(r, 3) for r in range(3)] == [5, 4, 2]
    with pytest.raises(ValueError):
        quintile(10, 10)
    values = [9, 9, 9, 7, 5, 5, 4, 3, 2, 1]
    scored = [q for _, q in ranked_quintiles(((i, v) for i, v in enumerate(values)), len(values))]
    assert scored == [5, 5, 5, 4, 3, 3, 2, 2, 1, 1]


def test_the_watch_list_takes_a_fall_of_two_quintiles_or_more() -> None:
    assert fallen(Rfm(5, 4, 5), Rfm(3, 4, 4), CONFIG.rfm_watch_drop) == ["recency fell from 5 to 3"]
    assert fallen(Rfm(5, 5, 5), Rfm(4, 4, 4), CONFIG.rfm_watch_drop) == []
    assert fallen(None, Rfm(1, 1, 1), CONFIG.rfm_watch_drop) == []
    assert len(fallen(Rfm(5, 5, 5), Rfm(1, 2, 3), CONFIG.rfm_watch_drop)) == 3
    assert Rfm(5, 3, 1).code == "531" and Rfm(5, 3, 1).total == 9


# Churn rules -------------------------------------------------------------------------------------


def insured() -> Features:
    """A customer with a policy in force, meeting no rule."""
    doc = customer(policy("P-1", "2000.00", 100), activities=[{"state": "done", "completed_at": at(5)}])
    f = features_of(doc, NOW)
    assert assess(f, CONFIG.churn).score == 0
    return f


@pytest.mark.parametrize(
    ("rule", "meeting", "missing"),
    [
        ("recent_lapse", {"lapses_12m": 1}, {"lapses_12m": 0}),
        ("recent_cancellation", {"cancellations_12m": 1}, {"cancellations_12m": 0}),
        ("complaints", {"complaints_90d": 1}, {"complaints_90d": 0}),
        ("sla_breaches", {"breaches_12m": 2}, {"breaches_12m": 0}),
        ("low_satisfaction", {"last_satisfaction": 2.0}, {"last_satisfaction": 2.5}),
        (
            "falling_premium",
            {"premium_prior_12m": Decimal("1000"), "premium_12m": Decimal("700")},
            {"premium_prior_12m": Decimal("1000"), "premium_12m": Decimal("701")},
        ),
        ("no_contact", {"days_since_contact": 180}, {"days_since_contact": 179}),
        ("late_payments", {"late_payments": 3}, {"late_payments": 2}),
    ],
)
def test_each_churn_rule_meets_at_its_threshold_and_not_below(
    rule: str, meeting: dict[str, Any], missing: dict[str, Any]
) -> None:
    (chosen,) = [r for r in CONFIG.churn.rules if r.name == rule]
    base = insured()
    assert meets(chosen, replace(base, **meeting))
    assert not meets(chosen, replace(base, **missing))
    assessed = assess(replace(base, **meeting), CONFIG.churn)
    assert [r.rule for r in assessed.reasons] == [rule] and assessed.score == chosen.weight


def test_the_warning_raises_at_its_threshold_and_clears_only_below_the_lower_line() -> None:
    rules = CONFIG.churn
    f = replace(insured(), lapses_12m=1, complaints_90d=1)  # 35 + 20
    assessed = assess(f, rules)
    assert assessed.score == 55 and crossing(False, assessed.score, rules) is True
    assert crossing(True, assessed.score, rules) is None
    assert crossing(True, 35, rules) is None  # between the lines: still at risk
    assert crossing(True, 29, rules) is False
    assert crossing(False, 49, rules) is None
    # Nothing in force, nothing to leave.
    assert assess(replace(f, policies_in_force=0), rules).score == 0


def test_churn_rules_as_data_are_checked_field_by_field() -> None:
    good = json.loads(CONFIG_FILE.read_text())["churn"]["rules"]
    assert len(churn_rules(good)) == len(good)
    with pytest.raises(ScoringConfigError, match=r"churn.rules.0.kind must be one of"):
        churn_rules([{**good[0], "kind": "moon_phase"}])
    with pytest.raises(ScoringConfigError, match=r"churn.rules.0.weight must be 1 or more"):
        churn_rules([{**good[0], "weight": 0}])
    with pytest.raises(ScoringConfigError, match=r"churn.rules.1.name 'recent_lapse' is used twice"):
        churn_rules([good[0], good[0]])
    with pytest.raises(ScoringConfigError, match=r"churn.rules.0.share must lie between 0 and 1"):
        churn_rules([{"name": "x", "kind": "premium_fell_by", "share": 3, "weight": 5, "reason": "r"}])
    with pytest.raises(ScoringConfigError, match=r"must be a non-empty list"):
        churn_rules([])
    data = json.loads(CONFIG_FILE.read_text())
    data["value_tiers"]["vip_share"] = 0.5
    with pytest.raises(ScoringConfigError, match="vip_share must be below"):
        ScoringConfig.from_data(data)


# Risk --------------------------------------------------------------------------------------------


def test_the_risk_score_adds_claims_losses_lapses_and_late_payments_with_reasons() -> None:
    clean = insured()
    assert risk_score(clean, CONFIG.risk).score == 0 and risk_score(clean, CONFIG.risk).reasons == ()
    claims = replace(
        clean,
        claims_36m=3,
        policy_years_36m=2.0,
        claims_paid_36m=Decimal("5000"),
        premium_36m=Decimal("4000"),
    )
    scored = risk_score(claims, CONFIG.risk)
    # 1.5 claims a policy-year (full 30 from 0.5), loss ratio 1.25 (full 35 from 0.7).
    assert scored.score == 65 and len(scored.reasons) == 2
    lapses = risk_score(replace(clean, lapses_ever=1, late_payments=2), CONFIG.risk)
    assert lapses.score == 10 + 6
    assert risk_score(replace(clean, lapses_ever=9, late_payments=99), CONFIG.risk).score == 20 + 15
    worst = replace(claims, lapses_ever=9, late_payments=99)
    assert risk_score(worst, CONFIG.risk).score == 100


# Lifecycle ---------------------------------------------------------------------------------------


def test_lifecycle_from_prospect_to_lost() -> None:
    rules = CONFIG.lifecycle
    assert lifecycle_stage(features_of(customer(), NOW), TODAY, False, rules) == PROSPECT
    fresh = features_of(customer(policy("P-1", "1000.00", 30)), NOW)
    assert lifecycle_stage(fresh, TODAY, False, rules) == NEW
    settled = features_of(customer(policy("P-1", "1000.00", 200)), NOW)
    assert lifecycle_stage(settled, TODAY, False, rules) == ACTIVE
    assert lifecycle_stage(settled, TODAY, True, rules) == AT_RISK
    renewed = customer(
        policy("P-1", "1000.00", 1200, years=5), history=[status("P-1", "active", 900, "renewed to 2031")]
    )
    assert lifecycle_stage(features_of(renewed, NOW), TODAY, False, rules) == LOYAL
    lapsed = customer(
        policy("P-1", "1000.00", 500, years=5, status="lapsed"), history=[status("P-1", "lapsed", 100)]
    )
    assert lifecycle_stage(features_of(lapsed, NOW), TODAY, False, rules) == LAPSED
    later = NOW + timedelta(days=300)
    assert lifecycle_stage(features_of(lapsed, later), later.date(), False, rules) == LOST
    ended = customer(policy("P-1", "1000.00", 800, years=1))  # ran out 435 days ago
    assert features_of(ended, NOW).policies_in_force == 0
    assert lifecycle_stage(features_of(ended, NOW), TODAY, False, rules) == LOST
    assert date.fromisoformat(day(0)) == TODAY


# Bands from thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_bands_from_thresholds_equal_ranking_the_whole_book(seed: int) -> None:
    from services.analytics.scoring.bands import quintile_of, quintile_thresholds

    rng = random.Random(seed)
    values = sorted(
        (rng.choice([rng.randint(0, 20), rng.random()]) for _ in range(rng.randint(1, 300))), reverse=True
    )
    ranked = [q for _, q in ranked_quintiles(((i, v) for i, v in enumerate(values)), len(values))]
    thresholds = quintile_thresholds(len(values), lambda rank: values[rank])
    assert [quintile_of(v, thresholds) for v in values] == ranked


@pytest.mark.parametrize("seed", range(30))
def test_two_passes_find_the_value_at_each_rank_as_sorting_does(seed: int) -> None:
    from services.analytics.scoring.bands import RankSelection

    rng = random.Random(seed)
    spread = rng.choice([3, 1_000, 10**9])
    values = [rng.randint(-spread, spread) for _ in range(rng.randint(0, 2_000))]
    values += [739_000 + rng.randint(0, 400) for _ in range(rng.randint(0, 500))]  # day ordinals
    rng.shuffle(values)
    ranks = [rng.randint(-2, len(values) + 2) for _ in range(8)]
    selection = RankSelection()
    for v in values:
        selection.count(v)
    selection.choose(ranks)
    for v in values:
        selection.refine(v)
    ordered = sorted(values, reverse=True)
    assert [selection.value_at(r) for r in ranks] == [
        ordered[r] if 0 <= r < len(values) else None for r in ranks
    ]
    # Only the buckets the ranks fall in are counted exactly.
    assert len(selection.exact) <= len(ranks)


def test_the_contract_names_the_segments_the_scores_use() -> None:
    from contracts.fields import SEGMENTS
    from services.analytics.scoring.definitions import DEFINED
    from services.analytics.scoring.lifecycle import LIFECYCLE_STAGES
    from services.analytics.scoring.recompute import SCHEMES
    from services.analytics.scoring.value import MATRIX_CELLS, VALUE_TIERS

    assert set(SEGMENTS) == {*SCHEMES, DEFINED}
    assert SEGMENTS["value_tier"] == VALUE_TIERS
    assert SEGMENTS["lifecycle"] == LIFECYCLE_STAGES
    assert SEGMENTS["value_churn"] == MATRIX_CELLS
    assert Rfm(5, 5, 5).code in SEGMENTS["rfm"] and len(SEGMENTS["rfm"]) == 125


def test_the_recompute_falls_due_once_a_day_at_its_local_time() -> None:
    from datetime import time
    from zoneinfo import ZoneInfo

    from services.analytics.scoring.schedule import is_due, next_due

    zone, at_two = ZoneInfo("Asia/Shanghai"), time(2, 0)
    assert next_due(None, at_two, zone) is None and is_due(None, NOW, at_two, zone)
    # Last run 01:00 Shanghai on 1 December: due at 02:00 the same day; after that, the next.
    last = datetime(2026, 12, 1, 1, 0, tzinfo=zone)
    assert next_due(last, at_two, zone) == datetime(2026, 12, 1, 2, 0, tzinfo=zone)
    ran = datetime(2026, 12, 1, 2, 0, 5, tzinfo=zone)
    assert next_due(ran, at_two, zone) == datetime(2026, 12, 2, 2, 0, tzinfo=zone)
    assert not is_due(ran, ran + timedelta(hours=23), at_two, zone)
    assert is_due(ran, ran + timedelta(hours=24), at_two, zone)
    assert ScoringConfig.load().recompute_at == at_two


# Backtest ----------------------------------------------------------------------------------------


def _history(customer_id: str, late_payments: list[int], lapse_day: int | None) -> list[dict[str, Any]]:
    """Registered on 4 January 2026 with one policy; premium paid monthly (late on the months
    listed); lapsed on day ``lapse_day`` of the year if given."""
    from tests.unit.test_read_models import REGISTERED, envelope

    start = datetime(2026, 1, 4, 9, 0, tzinfo=UTC)
    policy_id = f"{customer_id}-policy"
    number = f"POL-{customer_id[:8]}"

    def on(kind: str, version: int, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
        return envelope(kind, version, {"customer_id": customer_id, **payload}, at, policy_id)

    messages = [
        envelope("customer.registered", 1, {**REGISTERED, "customer_id": customer_id}, start, customer_id)
    ]
    sold = {
        "policy_number": number,
        "product": "life",
        "annual_premium": "1200.00",
        "start_date": "2026-01-04",
        "end_date": "2031-01-04",
        "agent_id": "A-1",
    }
    messages.append(on("sales.policy_sold", 1, sold, start))
    version = 1
    for month in range(2, 12):
        paid = datetime(2026, month, 5, 9, 0, tzinfo=UTC)
        if lapse_day is not None and paid >= start + timedelta(days=lapse_day):
            break
        version += 1
        late = 10 if month in late_payments else 0
        messages.append(
            on(
                "sales.premium_paid",
                version,
                {
                    "policy_number": number,
                    "payment_id": f"pay-{month}",
                    "amount": "100.00",
                    "due_date": f"2026-{month:02d}-01",
                    "paid_on": paid.date().isoformat(),
                    "days_late": late,
                },
                paid,
            )
        )
    if lapse_day is not None:
        lapsed = start + timedelta(days=lapse_day)
        messages.append(
            on(
                "sales.policy_lapsed",
                version + 1,
                {
                    "policy_number": number,
                    "missed_due_date": lapsed.date().isoformat(),
                    "lapsed_on": lapsed.date().isoformat(),
                },
                lapsed,
            )
        )
    return messages


def test_a_backtest_counts_warnings_departures_precision_recall_and_lead_time() -> None:
    from services.analytics.scoring.backtest import Tally, replay_customer
    from services.analytics.scoring.config import ChurnRules

    rules = ChurnRules(
        raise_at=50,
        clear_below=30,
        rules=tuple(
            churn_rules(
                [
                    {
                        "name": "late",
                        "kind": "late_payments",
                        "at_least": 2,
                        "weight": 60,
                        "reason": "late twice",
                    }
                ]
            )
        ),
    )
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
    ids = [str(uuid.UUID(int=i)) for i in range(1, 5)]
    histories = {
        ids[0]: _history(ids[0], late_payments=[3, 4], lapse_day=200),  # warned on 5 April, lapsed 23 July
        ids[1]: _history(ids[1], late_payments=[], lapse_day=250),  # left without a warning
        ids[2]: _history(ids[2], late_payments=[5, 6], lapse_day=None),  # warned, stayed
        ids[3]: _history(ids[3], late_payments=[], lapse_day=None),  # nothing
    }
    replays = {c: replay_customer(c, h, rules, start, end) for c, h in histories.items()}
    assert [w.at.date().isoformat() for w in replays[ids[0]].warnings] == ["2026-04-05"]
    assert replays[ids[0]].departed_at == datetime(2026, 1, 4, 9, 0, tzinfo=UTC) + timedelta(days=200)
    assert replays[ids[1]].warnings == [] and replays[ids[1]].departed_at is not None
    assert [w.rules for w in replays[ids[2]].warnings] == [("late",)] and replays[ids[2]].departed_at is None
    tally = Tally(start, end, timedelta(days=180))
    for replay in replays.values():
        tally.add(replay)
    report = tally.report()
    # Brute force: two warnings, one followed by its customer's lapse; two departures, one warned.
    lead = (replays[ids[0]].departed_at - replays[ids[0]].warnings[0].at).total_seconds() / 86400
    assert (report.warnings, report.warnings_followed_by_departure, report.precision) == (2, 1, 0.5)
    assert (report.departures, report.departures_warned, report.departures_missed, report.recall) == (
        2,
        1,
        1,
        0.5,
    )
    assert report.lead_days_median == round(lead, 1) == 109.0
    assert report.rules_in_warnings == {"late": 2}
    # From 1 May the rules hold at the first look: the warning is raised then, 83 days ahead.
    may = datetime(2026, 5, 1, tzinfo=UTC)
    replay = replay_customer(ids[0], histories[ids[0]], rules, may, end)
    assert [w.at for w in replay.warnings] == [may]
    later = Tally(may, end, timedelta(days=180))
    later.add(replay)
    assert later.report().departures_warned == 1 and later.report().lead_days_median == 83.4
