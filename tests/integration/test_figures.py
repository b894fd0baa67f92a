"""Business facts and the month's figures on a real MongoDB wire server: facts count once however
often their events come, take their agent and dimensions from the events they refer to, and add up
to the agent's and the team's performance, the funnel and the complaint statistics; a brute-force
count over the same events agrees."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import PermissionDenied
from services.analytics.facts import FACTS_PROJECTION, ReferenceMissing
from services.analytics.performance import BusinessFigures
from services.analytics.projections import ProjectionWriter
from services.analytics.scoring.queries import SegmentQueries
from tests.integration.test_segments import Teams

OPERATOR = Caller("op", Role.OPERATOR)


def event(event_type: str, at: str, **payload: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "occurred_at": at, "payload": payload}


def history() -> list[dict[str, Any]]:
    """November 2026 of team T-1 (A-0, A-1): activities, opportunities, sales, complaints."""
    rng = random.Random(5)
    events = []
    for i in range(60):
        agent = f"A-{i % 2}"
        at = f"2026-11-{1 + i % 28:02d}T03:00:00+00:00"
        customer = str(uuid.UUID(int=i + 1))
        activity = str(uuid.uuid4())
        events.append(
            event(
                "sales.activity_planned",
                at,
                activity_id=activity,
                customer_id=customer,
                agent_id=agent,
                planned_start=at,
            )
        )
        if i % 3:
            events.append(
                event(
                    "sales.activity_completed",
                    at,
                    activity_id=activity,
                    customer_id=customer,
                    agent_id=agent,
                    completed_at=at,
                )
            )
        opportunity = str(uuid.uuid4())
        events.append(
            event(
                "sales.opportunity_opened",
                at,
                opportunity_id=opportunity,
                customer_id=customer,
                agent_id=agent,
                product="life",
                source="referral",
                stage="lead",
                expected_annual_premium="1000.00",
            )
        )
        if i % 4 == 0:
            outcome = rng.choice(["won", "lost"])
            events.append(
                event(
                    "sales.opportunity_moved",
                    at,
                    opportunity_id=opportunity,
                    customer_id=customer,
                    agent_id=agent,
                    from_stage="lead",
                    to_stage=outcome,
                    lost_reason="price" if outcome == "lost" else None,
                )
            )
        if i % 5 == 0:
            number = f"POL-{i}"
            events.append(
                event(
                    "sales.policy_sold",
                    at,
                    policy_number=number,
                    customer_id=customer,
                    agent_id=agent,
                    product="life",
                    annual_premium="1200.00",
                )
            )
            events.append(
                event(
                    "sales.policy_renewed",
                    "2026-11-29T03:00:00+00:00",
                    policy_number=number,
                    customer_id=customer,
                    annual_premium="1300.00",
                )
            )
        if i % 6 == 0:
            ticket = str(uuid.uuid4())
            kind = "complaint" if i % 12 == 0 else "inquiry"
            events.append(
                event(
                    "service_desk.ticket_opened",
                    at,
                    ticket_id=ticket,
                    customer_id=customer,
                    owning_agent_id=agent,
                    kind=kind,
                    category="claims.delay",
                    channel=rng.choice(["phone", "email"]),
                    priority="ordinary",
                )
            )
            events.append(
                event(
                    "service_desk.ticket_closed",
                    "2026-11-30T03:00:00+00:00",
                    ticket_id=ticket,
                    customer_id=customer,
                    closed_within_sla=i % 24 == 0,
                    reason="resolved",
                    satisfaction=4,
                )
            )
            events.append(
                event(
                    "service_desk.survey_answered",
                    "2026-11-30T04:00:00+00:00",
                    ticket_id=ticket,
                    customer_id=customer,
                    average_score=float(3 + i % 3),
                )
            )
    return events


def test_facts_count_once_and_add_up_to_the_months_figures(database: Any) -> None:
    events = history()
    writer = ProjectionWriter(database, FACTS_PROJECTION)
    # Delivered in batches, every batch twice; each sale before its renewal, as a store orders them.
    for start in range(0, len(events), 17):
        batch = events[start : start + 17]
        assert writer(batch) == [None] * len(batch)
        assert writer(batch) == [None] * len(batch)
    queries = SegmentQueries(database)
    figures = BusinessFigures(database, queries)
    teams = Teams()
    meta = CommandMeta.new(OPERATOR)

    agent = figures.get_agent_performance({"agent_id": "A-0", "month": "2026-11"}, meta, teams)
    mine = [e for e in events if e["payload"].get("agent_id", e["payload"].get("owning_agent_id")) == "A-0"]
    planned = sum(e["event_type"] == "sales.activity_planned" for e in mine)
    done = sum(e["event_type"] == "sales.activity_completed" for e in mine)
    assert agent["activities"]["planned"] == planned and agent["activities"]["done"] == done
    won = sum(
        e["event_type"] == "sales.opportunity_moved" and e["payload"]["to_stage"] == "won" for e in mine
    )
    lost = sum(
        e["event_type"] == "sales.opportunity_moved" and e["payload"]["to_stage"] == "lost" for e in mine
    )
    assert (agent["opportunities"]["won"], agent["opportunities"]["lost"]) == (won, lost)
    sold = sum(e["event_type"] == "sales.policy_sold" for e in mine)
    assert agent["premium"] == {
        "sold": f"{1200 * sold}.00",
        "retained": f"{1300 * sold}.00",
    }  # renewals take the sale's agent
    complaints = sum(
        e["event_type"] == "service_desk.ticket_opened" and e["payload"]["kind"] == "complaint" for e in mine
    )
    assert agent["customers"]["complaints"] == complaints

    team = figures.get_team_performance({"team_id": "T-1", "month": "2026-11"}, meta, teams)
    assert team["activities"]["planned"] == sum(e["event_type"] == "sales.activity_planned" for e in events)
    assert {a["agent_id"] for a in team["agents"]} >= {"A-0", "A-1"}
    assert sum(a["activities"]["done"] for a in team["agents"]) == team["activities"]["done"]

    funnel = figures.get_funnel({"team_id": "T-1", "agent_id": None, "month": "2026-11"}, meta, teams)
    assert funnel["opened"] == 60 and funnel["reached"]["lead"] == 60
    assert funnel["won"] + funnel["lost"] == sum(e["event_type"] == "sales.opportunity_moved" for e in events)
    assert funnel["forecast"] == []  # no 360 documents here

    stats = figures.get_complaint_statistics(
        {"agent_id": None, "team_id": None, "month": "2026-11"}, meta, teams
    )
    opened = [
        e
        for e in events
        if e["event_type"] == "service_desk.ticket_opened" and e["payload"]["kind"] == "complaint"
    ]
    assert stats["complaints"]["count"] == len(opened) and stats["complaints"]["last_month"] == 0
    assert sum(c["count"] for c in stats["by_channel"]) == len(opened)
    assert stats["closed"]["count"] == len(opened)
    within = sum(
        1
        for e in opened
        if any(
            c["event_type"] == "service_desk.ticket_closed"
            and c["payload"]["ticket_id"] == e["payload"]["ticket_id"]
            and c["payload"]["closed_within_sla"]
            for c in events
        )
    )
    assert stats["sla_compliance"]["count"] == round(within / len(opened), 4)

    # An agent sees their own month only.
    with pytest.raises(PermissionDenied):
        figures.get_agent_performance(
            {"agent_id": "A-1", "month": "2026-11"}, CommandMeta.new(Caller("u", Role.AGENT, "A-0")), teams
        )


def test_a_fact_before_its_reference_is_retried_and_waits_for_the_replay_in_a_rebuild(database: Any) -> None:
    renewal = event(
        "sales.policy_renewed",
        "2026-11-29T03:00:00+00:00",
        policy_number="POL-X",
        customer_id=str(uuid.uuid4()),
        annual_premium="10.00",
    )
    writer = ProjectionWriter(database, FACTS_PROJECTION)
    [outcome] = writer([renewal])
    assert isinstance(outcome, ReferenceMissing) and "came before its premium_sold" in str(outcome)
    assert FACTS_PROJECTION.apply(database["rebuilding"], [renewal], True) == [None]
    assert database["rebuilding"].count_documents({}) == 0


def test_a_backtest_over_the_timeline_equals_replaying_each_history(database: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from services.analytics.scoring.backtest import Tally, backtest, customer_histories, replay_customer
    from services.analytics.scoring.config import ScoringConfig
    from services.analytics.timeline import TIMELINE_PROJECTION
    from tests.unit.test_scoring import _history

    rules = ScoringConfig.load().churn
    histories = {}
    rng = random.Random(3)
    for i in range(1, 41):
        customer_id = str(uuid.UUID(int=i))
        late = sorted(rng.sample(range(2, 11), rng.randint(0, 4)))
        histories[customer_id] = _history(customer_id, late, rng.choice([None, None, 150, 250]))
    timeline = database["customer_timeline"]
    TIMELINE_PROJECTION.ensure_indexes(timeline)
    messages = [m for h in histories.values() for m in h]
    rng.shuffle(messages)
    for start in range(0, len(messages), 50):
        TIMELINE_PROJECTION.apply(timeline, messages[start : start + 50], False)
    start, end, horizon = (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, tzinfo=UTC),
        timedelta(days=180),
    )
    read: list[int] = []
    report = backtest(timeline, rules, start, end, horizon, read.append)
    assert sum(read) == len(messages)
    tally = Tally(start, end, horizon)
    for customer_id in sorted(histories):
        tally.add(replay_customer(customer_id, histories[customer_id], rules, start, end))
    assert report == tally.report()
    assert report.customers == 40 and report.departures > 0
    # Small pages split customers' histories across pages; each still comes whole, in order.
    paged = {c: [m["event_id"] for m in h] for c, h in customer_histories(timeline, page=7)}
    assert set(paged) == set(histories)
    assert all(sorted(ids) == sorted(m["event_id"] for m in histories[c]) for c, ids in paged.items())
