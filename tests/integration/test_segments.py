"""The segment recompute on a real MongoDB wire server: the tiers, quintiles and counts it writes
equal a brute-force ranking of the same book in Python; a second run changes nothing; a change of
one customer rewrites only that customer's rows; merged and erased customers leave the tables."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import PermissionDenied
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.features import features_of
from services.analytics.scoring.queries import SegmentQueries
from services.analytics.scoring.recompute import (
    ALL_OWNERS,
    COUNTS,
    MEMBERS,
    RFM,
    SCORES,
    VALUE_TIER,
    SegmentRecompute,
    month_of,
)
from services.analytics.scoring.rfm import ranked_quintiles, recency_value
from services.analytics.scoring.value import is_potential, tier_sizes
from services.analytics.store import CUSTOMER_360
from tests.unit.test_scoring import NOW, TODAY, customer, policy, status

CONFIG = ScoringConfig.load()


def book(size: int) -> list[dict[str, Any]]:
    """Customers of three agents: most insured (premiums drawn from a skewed spread, some equal),
    some prospects, some lapsed."""
    rng = random.Random(11)
    docs = []
    for i in range(size):
        kind = rng.random()
        if kind < 0.1:
            doc = customer()
        elif kind < 0.2:
            doc = customer(
                policy("P-1", "2000.00", 600, years=5, status="lapsed"),
                history=[status("P-1", "lapsed", rng.randint(10, 500))],
            )
        else:
            premium = rng.choice(
                ["500.00", "1200.00", "1200.00", "3000.00", f"{rng.randint(1, 400) * 100}.00"]
            )
            doc = customer(policy("P-1", premium, rng.randint(20, 700), years=3))
        doc["_id"] = doc["customer_id"] = f"c-{i:04d}"
        doc["owning_agent_id"] = f"A-{i % 3}"
        docs.append(doc)
    return docs


def clock() -> Any:
    return lambda: NOW


def test_the_recompute_equals_ranking_the_book_in_python_and_changes_only_what_changed(database: Any) -> None:
    docs = book(400)
    database[CUSTOMER_360].insert_many(docs)
    phases: list[str] = []
    recompute = SegmentRecompute(database, CONFIG, clock=clock(), page_size=64)
    summary = recompute.run(lambda phase, done, total: phases.append(phase))
    assert summary.customers == 400 and {"facts", "segments", "counts"} <= set(phases)

    # Brute force: every customer's facts, the valued ranked by premium.
    features = {d["_id"]: features_of(d, NOW) for d in docs}
    valued = sorted(
        (f for f in features.values() if not is_potential(f, TODAY, CONFIG.value)),
        key=lambda f: -f.premium_12m,
    )
    vip, top = tier_sizes(len(valued), CONFIG.value)
    vip_line, top_line = valued[vip - 1].premium_12m, valued[top - 1].premium_12m
    expected_tiers = {}
    for customer_id, f in features.items():
        if is_potential(f, TODAY, CONFIG.value):
            expected_tiers[customer_id] = "potential"
        elif f.premium_12m >= vip_line:
            expected_tiers[customer_id] = "vip"
        elif f.premium_12m >= top_line:
            expected_tiers[customer_id] = "important"
        else:
            expected_tiers[customer_id] = (
                "general" if f.premium_12m >= CONFIG.value.low_value_below else "low_value"
            )
    rows = {r["customer_id"]: r for r in database[MEMBERS].find({"scheme": VALUE_TIER})}
    assert {c: r["segment"] for c, r in rows.items()} == expected_tiers
    assert all(rows[c]["owning_agent_id"] == features[c].owning_agent_id for c in rows)

    # RFM recency quintiles, ranked in Python with ties together.
    rated = sorted((f for f in features.values() if not f.is_prospect), key=lambda f: -recency_value(f))
    expected_r = dict(ranked_quintiles(((f.customer_id, recency_value(f)) for f in rated), len(rated)))
    scores = {d["_id"]: d for d in database[SCORES].find({})}
    assert {c: s["rfm"]["recency"] for c, s in scores.items() if s["rfm"]} == expected_r
    assert len(list(database[MEMBERS].find({"scheme": RFM}))) == len(rated)

    # The month's counts: per owner and for the whole book.
    month = month_of(NOW)
    counts = list(database[COUNTS].find({"month": month, "scheme": VALUE_TIER}))
    whole = {r["segment"]: r["count"] for r in counts if r["owner"] == ALL_OWNERS}
    assert whole == dict(Counter(expected_tiers.values()))
    by_owner = Counter()
    for r in counts:
        if r["owner"] != ALL_OWNERS:
            by_owner[r["segment"]] += r["count"]
    assert dict(by_owner) == whole

    # Again, nothing changed: nothing is written to the segment tables.
    assert recompute.run().memberships_changed == 0

    # One customer sells a large policy, another is merged away, a third erased.
    database[CUSTOMER_360].update_one(
        {"_id": "c-0005"}, {"$push": {"policies": policy("P-9", "900000.00", 200)}}
    )
    database[CUSTOMER_360].update_one({"_id": "c-0006"}, {"$set": {"merged_into": "c-0007"}})
    database[CUSTOMER_360].update_one({"_id": "c-0008"}, {"$set": {"erased_at": NOW.isoformat()}})
    again = recompute.run()
    assert again.customers == 398
    assert database[MEMBERS].find_one({"scheme": VALUE_TIER, "customer_id": "c-0005"})["segment"] == "vip"
    assert database[MEMBERS].count_documents({"customer_id": {"$in": ["c-0006", "c-0008"]}}) == 0
    assert database[SCORES].count_documents({"_id": {"$in": ["c-0006", "c-0008"]}}) == 0
    # The big sale moved c-0005's tier, RFM and matrix rows, and may have pushed a few customers
    # below the new lines; nothing like a rewrite of the book.
    assert 0 < again.memberships_changed < 40


def test_a_fall_of_two_quintiles_puts_a_customer_on_the_watch_list_until_they_recover(database: Any) -> None:
    docs = book(100)
    database[CUSTOMER_360].insert_many(docs)
    recompute = SegmentRecompute(database, CONFIG, clock=clock())
    recompute.run()
    top = max(
        (d for d in database[SCORES].find({"rfm": {"$ne": None}})), key=lambda d: d["facts"]["premium_cents"]
    )
    assert top["rfm"]["monetary"] == 5
    # Their policy lapsed almost a year ago (a correction from the core system, say): their
    # premium over 12 months, and so their monetary score, falls to the bottom.
    lapsed = customer(
        policy("P-1", "40000.00", 700, years=5, status="lapsed"), history=[status("P-1", "lapsed", 360)]
    )
    database[CUSTOMER_360].update_one(
        {"_id": top["_id"]},
        {"$set": {"policies": lapsed["policies"], "policy_status_history": lapsed["policy_status_history"]}},
    )
    recompute.run()
    fallen = database[SCORES].find_one({"_id": top["_id"]})
    assert fallen["segments"]["rfm_watch"] == "watch", fallen["rfm"]
    assert any("monetary fell from 5" in reason for reason in fallen["watch"]["reasons"])
    assert database[MEMBERS].find_one({"scheme": "rfm_watch", "customer_id": top["_id"]}) is not None
    # It stays on the list while the scores stay down, and leaves it when they are back.
    recompute.run()
    assert database[SCORES].find_one({"_id": top["_id"]})["segments"]["rfm_watch"] == "watch"
    database[CUSTOMER_360].update_one(
        {"_id": top["_id"]}, {"$push": {"policies": policy("P-2", "40000.00", 300)}}
    )
    recompute.run()
    assert database[SCORES].find_one({"_id": top["_id"]})["segments"]["rfm_watch"] is None
    assert database[MEMBERS].find_one({"scheme": "rfm_watch", "customer_id": top["_id"]}) is None


class Teams:
    """The sales force's answers for two teams: T-1 (A-0, A-1, managed by m1) and T-2 (A-2)."""

    members = {"T-1": ["pool:T-1", "A-0", "A-1"], "T-2": ["pool:T-2", "A-2"]}

    def team_of(self, owner_id: str) -> str | None:
        return next((t for t, owners in self.members.items() if owner_id in owners), None)

    def teams_managed_by(self, user_id: str) -> frozenset[str]:
        return frozenset({"T-1"}) if user_id == "m1" else frozenset()

    def owners_in_team(self, team_id: str) -> list[str]:
        return self.members[team_id]


def test_counts_and_members_keep_to_the_callers_scope(database: Any) -> None:
    database[CUSTOMER_360].insert_many(book(150))
    SegmentRecompute(database, CONFIG, clock=clock()).run()
    queries = SegmentQueries(database, clock())
    teams = Teams()

    def counts(caller: Caller, **scope: Any) -> dict[str, int]:
        data = {"scheme": "lifecycle", "agent_id": None, "team_id": None, "month": None, **scope}
        answer = queries.get_segment_counts(data, CommandMeta.new(caller), teams)
        assert answer["month"] == month_of(NOW)
        return {s["segment"]: s["count"] for s in answer["segments"]}

    operator, agent, manager = (
        Caller("op", Role.OPERATOR),
        Caller("u1", Role.AGENT, "A-1"),
        Caller("m1", Role.MANAGER),
    )
    everyone = counts(operator)
    assert sum(everyone.values()) == 150
    mine = counts(agent)
    assert mine == counts(operator, agent_id="A-1")
    team = counts(manager)
    assert team == counts(operator, team_id="T-1")
    assert {k: mine[k] + counts(operator, agent_id="A-0")[k] for k in mine} == team
    with pytest.raises(PermissionDenied) as refused:
        counts(agent, agent_id="A-2")
    assert refused.value.fields[0].field == "agent_id"
    with pytest.raises(PermissionDenied):
        counts(manager, team_id="T-2")
    with pytest.raises(PermissionDenied):
        counts(Caller("sd", Role.SERVICE_DESK))

    # Members page in customer order, nothing twice, only the agent's own.
    segment = max(mine, key=lambda s: mine[s])
    seen, cursor = [], None
    while True:
        data = {
            "scheme": "lifecycle",
            "segment": segment,
            "agent_id": None,
            "team_id": None,
            "limit": 7,
            "cursor": cursor,
        }
        page = queries.list_segment_members(data, CommandMeta.new(agent), teams)
        seen += page["members"]
        if not (cursor := page["next_cursor"]):
            break
    ids = [m["customer_id"] for m in seen]
    assert ids == sorted(set(ids)) and len(ids) == mine[segment]
    assert {m["owning_agent_id"] for m in seen} == {"A-1"}
    assert all(m["churn_score"] is not None and m["risk_score"] is not None for m in seen)
    shown = queries.scores_of(ids[0])
    assert shown is not None and shown["segments"]["lifecycle"] == segment and shown["computed_at"]


def test_one_process_at_a_time_holds_the_recompute_lease(database: Any) -> None:
    from services.analytics.scoring.schedule import LEASE, Lease

    first, second = Lease(database, "one"), Lease(database, "two")
    assert first.take(NOW) and first.take(NOW)  # taken, then renewed
    assert not second.take(NOW + LEASE / 2)
    assert second.take(NOW + LEASE * 2)  # the first died: its lease ran out
    assert not first.take(NOW + LEASE * 2)
    assert first.last_run() is None
    second.done(NOW + LEASE * 2, NOW)
    assert first.last_run() == NOW and first.take(NOW + LEASE * 2)


def test_the_live_check_raises_a_warning_once_and_clears_it_when_the_customer_recovers(
    database: Any, tmp_path: Any
) -> None:
    from contracts.events import validate_message
    from crm_shared.eventstore import sqlite_env
    from services.analytics.scoring.live import LiveScores
    from services.analytics.watch.application import ChurnWatchApplication

    watch = ChurnWatchApplication(env=sqlite_env(tmp_path / "analytics.sqlite"))
    customer_id = "4b0c7d7e-5a8e-4f43-9a53-0e7b1f3b7a11"
    doc = customer(
        policy("P-1", "2000.00", 400, years=5, status="lapsed"),
        policy("P-2", "3000.00", 300, years=5),
        history=[status("P-1", "lapsed", 10)],
        tickets=[
            {"kind": "complaint", "opened_at": (NOW - timedelta(days=5)).isoformat(), "breached_at": None}
        ],
    )
    doc["_id"] = doc["customer_id"] = customer_id
    collection = database[CUSTOMER_360]
    collection.insert_one(doc)
    check = LiveScores(database, CONFIG, watch, clock())
    lapse = {"event_type": "sales.policy_lapsed", "payload": {"customer_id": customer_id}}
    registration = {"event_type": "customer.registered", "payload": {"customer_id": customer_id}}
    check(collection, [registration], [None])  # not a churn signal: nothing assessed
    assert watch.max_position() == 0
    check(collection, [lapse], [None])
    check(collection, [lapse, lapse], [None, None])  # redelivered: nothing twice
    raised = [m for batch in watch.notifications(0) for n in batch if (m := watch.envelope(n))]
    assert [m["event_type"] for m in raised] == ["analytics.churn_risk_raised"]
    assert validate_message(raised[0]) == {}
    assert raised[0]["payload"]["score"] == 55
    assert {r["rule"] for r in raised[0]["payload"]["reasons"]} == {"recent_lapse", "complaints"}

    # The projector applies the warning; the customer is reinstated and the complaint settles.
    collection.update_one(
        {"_id": customer_id},
        {
            "$set": {
                "churn_warnings": [{"customer_id": customer_id, "state": "raised"}],
                "tickets": [],
                "policy_status_history": [],
                "policies.0.status": "active",
            }
        },
    )
    check(collection, [lapse], [None])
    events = [m for batch in watch.notifications(0) for n in batch if (m := watch.envelope(n))]
    assert [m["event_type"] for m in events] == [
        "analytics.churn_risk_raised",
        "analytics.churn_risk_cleared",
    ]
    assert validate_message(events[1]) == {}

    # Moved to another agent: the customer's segment rows and scores follow the 360's owner at once.
    database[MEMBERS].insert_many(
        [
            {
                "_id": f"{s}|{customer_id}",
                "scheme": s,
                "segment": "x",
                "customer_id": customer_id,
                "owning_agent_id": "A-0",
            }
            for s in (VALUE_TIER, RFM)
        ]
    )
    database[SCORES].insert_one({"_id": customer_id, "owning_agent_id": "A-0"})
    collection.update_one({"_id": customer_id}, {"$set": {"owning_agent_id": "A-9"}})
    moved = {"event_type": "customer.owner_changed", "payload": {"customer_id": customer_id}}
    check(collection, [moved], [None])
    assert {m["owning_agent_id"] for m in database[MEMBERS].find({"customer_id": customer_id})} == {"A-9"}
    assert database[SCORES].find_one({"_id": customer_id})["owning_agent_id"] == "A-9"
    watch.close()


def test_a_segment_defined_after_the_fact_equals_a_brute_force_count_and_stays_current(database: Any) -> None:
    from services.analytics.scoring.config import ScoringConfigError
    from services.analytics.scoring.definitions import DEFINED, DefinedSegments, Definition

    docs = book(300)
    database[CUSTOMER_360].insert_many(docs)
    definition = Definition.from_data(
        {
            "name": "lapsed_big_spenders",
            "description": "premium of 1,000 or more over 12 months, and a policy bought within 400 days",
            "all": [
                {"field": "premium_12m", "op": ">=", "value": 1000},
                {"event": "sales.policy_sold", "within_days": 400, "at_least": 1},
            ],
        }
    )
    defined = DefinedSegments(database)
    defined.save(definition, "test", NOW)
    written = sum(defined.sync(docs[i : i + 50], NOW) for i in range(0, 300, 50))

    def brute(doc: dict[str, Any]) -> bool:
        f = features_of(doc, NOW)
        sold = [p for p in doc["policies"] if (TODAY - date.fromisoformat(p["start_date"])).days <= 400]
        return float(f.premium_12m) >= 1000 and len(sold) >= 1

    expected = {d["_id"] for d in docs if brute(d)}
    rows = {
        r["customer_id"]
        for r in database[MEMBERS].find({"scheme": DEFINED, "segment": "lapsed_big_spenders"})
    }
    assert rows == expected and written == len(expected) and 0 < len(expected) < 300
    assert defined.sync(docs, NOW) == 0  # nothing changed: nothing written

    # The recompute keeps it current, counts it, and the 360 shows it as a tag.
    recompute = SegmentRecompute(database, CONFIG, clock=clock())
    recompute.run()
    counts = {
        r["segment"]: r["count"]
        for r in database[COUNTS].find({"scheme": DEFINED, "owner": ALL_OWNERS, "month": month_of(NOW)})
    }
    assert counts == {"lapsed_big_spenders": len(expected)}
    member = sorted(expected)[0]
    assert SegmentQueries(database).scores_of(member)["tags"] == ["lapsed_big_spenders"]
    database[CUSTOMER_360].update_one({"_id": member}, {"$set": {"policies": []}})
    recompute.run()
    assert database[MEMBERS].find_one({"scheme": DEFINED, "customer_id": member}) is None
    assert defined.drop("lapsed_big_spenders") == len(expected) - 1
    with pytest.raises(ScoringConfigError, match=r"all\.0\.field must be one of"):
        Definition.from_data({"name": "x", "all": [{"field": "shoe_size", "op": ">", "value": 1}]})
    with pytest.raises(ScoringConfigError, match="name must be"):
        Definition.from_data({"name": "Bad Name", "all": [{"city": "Hangzhou"}]})
