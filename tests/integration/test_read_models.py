"""The search and timeline read models on a real SecantusDB: what the database makes of a shuffled,
repeated stream equals the pure functions' answer, and the queries page through it."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

from services.analytics.customer_360 import fold
from services.analytics.projections import ProjectionWriter
from services.analytics.search import SEARCH_PROJECTION, find_page, search_document
from services.analytics.timeline import TIMELINE_PROJECTION, history_until, timeline_page
from tests.unit.test_read_models import REGISTERED, T0, envelope


def customer_history(customer_id: str, name: str, owner: str, mobile: str) -> list[dict[str, Any]]:
    def on(kind: str, version: int, payload: dict[str, Any], days: int) -> dict[str, Any]:
        message = envelope(kind, version, payload, T0 + timedelta(days=days), aggregate_id=customer_id)
        message["payload"]["customer_id"] = customer_id
        return message

    return [
        on("customer.registered", 1, {**REGISTERED, "full_name": name, "owning_agent_id": owner}, 0),
        on("customer.profile_updated", 2, {"changes": {"mobile_phone": mobile}}, 1),
        on("customer.consent_recorded", 3, {"channel": "sms", "purpose": "marketing", "in_force": None}, 2),
    ]


def test_search_and_timeline_in_the_database_equal_the_pure_functions(database: Any) -> None:
    customers = {
        str(uuid.UUID(int=i)): customer_history(
            str(uuid.UUID(int=i)), f"Wang {i:03d}", f"A-{i % 3}", f"139{i:08d}"
        )
        for i in range(1, 61)
    }
    stream = [m for history in customers.values() for m in history] * 2
    random.Random(3).shuffle(stream)
    search = ProjectionWriter(database, SEARCH_PROJECTION)
    timeline = ProjectionWriter(database, TIMELINE_PROJECTION)
    for start in range(0, len(stream), 25):
        batch = stream[start : start + 25]
        assert search([m for m in batch if SEARCH_PROJECTION.takes(m)]) == [None] * sum(
            SEARCH_PROJECTION.takes(m) for m in batch
        )
        timeline(batch)
    for customer_id, history in customers.items():
        expected = None
        for m in history:
            expected = search_document(expected, m)
        assert search.collection().find_one({"_id": customer_id}) == expected

    # Paging by name within one agent's book, through the owner index.
    pages, cursor = [], None
    while True:
        page = find_page(search.collection(), {"name": "wang"}, ["A-1"], 7, cursor)
        pages.append([c["full_name"] for c in page["customers"]])
        if not (cursor := page["next_cursor"]):
            break
    names = [n for p in pages for n in p]
    assert names == sorted(f"Wang {i:03d}" for i in range(1, 61) if i % 3 == 1)
    assert all(len(p) == 7 for p in pages[:-1])
    # A manager's two agents: two index walks merged by name; merged duplicates are left out
    # and the pages stay full.
    merged = {str(uuid.UUID(int=i)) for i in range(2, 40, 5)}
    search.collection().update_many({"_id": {"$in": sorted(merged)}}, {"$set": {"merged_into": "x"}})
    names, cursor = [], None
    while True:
        page = find_page(search.collection(), {"name": "WANG 0"}, ["A-1", "A-2"], 4, cursor)
        assert len(page["customers"]) == 4 or page["next_cursor"] is None
        names += [c["full_name"] for c in page["customers"]]
        if not (cursor := page["next_cursor"]):
            break
    assert names == [
        f"Wang {i:03d}" for i in range(1, 61) if i % 3 in (1, 2) and str(uuid.UUID(int=i)) not in merged
    ]
    search.collection().update_many({}, {"$unset": {"merged_into": ""}})
    one = find_page(search.collection(), {"mobile_phone": "+86 13900000042"}, None, 5, None)
    assert [c["customer_id"] for c in one["customers"]] == [str(uuid.UUID(int=42))]
    assert (
        find_page(search.collection(), {"mobile_phone": "13900000042"}, ["A-1"], 5, None)["customers"] == []
    )

    # The timeline pages newest first with nothing twice; the history up to a moment folds into
    # the 360 document of that moment.
    customer_id, history = next(iter(customers.items()))
    first = timeline_page(timeline.collection(), [customer_id], 2, None)
    second = timeline_page(timeline.collection(), [customer_id], 2, first["next_cursor"])
    seen = [e["event_type"] for e in first["entries"] + second["entries"]]
    assert seen == ["customer.consent_recorded", "customer.profile_updated", "customer.registered"]
    assert second["next_cursor"] is None
    moment = (T0 + timedelta(days=1, hours=1)).isoformat()
    assert fold(history_until(timeline.collection(), customer_id, moment)) == fold(iter(history[:2]))


def test_a_page_naming_no_customer_changes_no_customer_read_model(database: Any) -> None:
    """A rebuild's page may hold only activities with no customer (an agent's own time): no
    customer's document changes; the agent's month counts the activity; the audit records it,
    of no customer."""
    from services.analytics.audit import AUDIT
    from services.analytics.facts import BUSINESS_FACTS
    from services.analytics.read_models import PROJECTIONS

    activity = str(uuid.uuid4())
    payload = {"activity_id": activity, "agent_id": "A-1", "planned_start": T0.isoformat()}
    planned = envelope("sales.activity_planned", 1, payload, T0, aggregate_id=activity)
    planned["payload"]["customer_id"] = None
    for projection in PROJECTIONS.values():
        taken = [m for m in [planned] if projection.takes(m)]
        collection = database[projection.name]
        assert projection.apply(collection, taken, False) == [None] * len(taken)
        if projection.name == AUDIT:
            assert [(d["event_type"], d["customer_id"]) for d in collection.find({})] == [
                ("sales.activity_planned", None)
            ]
            continue
        facts = [d["kind"] for d in collection.find({})]
        assert facts == (["activity_planned"] if projection.name == BUSINESS_FACTS else [])
