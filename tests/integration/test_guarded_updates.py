"""The database applies an event's guarded update exactly as ``project`` applies its change in
Python, whatever order and however often the events arrive: redelivered, ahead of their
predecessors, several of one customer in one batch."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics.customer_360 import VersionGap
from services.analytics.store import WRITE_ID, apply_together
from tests.unit.test_customer_360 import fold, history


def renamed(copy: int) -> tuple[str, list[dict[str, Any]]]:
    """``history()`` under new customer and aggregate ids: its ids derive from the national id."""
    customer_id, messages = history()
    ids = {customer_id, *(m["aggregate_id"] for m in messages)}
    text = json.dumps(messages)
    for old in ids:
        text = text.replace(old, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{copy}/{old}")))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{copy}/{customer_id}")), json.loads(text)


HISTORIES = [renamed(copy) for copy in range(3)]
MESSAGES = [m for _, messages in HISTORIES for m in messages]


deliveries = st.lists(st.integers(0, len(MESSAGES) - 1), max_size=3 * len(MESSAGES)).flatmap(
    # Every message at least once (in the order drawn), then the random ones again, in batches.
    lambda extra: st.tuples(
        st.permutations(list(range(len(MESSAGES))) + extra),
        st.lists(st.integers(1, 6), min_size=len(MESSAGES) * 4, max_size=len(MESSAGES) * 4),
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delivery=deliveries)
def test_any_delivery_order_ends_in_the_folded_history(database: Any, delivery: Any) -> None:
    order, sizes = delivery
    collection = database[f"c360_{uuid.uuid4().hex[:8]}"]
    pending = [MESSAGES[i] for i in order]
    sizes = iter(sizes)
    rounds = 0
    while pending:
        rounds += 1
        assert rounds < 200, "the deliveries never converge"
        size = next(sizes, 6)
        batch, pending = pending[:size], pending[size:]
        outcomes = apply_together(collection, batch)
        for message, outcome in zip(batch, outcomes, strict=True):
            if outcome is not None:  # the projector retries it later, as a broker redelivers
                assert isinstance(outcome, VersionGap), outcome
                pending.append(message)
    for customer_id, messages in HISTORIES:
        stored = collection.find_one({"_id": customer_id})
        assert stored is not None and stored.pop(WRITE_ID)
        assert stored == fold(messages)
    collection.drop()


def test_a_version_ahead_of_its_predecessor_is_a_gap_and_changes_nothing(database: Any) -> None:
    collection = database[f"c360_{uuid.uuid4().hex[:8]}"]
    _, messages = HISTORIES[0]
    closed = messages[-1]
    assert closed["event_type"] == "service_desk.complaint_closed"
    [outcome] = apply_together(collection, [closed])
    assert isinstance(outcome, VersionGap)
    assert collection.count_documents({}) == 0


def test_a_complaint_closed_beside_another_opened_in_one_batch_is_applied(database: Any) -> None:
    from datetime import UTC, datetime

    from crm_shared.auth import Caller, Role
    from crm_shared.domain import CommandMeta
    from crm_shared.eventstore import build_envelope
    from services.service_desk.domain import Complaint

    customer_id, messages = HISTORIES[1]
    registered = messages[0]
    meta = CommandMeta.new(Caller("op", Role.OPERATOR))
    first, second = (
        Complaint.open(
            customer_id=customer_id,
            channel="web",
            category="billing",
            priority="ordinary",
            description=f"complaint {n}",
            opened_at=datetime(2026, 11, n, tzinfo=UTC),
            meta=CommandMeta.new(Caller("op", Role.OPERATOR)),
        )
        for n in (1, 2)
    )
    first.close(resolution="ok", satisfaction=4, closed_at=datetime(2026, 11, 3, tzinfo=UTC), meta=meta)
    opened_1, closed_1 = (m for e in first.collect_events() if (m := build_envelope("service_desk", 1, e)))
    [opened_2] = [m for e in second.collect_events() if (m := build_envelope("service_desk", 2, e))]
    collection = database[f"c360_{uuid.uuid4().hex[:8]}"]
    assert apply_together(collection, [registered, opened_1]) == [None, None]
    # Closing one ($set complaints.$...) and opening another ($push complaints) cannot be one update.
    assert apply_together(collection, [closed_1, opened_2]) == [None, None]
    stored = collection.find_one({"_id": customer_id})
    assert stored is not None and stored.pop(WRITE_ID)
    assert stored == fold([registered, opened_1, closed_1, opened_2])
    assert [c["status"] for c in stored["tickets"]] == ["closed", "open"]
