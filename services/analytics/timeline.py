"""The customer timeline: every interaction with a customer, one document per public event that
names the customer, newest first, paged. Each entry keeps the event's envelope as published, so the
timeline is also the customer's own history: the 360 view as of any moment is these envelopes up to
it, folded by ``customer_360.project`` (``view_as_of``). An event is its own document, so applying
one is an insert keyed by its id: a redelivery changes nothing, and order and gaps do not matter.
When a customer is erased, the personal fields of their entries are blanked, as the write side's
own history forgets them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateMany
from pymongo.collection import Collection

from contracts.events import PAYLOAD_SCHEMAS, PERSONAL_FIELDS
from services.analytics.catalog import write_idempotent
from services.analytics.changes import Message
from services.analytics.customer_360 import utc_text
from services.analytics.paging import decode_cursor, encode_cursor
from services.analytics.projections import Outcome, Projection

TIMELINE = "customer_timeline"

# Every event type whose payload names a customer.
CUSTOMER_EVENTS = frozenset(
    t for (t, _), schema in PAYLOAD_SCHEMAS.items() if "customer_id" in schema().fields
)

# What an entry shows of its event beside its type, time and actor: identifiers, kinds and states,
# amounts; never free text (a description, a purpose or a reason may say what the customer told)
# nor personal data.
DETAILS = (
    "score",
    "policy_number",
    "product",
    "annual_premium",
    "claim_id",
    "amount_claimed",
    "amount_paid",
    "status",
    "due_date",
    "days_late",
    "opportunity_id",
    "stage",
    "to_stage",
    "source",
    "activity_id",
    "kind",
    "outcome",
    "planned_start",
    "ticket_id",
    "category",
    "priority",
    "channel",
    "queue_id",
    "escalation_level",
    "close_reason",
    "score",
    "previous_agent_id",
    "new_agent_id",
    "agent_id",
    "to_agent_id",
    "in_force",
    "survivor_id",
    "duplicate_id",
    "quote_id",
    "campaign_id",
    "group",
    "response",
)


def sequence_key(message: Message) -> str:
    """Sorts a customer's entries in time order, and one aggregate's events in version order even
    when they share a moment (a frozen test clock, a burst of one command)."""
    return f"{utc_text(message['occurred_at'])}|{message['aggregate_id']}|{message['aggregate_version']:010d}"


def entry_of(message: Message) -> dict[str, Any]:
    payload = message["payload"]
    return {
        "_id": message["event_id"],
        "customer_id": str(payload["customer_id"]),
        "seq": sequence_key(message),
        "at": message["occurred_at"],
        "event_type": message["event_type"],
        "actor": message["actor"],
        "details": {name: payload[name] for name in DETAILS if payload.get(name) is not None},
        "envelope": message,
    }


def _blanked(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without the personal fields of its event (its customer is erased)."""
    names = PERSONAL_FIELDS.get(entry["event_type"], ())
    payload = {**entry["envelope"]["payload"], **dict.fromkeys(names, None)}
    return {**entry, "envelope": {**entry["envelope"], "payload": payload}}


def _erasures(message: Message) -> list[UpdateMany]:
    """What ``customer.erased`` does to the entries already there: their personal fields go."""
    customer_id = str(message["payload"]["customer_id"])
    return [
        UpdateMany(
            {"customer_id": customer_id, "event_type": event_type},
            {"$set": {f"envelope.payload.{name}": None for name in names}},
        )
        for event_type, names in PERSONAL_FIELDS.items()
    ]


def _erased_among(collection: Collection, messages: list[Message]) -> set[str]:
    """The customers of ``messages`` with personal data who were erased already (an entry that
    comes after the erasure, requeued or replayed, must not bring the data back)."""
    personal = {str(m["payload"]["customer_id"]) for m in messages if m["event_type"] in PERSONAL_FIELDS}
    if not personal:
        return set()
    found = collection.find(
        {"customer_id": {"$in": sorted(personal)}, "event_type": "customer.erased"}, {"customer_id": 1}
    )
    return {e["customer_id"] for e in found}


def apply_timeline(collection: Collection, messages: list[Message], _rebuilding: bool) -> list[Outcome]:
    named = [m for m in messages if m["payload"].get("customer_id") is not None]  # not activities of none
    erased = _erased_among(collection, named)
    inserts: list[InsertOne] = []
    erasures: list[UpdateMany] = []
    for message in named:
        entry = entry_of(message)
        if entry["customer_id"] in erased:
            entry = _blanked(entry)
        inserts.append(InsertOne(entry))
        if message["event_type"] == "customer.erased":
            erasures += _erasures(message)
    # An entry never changes once written (but for blanking): one there already is done (a
    # redelivery, a replay reaching what the live copy wrote). Plain inserts: several times
    # cheaper than upserts.
    write_idempotent(collection, inserts, ordered=False, instead=lambda _i: [])
    if erasures:
        # After the entries: an erasure blanks every entry of its customer in the batch, also
        # those that came after it (an older event requeued or replayed late).
        collection.bulk_write(erasures, ordered=False)
    return [None] * len(messages)


TIMELINE_PROJECTION = Projection(
    name=TIMELINE,
    description="one document per event naming a customer: the paged timeline and the 360 as of a date",
    event_types=CUSTOMER_EVENTS,
    indexes=(IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)]),),
    apply=apply_timeline,
)


def timeline_page(
    collection: Collection, customer_ids: list[str], limit: int, cursor: str | None
) -> dict[str, Any]:
    """Newest first: ``limit`` entries older than ``cursor``, and the cursor of the next page."""
    query: dict[str, Any] = {
        "customer_id": customer_ids[0] if len(customer_ids) == 1 else {"$in": customer_ids}
    }
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        query["seq"] = {"$lt": before}
    found = list(collection.find(query, {"envelope": 0}).sort("seq", DESCENDING).limit(limit + 1))
    return page_of(found, limit)


def page_of(found: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """The page shown of ``found`` (up to ``limit + 1`` entries, newest first): the first
    ``limit``, and a cursor only if there is more."""
    entries = found[:limit]
    return {
        "entries": [
            {
                "event_id": e["_id"],
                "customer_id": e["customer_id"],
                "at": e["at"],
                "event_type": e["event_type"],
                "actor": e["actor"],
                "details": e["details"],
            }
            for e in entries
        ],
        "next_cursor": encode_cursor([entries[-1]["seq"]]) if len(found) > limit else None,
    }


def as_of_key(as_of: str) -> str:
    """The highest sequence key of an event that happened at or before ``as_of``."""
    return f"{utc_text(as_of)}|\uffff"


def history_until(collection: Collection, customer_id: str, as_of: str) -> Iterator[Message]:
    """The customer's envelopes that happened at or before ``as_of``, in time order, streamed."""
    cursor = collection.find(
        {"customer_id": customer_id, "seq": {"$lte": as_of_key(as_of)}}, {"envelope": 1}
    ).sort("seq", ASCENDING)
    for entry in cursor.batch_size(500):
        yield entry["envelope"]
