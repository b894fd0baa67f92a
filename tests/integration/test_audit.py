"""The audit log on a real SecantusDB: every event once however often it comes, found by who
acted, by customer and by account, newest first and paged; an erased customer's reasons blanked,
also those of entries that arrive after the erasure."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

from services.analytics.audit import AUDIT, AUDIT_PROJECTION, audit_page
from services.analytics.projections import ProjectionWriter
from tests.unit.test_read_models import T0, envelope


def acted(
    user: str, customer: str, version: int, days: int, event_type: str = "customer.profile_updated"
) -> dict:
    message = envelope(
        event_type, version, {"reason": f"asked by {user}"}, T0 + timedelta(days=days), customer
    )
    message["payload"]["customer_id"] = customer
    message["actor"] = {"user_id": user, "role": "operator", "agent_id": None}
    return message


def page(database: Any, **query: Any) -> dict[str, Any]:
    return audit_page(database[AUDIT], {"limit": 5, "cursor": None, **query})


def test_every_event_once_found_by_who_by_customer_and_by_account(database: Any) -> None:
    customers = [str(uuid.UUID(int=i)) for i in range(1, 4)]
    stream = [acted(f"op-{v % 2}", c, v, v) for c in customers for v in range(1, 9)]
    signed_in = envelope("identity.signed_in", 1, {}, T0, aggregate_id=str(uuid.uuid4()))
    signed_in["payload"] = {"user_id": "li.wei", "kind": "person", "session_id": "s"}
    signed_in["context"] = "identity"
    writer = ProjectionWriter(database, AUDIT_PROJECTION)
    shuffled = [*stream, *stream, signed_in]
    random.Random(5).shuffle(shuffled)
    for start in range(0, len(shuffled), 7):
        writer(shuffled[start : start + 7])
    assert database[AUDIT].count_documents({}) == len(stream) + 1

    # One person's actions, newest first, paged without gaps or repeats.
    seen, cursor = [], None
    while True:
        found = page(database, user_id="op-1", cursor=cursor)
        seen += found["entries"]
        if not (cursor := found["next_cursor"]):
            break
    assert len(seen) == 12 and all(e["user_id"] == "op-1" for e in seen)
    assert [e["at"] for e in seen] == sorted((e["at"] for e in seen), reverse=True)
    assert len({e["event_id"] for e in seen}) == 12
    of_customer = page(database, customer_id=customers[0], limit=100)["entries"]
    assert len(of_customer) == 8 and {e["reason"] for e in of_customer} == {"asked by op-0", "asked by op-1"}
    assert [e["event_type"] for e in page(database, account="li.wei")["entries"]] == ["identity.signed_in"]
    window = page(database, since=T0 + timedelta(days=2), until=T0 + timedelta(days=3), limit=100)["entries"]
    assert {e["at"][:10] for e in window} == {(T0 + timedelta(days=d)).date().isoformat() for d in (2, 3)}


def test_an_erased_customers_reasons_are_blanked_also_when_they_come_late(database: Any) -> None:
    customer = str(uuid.uuid4())
    writer = ProjectionWriter(database, AUDIT_PROJECTION)
    writer([acted("op", customer, 1, 1), acted("op", customer, 2, 2)])
    erased = acted("op", customer, 3, 3, "customer.erased")
    writer([erased])
    writer([acted("op", customer, 4, 0)])  # an older event requeued after the erasure
    entries = page(database, customer_id=customer, limit=100)["entries"]
    assert len(entries) == 4 and all(e["reason"] is None for e in entries)
