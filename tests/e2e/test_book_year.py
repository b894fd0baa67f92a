"""A year of a 2,000-customer book on real processes, with a clock the test moves month by month:
the segment tables, the churn warnings and the follow-ups they put in agents' days (once, however
often a warning is delivered), agent and team performance, a segment defined after the fact, and a
backtest of the shipped churn rules, each checked against what the test itself did (a brute-force
count over the history it made).

The book: 200 prospects; 1,800 insured on one day, with distinct premiums skewed as books are (a
few very large). Groups, by what the year brings them (the shipped rules' weights in brackets):

- ``warned_then_left`` (100): three late payments (10), then a complaint closed with satisfaction 1
  (20 + 25) in month 7: warned; they lapse in month 10, and with nothing left in force there is
  nothing to lose: the warning clears.
- ``warned_stayed`` (50): the same, and they stay.
- ``left_unwarned`` (100): their only policy lapses in month 8, with nothing ahead of it: a
  departure nobody was warned of; by the year's end nothing in force and nothing paid for a year:
  dormant, so potential.
- ``complained`` (150): a complaint in month 10, satisfaction 3 (20): never warned.
- ``worked`` (100): their agents call and visit them in month 11.
The ones who leave hold the smallest premiums, so the value tiers are a ranking of the rest."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kombu import Connection

from crm_cli.client import CrmClient
from crm_cli.system import REPO, System
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from crm_shared.messaging import encode, events_exchange
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.value import tier_sizes
from services.sales.reactions import QUEUE as REACTIONS_QUEUE
from tests.e2e.conftest import Stores, ok
from tests.e2e.running import calling, crm, recompute, settle, staffed_system
from tests.support import customer_payload, wait_until

OPERATOR = Caller("op-year", Role.OPERATOR)
T0 = datetime(2025, 11, 10, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai: no month edge near
END = T0 + timedelta(days=372)
TEAMS = {"T-Y1": tuple(f"Y-{i}" for i in range(1, 6)), "T-Y2": tuple(f"Y-{i}" for i in range(6, 11))}
AGENTS = tuple(a for agents in TEAMS.values() for a in agents)
CUSTOMERS = 2_000
GROUPS = {
    "prospect": range(0, 200),
    "warned_then_left": range(200, 300),
    "warned_stayed": range(300, 350),
    "left_unwarned": range(350, 450),
    "complained": range(450, 600),
    "worked": range(600, 700),
}
COMPLAINT = {
    "channel": "phone",
    "category": "billing",
    "priority": "ordinary",
    "description": "charged twice",
}


def month(k: int) -> datetime:
    return T0 + timedelta(days=30 * k)


def group_of(i: int) -> str:
    return next((name for name, members in GROUPS.items() if i in members), "rest")


def premiums() -> dict[int, int]:
    """Distinct annual premiums: the leavers the 200 smallest (under 1,000), the stayers strictly
    falling from about 300,000 to 1,000 in an order that mixes the groups."""
    leavers = [*GROUPS["warned_then_left"], *GROUPS["left_unwarned"]]
    stayers = sorted(
        (i for i in range(CUSTOMERS) if group_of(i) != "prospect" and i not in leavers),
        key=lambda i: (i * 7919) % CUSTOMERS,
    )
    amounts = {i: 100 + n for n, i in enumerate(leavers)}
    amounts |= {i: 1000 + (len(stayers) - r) + 300_000 // (r + 1) for r, i in enumerate(stayers)}
    return amounts


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, FileClock]]:
    """A system of its own (the book is the whole book: tiers rank all of it), its clock at T0."""
    with staffed_system(tmp_path_factory.mktemp("crm-year"), T0, TEAMS) as running:
        yield running


@pytest.fixture(scope="module")
def book(year: tuple[System, FileClock]) -> dict[str, Any]:
    """The year lived: the customers, their policies, and what happened when."""
    system, clock = year
    amount = premiums()
    registered = calling(
        system,
        [
            ("customer", "register_customer", customer_payload(AGENTS[i % len(AGENTS)]))
            for i in range(CUSTOMERS)
        ],
    )
    ids = [r["customer_id"] for r in registered]
    insured = [i for i in range(CUSTOMERS) if group_of(i) != "prospect"]
    day0 = T0.date().isoformat()
    sold = calling(
        system,
        [
            (
                "sales",
                "sell_policy",
                {
                    "customer_id": ids[i],
                    "product": "life",
                    "annual_premium": f"{amount[i]}.00",
                    "start_date": day0,
                    "term_years": 10,
                },
            )
            for i in insured
        ],
    )
    policy = {i: s["policy_number"] for i, s in zip(insured, sold, strict=True)}

    def payment(i: int, n: int, due: datetime, paid: datetime) -> tuple[str, str, dict[str, Any]]:
        return (
            "sales",
            "record_premium_payment",
            {
                "policy_number": policy[i],
                "payment_id": f"PAY-{i}-{n}",
                "amount": f"{amount[i]}.00",
                "due_date": due.date().isoformat(),
                "paid_on": paid.date().isoformat(),
            },
        )

    calling(system, [payment(i, 0, T0, T0) for i in insured])
    settle(system)
    late = [*GROUPS["warned_then_left"], *GROUPS["warned_stayed"]]
    when: dict[str, datetime] = {}
    for k in (1, 2, 3):
        clock.set(month(k))
        calling(system, [payment(i, k, month(k) - timedelta(days=10), month(k)) for i in late])
        settle(system)

    def complaints(members: list[int], satisfaction: int) -> None:
        opened = calling(
            system,
            [("service_desk", "open_complaint", {"customer_id": ids[i], **COMPLAINT}) for i in members],
        )
        calling(
            system,
            [
                (
                    "service_desk",
                    "close_complaint",
                    {"ticket_id": t["ticket_id"], "resolution": "refunded", "satisfaction": satisfaction},
                )
                for t in opened
            ],
        )

    def lapses(members: range) -> None:
        calling(
            system,
            [
                (
                    "sales",
                    "record_policy_lapse",
                    {
                        "policy_number": policy[i],
                        "missed_due_date": (clock() - timedelta(days=31)).date().isoformat(),
                    },
                )
                for i in members
            ],
        )

    clock.set(month(7))
    complaints(late, 1)
    when["warned"] = clock()
    settle(system)
    clock.set(month(8))
    lapses(GROUPS["left_unwarned"])
    when["left_unwarned"] = clock()
    settle(system)
    clock.set(month(10))
    lapses(GROUPS["warned_then_left"])
    when["warned_then_left"] = clock()
    complaints(list(GROUPS["complained"]), 3)
    settle(system)
    clock.set(month(11))
    worked = list(GROUPS["worked"])
    planned = calling(
        system,
        [
            (
                "sales",
                "plan_activity",
                {
                    "agent_id": AGENTS[i % len(AGENTS)],
                    "customer_id": ids[i],
                    "kind": "call",
                    "purpose": "yearly review",
                    "planned_start": (month(11) + timedelta(hours=1)).isoformat(),
                    "planned_end": (month(11) + timedelta(hours=1, minutes=15)).isoformat(),
                },
            )
            for i in worked[:60]
        ],
    )
    calling(
        system,
        [
            ("sales", "complete_activity", {"activity_id": p["activity_id"], "outcome": "interested"})
            for p in planned[:40]
        ],
    )
    settle(system)
    clock.set(END)
    settle(system)
    return {"ids": ids, "amount": amount, "policy": policy, "when": when, "planned": 60, "done": 40}


def members(system: System, scheme: str, segment: str, **scope: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        while True:
            page = ok(
                client.call(
                    "analytics",
                    "list_segment_members",
                    {"scheme": scheme, "segment": segment, "limit": 200, "cursor": cursor, **scope},
                )
            )
            found |= {m["customer_id"] for m in page["members"]}
            if not (cursor := page["next_cursor"]):
                return found


def test_the_year_in_segments_warnings_follow_ups_performance_and_backtest(
    year: tuple[System, FileClock], book: dict[str, Any]
) -> None:
    system, _clock = year
    ids, amount = book["ids"], book["amount"]
    summary = recompute(system)
    assert summary["customers"] == CUSTOMERS

    # Value tiers: the prospects are potential, and so are those who left with nothing in force
    # and nothing paid for a year (dormant); the rest rank by premium over the year.
    dormant = set(GROUPS["left_unwarned"])
    valued = sorted((i for i in amount if i not in dormant), key=lambda i: -amount[i])
    vip, top = tier_sizes(len(valued), ScoringConfig.load().value)
    assert members(system, "value_tier", "vip") == {ids[i] for i in valued[:vip]}
    assert members(system, "value_tier", "important") == {ids[i] for i in valued[vip:top]}
    potential = {ids[i] for i in [*GROUPS["prospect"], *dormant]}
    assert members(system, "value_tier", "potential") == potential
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        counts = ok(client.call("analytics", "get_segment_counts", {"scheme": "value_tier"}))
        by_segment = {s["segment"]: s["count"] for s in counts["segments"]}
        assert sum(by_segment.values()) == CUSTOMERS
        assert (by_segment["vip"], by_segment["important"], by_segment["potential"]) == (
            vip,
            top - vip,
            len(potential),
        )
        team = ok(client.call("analytics", "get_segment_counts", {"scheme": "value_tier", "team_id": "T-Y1"}))
        in_team = {ids[i] for i in range(CUSTOMERS) if AGENTS[i % len(AGENTS)] in TEAMS["T-Y1"]}
        assert sum(s["count"] for s in team["segments"]) == len(in_team) == 1_000

    # The churn warnings: exactly the customers the rules put over the line, each once, and each
    # one call in the owner's day, once, even when the warning is delivered again.
    stores = Stores(system.run_dir / "data")
    raised = stores.events("analytics", "analytics.churn_risk_raised")
    warned = {ids[i] for g in ("warned_then_left", "warned_stayed") for i in GROUPS[g]}
    assert Counter(e["payload"]["customer_id"] for e in raised) == dict.fromkeys(warned, 1)
    assert {e["occurred_at"] for e in raised} == {book["when"]["warned"].isoformat()}
    cleared = stores.events("analytics", "analytics.churn_risk_cleared")
    left = {ids[i] for i in GROUPS["warned_then_left"]}
    assert Counter(e["payload"]["customer_id"] for e in cleared) == dict.fromkeys(left, 1)

    def follow_ups() -> list[dict]:
        return [
            e
            for e in stores.events("sales", "sales.activity_planned")
            if e["payload"].get("source") == "churn_warning"
        ]

    wait_until(lambda: len(follow_ups()) == len(warned), timeout=60, what="a call per warning")
    assert {e["payload"]["customer_id"] for e in follow_ups()} == warned
    assert all(
        e["payload"]["agent_id"] == AGENTS[ids.index(e["payload"]["customer_id"]) % len(AGENTS)]
        for e in follow_ups()
    )
    with Connection(system.amqp_uri) as conn:
        producer = conn.Producer(exchange=events_exchange)
        for event in raised[:20]:
            producer.publish(
                encode(event),
                routing_key=event["event_type"],
                content_type="application/json",
                message_id=event["event_id"],
                correlation_id=event["correlation_id"],
                type=event["event_type"],
            )

        def reacted() -> bool:
            # Sales's reactions have taken every redelivered warning, and nothing more came of them.
            _, waiting, _ = conn.default_channel.queue_declare(queue=REACTIONS_QUEUE, passive=True)
            seen.append((waiting, len(follow_ups())))
            return len(seen) >= 4 and len(set(seen[-4:])) == 1 and seen[-1][0] == 0

        seen: list[tuple[int, int]] = []
        wait_until(reacted, timeout=60, interval=0.5, what="sales to take the redelivered warnings")
    assert len(follow_ups()) == len(warned)

    # Agent and team performance: what each agent sold in the first month, and did in month 11.
    first_month, eleventh = T0.strftime("%Y-%m"), month(11).strftime("%Y-%m")
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        agent = AGENTS[0]
        theirs = [i for i in amount if AGENTS[i % len(AGENTS)] == agent]
        sold = ok(
            client.call("analytics", "get_agent_performance", {"agent_id": agent, "month": first_month})
        )
        assert sold["premium"]["sold"] == f"{sum(amount[i] for i in theirs)}.00"
        assert sold["customers"]["book"] == CUSTOMERS // len(AGENTS)
        team = ok(client.call("analytics", "get_team_performance", {"team_id": "T-Y1", "month": eleventh}))
        worked = [i for i in list(GROUPS["worked"])[:60] if AGENTS[i % len(AGENTS)] in TEAMS["T-Y1"]]
        done = [i for i in list(GROUPS["worked"])[:40] if AGENTS[i % len(AGENTS)] in TEAMS["T-Y1"]]
        assert (team["activities"]["planned"], team["activities"]["done"]) == (len(worked), len(done))
        assert sum(a["activities"]["planned"] for a in team["agents"]) == len(worked)
        complained = ok(
            client.call(
                "analytics", "get_team_performance", {"team_id": "T-Y2", "month": month(10).strftime("%Y-%m")}
            )
        )
        assert complained["customers"]["complaints"] == sum(
            1 for i in GROUPS["complained"] if AGENTS[i % len(AGENTS)] in TEAMS["T-Y2"]
        )

    # A segment defined after the fact equals the brute-force count of the history the test made.
    definition = system.run_dir / "late_and_unhappy.json"
    definition.write_text(
        json.dumps(
            {
                "name": "late_and_unhappy",
                "description": "paid late three times and complained",
                "all": [
                    {"field": "late_payments", "op": ">=", "value": 3},
                    {"event": "service_desk.complaint_opened", "within_days": 365, "at_least": 1},
                ],
            }
        )
    )
    defined = crm(system, "segment", "define", str(definition))
    late = {ids[i] for g in ("warned_then_left", "warned_stayed") for i in GROUPS[g]}
    assert defined["members"] == len(late)
    assert members(system, "defined", "late_and_unhappy") == late

    # The backtest of the shipped rules: warnings, departures, precision, recall and lead time as
    # a count over what the test did says.
    rules = REPO / "services" / "analytics" / "config" / "scoring.json"
    shipped = system.run_dir / "shipped_rules.json"
    shipped.write_text(json.dumps(json.loads(rules.read_text())["churn"]))
    report = crm(
        system,
        "churn",
        "backtest",
        str(shipped),
        "--from",
        T0.date().isoformat(),
        "--to",
        END.date().isoformat(),
    )
    departures = len(GROUPS["warned_then_left"]) + len(GROUPS["left_unwarned"])
    ahead = len(GROUPS["warned_then_left"])
    assert (report["customers"], report["warnings"], report["departures"]) == (
        CUSTOMERS,
        len(warned),
        departures,
    )
    assert report["warnings_followed_by_departure"] == ahead
    assert report["precision"] == round(ahead / len(warned), 4)
    assert (report["departures_warned"], report["departures_missed"]) == (ahead, departures - ahead)
    assert report["recall"] == round(ahead / departures, 4)
    lead = (book["when"]["warned_then_left"] - book["when"]["warned"]).total_seconds() / 86400
    assert report["lead_days_median"] == pytest.approx(lead, abs=1.0)
