"""The read models beside the 360 document, as pure functions: customer search (a register per
field), the timeline (an entry per event), the 360 as of a moment, paging and lag. No I/O."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_shared.errors import ValidationFailed
from services.analytics.customer_360 import CHANGES, fold
from services.analytics.paging import decode_cursor
from services.analytics.projections import lag_of
from services.analytics.read_models import PROJECTIONS, consumer_queues
from services.analytics.search import (
    SEARCH_PROJECTION,
    index_walks,
    matches,
    name_sort,
    normalised_name,
    phone_digits,
    search_document,
)
from services.analytics.timeline import (
    TIMELINE_PROJECTION,
    _blanked,
    _erasures,
    as_of_key,
    entry_of,
    page_of,
    sequence_key,
)

CUSTOMER = str(uuid.uuid4())
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def envelope(
    event_type: str, version: int, payload: dict[str, Any], at: datetime, aggregate_id: str = CUSTOMER
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{aggregate_id}:{version}")),
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "context": event_type.split(".")[0],
        "aggregate_type": "x",
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "global_position": version,
        "correlation_id": "c",
        "causation_id": None,
        "actor": {"user_id": "op", "role": "operator"},
        "payload": {"customer_id": CUSTOMER, **payload},
    }


REGISTERED = {
    "full_name": "Wang Xiaoming",
    "national_id": "11010519491231002X",
    "mobile_phone": "+86 138 0013 8000",
    "email": None,
    "date_of_birth": "1949-12-31",
    "address": None,
    "owning_agent_id": "A-1",
}


def record_history() -> list[dict[str, Any]]:
    return [
        envelope("customer.registered", 1, REGISTERED, T0),
        envelope(
            "customer.profile_updated", 2, {"changes": {"full_name": "Wang Xiaohong"}}, T0 + timedelta(1)
        ),
        envelope(
            "customer.owner_changed",
            3,
            {"previous_agent_id": "A-1", "new_agent_id": "A-2", "reason": "r", "transfer_id": None},
            T0 + timedelta(2),
        ),
        envelope(
            "customer.profile_updated", 4, {"changes": {"mobile_phone": "13900139000"}}, T0 + timedelta(3)
        ),
        envelope(
            "customer.consent_recorded",
            5,
            {"channel": "sms", "purpose": "marketing", "in_force": None},
            T0 + timedelta(4),
        ),
    ]


def search_fold(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    doc = None
    for m in messages:
        doc = search_document(doc, m)
    return doc


def test_search_ends_as_the_latest_versions_say_in_any_order_and_however_often_delivered() -> None:
    history = record_history()
    expected = search_fold(history)
    assert expected is not None
    assert (expected["full_name"], expected["name_key"]) == ("Wang Xiaohong", "wang xiaohong")
    assert (expected["mobile"], expected["owning_agent_id"], expected["id_last4"]) == (
        "13900139000",
        "A-2",
        "002X",
    )
    assert expected["national_id_masked"] == "**************002X"
    for order in itertools.permutations(history):
        assert search_fold(list(order)) == expected
    shuffled = history * 3
    random.Random(7).shuffle(shuffled)
    assert search_fold(shuffled) == expected


def test_search_with_an_event_missing_keeps_what_the_others_say() -> None:
    history = record_history()
    without_rename = [m for m in history if m["aggregate_version"] != 2]
    doc = search_fold(without_rename[::-1])
    assert doc is not None
    assert doc["full_name"] == "Wang Xiaoming" and doc["owning_agent_id"] == "A-2"
    # The gap filled later (a requeued dead letter) still lands: its register is older than nothing.
    assert search_fold([*without_rename, history[1]]) == search_fold(history)


def test_erasure_blanks_what_search_finds_and_older_events_cannot_bring_it_back() -> None:
    history = record_history()
    erased = envelope("customer.erased", 6, {"reason": "r", "request_reference": "x"}, T0 + timedelta(5))
    doc = search_fold([*history, erased, history[0], history[1]])
    assert doc is not None
    assert doc["erased"] is True and doc["full_name"] is None and doc["mobile"] is None
    assert doc["name_key"] == "" and doc["id_last4"] is None
    assert doc["owning_agent_id"] == "A-2"


def test_names_and_phones_are_normalised() -> None:
    assert normalised_name("  \uff37\uff21\uff2e\uff27   Xiao\u3000Ming ") == "wang xiao ming"
    assert phone_digits("+86 138-0013-8000") == phone_digits("13800138000") == "13800138000"


def test_the_search_reads_one_index_range_per_owner_and_checks_every_criterion() -> None:
    assert index_walks({"name": "Wang"}, ["A-1"], None) == [
        {"owning_agent_id": "A-1", "name_sort": {"$gte": "wang", "$lt": "wang\U0010ffff"}}
    ]
    # Asking for another agent's customers within a scope that lacks them reads nothing.
    assert index_walks({"owning_agent_id": "A-9"}, ["A-1", "A-2"], None) == []
    assert index_walks({"owning_agent_id": "A-2"}, ["A-1", "A-2"], None) == [
        {"owning_agent_id": "A-2", "name_sort": {"$gte": ""}}
    ]
    # The narrowest criterion is the one walked; past a cursor, the range starts after it.
    assert index_walks({"mobile_phone": "+86 13800138000", "name": "Li"}, None, "li a\x00c-1") == [
        {"mobile": "13800138000", "name_sort": {"$gt": "li a\x00c-1", "$lt": "li\U0010ffff"}}
    ]
    doc = {"name_key": "wang li", "mobile": "13800138000", "id_last4": "002X", "owning_agent_id": "A-1"}
    assert matches(doc, {"name": "WANG", "national_id_last4": "002x"}, ["A-1"])
    assert not matches(doc, {"name": "wang"}, ["A-2"])
    assert not matches(doc, {"mobile_phone": "13900139000"}, None)
    assert not matches({**doc, "merged_into": "c-2"}, {"name": "wang"}, None)


def test_the_name_order_is_one_string_name_then_id() -> None:
    assert name_sort("wang li", "c-9") < name_sort("wang li", "d-1") < name_sort("wang lia", "a-1")
    assert normalised_name("wang\x00li") == "wang li"


def ticket_opened(version: int, at: datetime, ticket: str = "T-1") -> dict[str, Any]:
    return envelope(
        "service_desk.ticket_opened",
        version,
        {
            "ticket_id": ticket,
            "kind": "complaint",
            "channel": "phone",
            "category": "billing",
            "priority": "high",
            "queue_id": "complaints",
            "description": "the customer said something private",
            "subject": "charged twice",
        },
        at,
        aggregate_id=ticket,
    )


def test_a_timeline_entry_shows_identifiers_and_states_never_free_text() -> None:
    entry = entry_of(ticket_opened(1, T0))
    assert entry["details"] == {
        "ticket_id": "T-1",
        "kind": "complaint",
        "category": "billing",
        "priority": "high",
        "channel": "phone",
        "queue_id": "complaints",
    }
    assert entry["_id"] == ticket_opened(1, T0)["event_id"]  # a redelivery is the same entry


def test_one_aggregates_events_at_one_moment_keep_their_version_order() -> None:
    same_moment = [ticket_opened(v, T0) for v in (10, 9, 2, 1)]
    assert [m["aggregate_version"] for m in sorted(same_moment, key=sequence_key)] == [1, 2, 9, 10]


def test_erasure_blanks_the_personal_fields_of_the_customers_entries() -> None:
    erased = envelope("customer.erased", 6, {"reason": "r", "request_reference": "x"}, T0)
    blanked = {w._filter["event_type"]: set(w._doc["$set"]) for w in _erasures(erased)}
    assert blanked["customer.registered"] >= {"envelope.payload.full_name", "envelope.payload.national_id"}
    assert blanked["customer.profile_updated"] == {"envelope.payload.changes"}
    # An entry that comes after the erasure (requeued, replayed) is blanked as it is written.
    late = _blanked(entry_of(record_history()[0]))["envelope"]["payload"]
    assert late["full_name"] is None and late["national_id"] is None and late["owning_agent_id"] == "A-1"


def test_the_360_as_of_a_moment_holds_exactly_what_had_happened_by_then() -> None:
    history = record_history()
    noon = (T0 + timedelta(days=2, hours=3)).isoformat()
    chosen = [m for m in sorted(history, key=sequence_key) if sequence_key(m) <= as_of_key(noon)]
    assert [m["aggregate_version"] for m in chosen] == [1, 2, 3]
    doc = fold(iter(chosen))
    assert doc is not None
    assert doc["profile"]["full_name"] == "Wang Xiaohong" and doc["owning_agent_id"] == "A-2"
    assert doc["profile"]["mobile_phone"] == REGISTERED["mobile_phone"]  # changed only later
    # At the very moment of an event, the event counts.
    assert sequence_key(history[3]) <= as_of_key(history[3]["occurred_at"])


def test_a_timeline_page_has_a_cursor_only_when_more_follows() -> None:
    entries = [entry_of(ticket_opened(v, T0 + timedelta(minutes=v))) for v in range(5, 0, -1)]
    page = page_of(entries, 4)
    assert [e["details"]["ticket_id"] for e in page["entries"]] == ["T-1"] * 4
    assert decode_cursor(page["next_cursor"], 1) == [entries[3]["seq"]]
    assert page_of(entries[:4], 4)["next_cursor"] is None
    for garbage in ("not-base64!", "W10=", "WzEsMl0="):  # invalid; []; [1, 2]
        with pytest.raises(ValidationFailed) as refused:
            decode_cursor(garbage, 1)
        assert refused.value.fields[0].field == "cursor"


def test_each_projection_is_bound_to_exactly_the_events_it_takes() -> None:
    queues = consumer_queues()
    assert set(queues) == {f"analytics.{name}" for name in PROJECTIONS}
    for projection in PROJECTIONS.values():
        assert queues[projection.queue] == tuple(sorted(projection.event_types))
        assert "#" not in projection.event_types
    # Everything the 360 takes names a customer, so it is on the timeline, the 360's history.
    assert set(CHANGES) <= TIMELINE_PROJECTION.event_types
    assert SEARCH_PROJECTION.event_types <= TIMELINE_PROJECTION.event_types
    assert "sales.agent_moved" not in TIMELINE_PROJECTION.event_types


def test_lag_is_the_last_delay_when_caught_up_and_grows_while_events_wait() -> None:
    projection = PROJECTIONS["customer_360"]
    status = {"last_batch_at": T0.isoformat(), "last_delay_seconds": 0.08, "applied": 10}
    caught_up = lag_of(projection, status, 0, 1, None, T0 + timedelta(minutes=5))
    assert (caught_up.waiting_events, caught_up.behind_seconds) == (0, 0.08)
    stuck = lag_of(projection, status, 250, 0, None, T0 + timedelta(minutes=5))
    assert (stuck.waiting_events, stuck.behind_seconds) == (250, 300.0)
    never_ran = lag_of(projection, {}, 0, 0, "customer_360_x", T0)
    assert (never_ran.behind_seconds, never_ran.rebuilding_into) == (0.0, "customer_360_x")
    assert lag_of(projection, {}, 5, 0, None, T0).behind_seconds is None  # waiting, never applied


def policy_event(kind: str, version: int, payload: dict[str, Any], policy: str = "POL-1") -> dict[str, Any]:
    return envelope(
        kind, version, {"policy_number": policy, **payload}, T0 + timedelta(days=version), aggregate_id=policy
    )


SOLD = {
    "product": "life",
    "annual_premium": "1200.00",
    "start_date": "2027-01-01",
    "end_date": "2037-01-01",
    "agent_id": "A-1",
}


def test_the_360s_bookkeeping_is_one_version_per_item_however_many_aggregates_touch_the_customer() -> None:
    from services.analytics.customer_360 import applied_versions, empty_document, project

    doc = None
    for m in record_history():
        doc = project(doc, m) or doc
    for i in range(300):
        activity = str(uuid.UUID(int=10_000 + i))
        planned = envelope(
            "sales.activity_planned",
            1,
            {
                "activity_id": activity,
                "kind": "call",
                "agent_id": "A-2",
                "source": "agent",
                "planned_start": T0.isoformat(),
                "planned_end": T0.isoformat(),
            },
            T0,
            aggregate_id=activity,
        )
        done = envelope(
            "sales.activity_completed",
            2,
            {"activity_id": activity, "outcome": "reached", "completed_at": T0.isoformat()},
            T0,
            aggregate_id=activity,
        )
        doc = project(project(doc, planned), done)
    assert doc is not None
    assert set(doc) == set(empty_document(CUSTOMER)) | {"record_version"}
    assert doc["record_version"] == 5 and {a["v"] for a in doc["activities"]} == {2}
    assert len(applied_versions(doc)) == 301 and doc["revision"] == 5 + 600


def test_an_aggregates_events_apply_once_in_order_and_a_gap_is_refused() -> None:
    from services.analytics.customer_360 import VersionGap, project

    sold = policy_event("sales.policy_sold", 1, SOLD)
    recorded = policy_event(
        "sales.claim_recorded",
        2,
        {
            "claim_id": "CL-1",
            "loss_date": "2027-02-01",
            "amount_claimed": "50.00",
            "status": "reported",
            "amount_paid": None,
        },
    )
    updated = policy_event(
        "sales.claim_updated", 3, {"claim_id": "CL-1", "status": "paid", "amount_paid": "50.00"}
    )
    registered = record_history()[0]
    in_order = None
    for m in (registered, sold, recorded, updated):
        in_order = project(in_order, m) or in_order
    assert (
        in_order is not None
        and in_order["claims"][0]["status"] == "paid"
        and in_order["policies"][0]["v"] == 3
    )
    # The policy's events before the customer's registration, each twice: the same document.
    other_order = None
    for m in (sold, sold, recorded, registered, recorded, updated, updated, registered):
        other_order = project(other_order, m) or other_order
    assert other_order == in_order
    # The claim's update before the claim: refused, so that it is tried again later, not lost.
    with pytest.raises(VersionGap):
        project(project(project(None, registered), sold), updated)


def sample_payload(schema: Any) -> dict[str, Any]:
    """A payload with a value of the right type in every field of a contract schema."""
    from marshmallow import fields as mf

    def value(field: Any) -> Any:
        if isinstance(field, mf.Nested):
            return sample_payload(field.schema)
        if isinstance(field, mf.List):
            return [value(field.inner)]
        if isinstance(field, mf.UUID):
            return str(uuid.uuid4())
        if isinstance(field, mf.Boolean):
            return True
        if isinstance(field, mf.Integer | mf.Float):
            return 1
        if isinstance(field, mf.Decimal):
            return "10.00"
        if isinstance(field, mf.DateTime):
            return T0.isoformat()
        if isinstance(field, mf.Date):
            return "2027-01-04"
        if isinstance(field, mf.Dict):
            return {}
        return "x"

    return {name: value(field) for name, field in schema.fields.items()}


def test_every_event_the_360_takes_keeps_its_aggregates_version_somewhere() -> None:
    """The customer's record keeps its own version; every other aggregate's event names the item
    that keeps its version (``Change.holder``), or it could never be applied."""
    from contracts.events import PAYLOAD_SCHEMAS
    from services.analytics.customer_360 import change_of

    for (event_type, _), schema in PAYLOAD_SCHEMAS.items():
        if event_type not in CHANGES:
            continue
        payload = {**sample_payload(schema()), "customer_id": CUSTOMER}
        own_record = event_type.startswith("customer.")
        aggregate = CUSTOMER if own_record else str(uuid.uuid4())
        message = {**envelope(event_type, 1, {}, T0, aggregate_id=aggregate), "payload": payload}
        change = change_of(message)
        assert change is not None
        assert (change.holder is None) == own_record, event_type
