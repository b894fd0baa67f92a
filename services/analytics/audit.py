"""The audit log: who did what to which record, when and why, from every context's published events
(each event carries who caused it, and the command's correlation), sign-ins and refused sign-ins
included (identity's events). One document per event, keyed by its id, so a redelivery or a replay
changes nothing; indexed by the person who acted, by the customer, and by time.

A reason is free text a person wrote for a change ("customer asked"); once a customer is erased,
the reasons of their entries are blanked, as the timeline forgets their personal data."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, UpdateMany
from pymongo.collection import Collection

from contracts.events import PAYLOAD_SCHEMAS
from services.analytics.catalog import write_idempotent
from services.analytics.changes import Message
from services.analytics.customer_360 import utc_text
from services.analytics.paging import decode_cursor, encode_cursor
from services.analytics.projections import Outcome, Projection

AUDIT = "audit_log"
EVERY_EVENT = frozenset(event_type for event_type, _ in PAYLOAD_SCHEMAS)
ERASED = "customer.erased"
OPERATOR_ACTION = "identity.operator_action_recorded"


def entry_of(message: Message) -> dict[str, Any]:
    payload, actor = message["payload"], message["actor"]
    at = utc_text(message["occurred_at"])
    customer = payload.get("customer_id")
    return {
        "_id": message["event_id"],
        "seq": f"{at}|{message['event_id']}",
        "at": at,
        "user_id": actor.get("user_id"),
        "role": actor.get("role"),
        "agent_id": actor.get("agent_id"),
        "event_type": message["event_type"],
        "context": message["context"],
        "aggregate_type": message["aggregate_type"],
        "aggregate_id": message["aggregate_id"],
        "customer_id": None if customer is None else str(customer),
        # The account an identity event is about (an account created, disabled, signed in).
        "account": payload.get("user_id") if message["context"] == "identity" else None,
        "reason": payload.get("reason") if isinstance(payload.get("reason"), str) else None,
        "detail": detail_of(message),
        "correlation_id": message["correlation_id"],
    }


def detail_of(message: Message) -> str | None:
    """What an event that names no record did, in words: an operator's action on the platform."""
    if message["event_type"] != OPERATOR_ACTION:
        return None
    payload = message["payload"]
    return f"{payload['action']} {payload['target']}: {payload['outcome']}"


def _erased_among(collection: Collection, customers: set[str]) -> set[str]:
    if not customers:
        return set()
    found = collection.find(
        {"customer_id": {"$in": sorted(customers)}, "event_type": ERASED}, {"customer_id": 1}
    )
    return {e["customer_id"] for e in found}


def apply_audit(collection: Collection, messages: list[Message], _rebuilding: bool) -> list[Outcome]:
    entries = [entry_of(m) for m in messages]
    erased = _erased_among(
        collection, {e["customer_id"] for e in entries if e["customer_id"] and e["reason"]}
    )
    for entry in entries:
        if entry["customer_id"] in erased:
            entry["reason"] = None
    write_idempotent(collection, [InsertOne(e) for e in entries], ordered=False, instead=lambda _i: [])
    erasures = [
        UpdateMany({"customer_id": e["customer_id"], "reason": {"$ne": None}}, {"$set": {"reason": None}})
        for e in entries
        if e["event_type"] == ERASED
    ]
    if erasures:
        collection.bulk_write(erasures, ordered=False)
    return [None] * len(messages)


AUDIT_PROJECTION = Projection(
    name=AUDIT,
    description="one document per event: who did what to which record, when and why",
    event_types=EVERY_EVENT,
    indexes=(
        IndexModel([("user_id", ASCENDING), ("seq", ASCENDING)]),
        IndexModel([("customer_id", ASCENDING), ("seq", ASCENDING)]),
        IndexModel([("account", ASCENDING), ("seq", ASCENDING)]),
        IndexModel("seq"),
    ),
    apply=apply_audit,
)


def audit_page(collection: Collection, data: dict[str, Any]) -> dict[str, Any]:
    """Newest first: one person's actions, or what was done to one customer or one account (at
    most one of them: each is one index range), between two moments; paged."""
    query: dict[str, Any] = {
        name: str(data[name]) for name in ("user_id", "customer_id", "account") if data.get(name)
    }
    bounds: dict[str, str] = {}
    if data.get("since"):
        bounds["$gte"] = utc_text(data["since"].isoformat())
    if data.get("until"):
        bounds["$lte"] = utc_text(data["until"].isoformat()) + "|\uffff"
    if data.get("cursor"):
        (before,) = decode_cursor(data["cursor"], 1)
        bounds["$lt"] = before
    if bounds:
        query["seq"] = bounds
    limit = data["limit"]
    found = list(collection.find(query).sort("seq", DESCENDING).limit(limit + 1))
    shown = found[:limit]
    return {
        "entries": [{k: e[k] for k in e if k not in ("_id", "seq")} | {"event_id": e["_id"]} for e in shown],
        "next_cursor": encode_cursor([shown[-1]["seq"]]) if len(found) > limit else None,
    }
