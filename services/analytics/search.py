"""Finding customers: one small document per customer with what people search by (the name,
normalised, for prefix search; the mobile phone's digits; the last four of the national id; the
owning agent), each with an index that also orders by name, so a page is a range scan of one index.

Each field is a last-writer-wins register: it is written only by an event of the customer's record
newer than the one that last wrote it (``versions.<field>``), so events may come in any order, twice,
or with some missing, and the document still ends as the latest version says; its bookkeeping is
one number per field, however long the customer's history."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pymongo import ASCENDING, IndexModel, InsertOne, UpdateOne
from pymongo.collection import Collection

from services.analytics.catalog import write_idempotent
from services.analytics.changes import Message
from services.analytics.customer_360 import mask_national_id
from services.analytics.paging import decode_cursor, encode_cursor
from services.analytics.projections import Outcome, Projection

CUSTOMER_SEARCH = "customer_search"
# Sorts after every character a name holds, closing a prefix's range.
HIGHEST = "\U0010ffff"


def normalised_name(name: str | None) -> str | None:
    """Compatibility forms folded (full-width letters, ligatures), case folded, spaces collapsed."""
    if name is None:
        return None
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def phone_digits(phone: str | None) -> str | None:
    """The national number's digits: ``+86 138-0013 8000`` and ``13800138000`` are one phone."""
    if phone is None:
        return None
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def _name(full_name: str | None) -> dict[str, Any]:
    # "" rather than null for an erased name: every document then sorts, and pages, by text.
    return {"full_name": full_name, "name_key": normalised_name(full_name) or ""}


def _national_id(national_id: str | None) -> dict[str, Any]:
    return {
        "national_id_masked": mask_national_id(national_id),
        "id_last4": None if national_id is None else national_id[-4:].upper(),
    }


def registers_of(message: Message) -> dict[str, dict[str, Any]]:
    """Register name -> the fields the event sets in it."""
    payload, kind = message["payload"], message["event_type"]
    if kind == "customer.registered":
        return {
            "name": _name(payload["full_name"]),
            "mobile": {
                "mobile_phone": payload["mobile_phone"],
                "mobile": phone_digits(payload["mobile_phone"]),
            },
            "national_id": _national_id(payload["national_id"]),
            "owner": {"owning_agent_id": payload["owning_agent_id"]},
        }
    if kind == "customer.profile_updated":
        changes = payload["changes"] or {}  # None when replayed after erasure
        registers: dict[str, dict[str, Any]] = {}
        if "full_name" in changes:
            registers["name"] = _name(changes["full_name"])
        if "mobile_phone" in changes:
            phone = changes["mobile_phone"]
            registers["mobile"] = {"mobile_phone": phone, "mobile": phone_digits(phone)}
        return registers
    if kind == "customer.owner_changed":
        return {"owner": {"owning_agent_id": payload["new_agent_id"]}}
    if kind == "customer.merged":
        return {"merged": {"merged_into": payload["survivor_id"]}}
    if kind == "customer.erased":
        return {
            "name": _name(None),
            "mobile": {"mobile_phone": None, "mobile": None},
            "national_id": _national_id(None),
            "erased": {"erased": True},
        }
    return {}


def search_document(doc: dict[str, Any] | None, message: Message) -> dict[str, Any]:
    """What ``apply_search`` makes of ``doc`` in the database, in Python: each register takes the
    event's fields only if the event is newer than the one that last wrote it."""
    new: dict[str, Any] = {"_id": str(message["payload"]["customer_id"])} if doc is None else dict(doc)
    versions: dict[str, int] = dict(new.get("versions", {}))
    version = int(message["aggregate_version"])
    for register, fields in registers_of(message).items():
        if versions.get(register, 0) < version:
            new.update(fields)
            versions[register] = version
    new["versions"] = versions
    return new


def _register_write(customer_id: str, version: int, registers: dict[str, dict[str, Any]]) -> UpdateOne:
    """Writes the registers if every one of them is older than ``version``; else the upsert collides
    with the document and the duplicate key says "one of them is newer already"."""
    fields = {name: value for register in registers.values() for name, value in register.items()}
    return UpdateOne(
        {"_id": customer_id, **{f"versions.{r}": {"$not": {"$gte": version}} for r in registers}},
        {
            "$set": {**fields, **{f"versions.{r}": version for r in registers}},
            # Every document sorts by name, even one whose name has not come yet.
            **({} if "name_key" in fields else {"$setOnInsert": {"name_key": ""}}),
        },
        upsert=True,
    )


def _first_write(customer_id: str, version: int, registers: dict[str, dict[str, Any]]) -> Any:
    if version != 1:
        return _register_write(customer_id, version, registers)
    fields = {name: value for register in registers.values() for name, value in register.items()}
    return InsertOne(
        {"_id": customer_id, "name_key": "", **fields, "versions": dict.fromkeys(registers, version)}
    )


def apply_search(collection: Collection, messages: list[Message], _rebuilding: bool) -> list[Outcome]:
    events = [
        (str(m["payload"]["customer_id"]), int(m["aggregate_version"]), registers)
        for m in messages
        if (registers := registers_of(m))
    ]

    def one_by_one(index: int) -> list[UpdateOne]:
        customer_id, version, registers = events[index]
        return [_register_write(customer_id, version, {r: f}) for r, f in registers.items()]

    # An event's registers in one write: mostly all are older than it (a customer's first events),
    # and the registration finds no document yet (a plain insert, several times cheaper than an
    # upsert). Where one is newer, or the document is there (another event came first, another
    # writer created it), each register on its own. Unordered: every write stands alone.
    write_idempotent(
        collection, [_first_write(*event) for event in events], ordered=False, instead=one_by_one
    )
    return [None] * len(messages)


SEARCHED_BY = ("name_key", "mobile", "id_last4", "owning_agent_id")

SEARCH_PROJECTION = Projection(
    name=CUSTOMER_SEARCH,
    description="one document per customer: find customers by name, mobile, national id, agent",
    event_types=frozenset(
        {
            "customer.registered",
            "customer.profile_updated",
            "customer.owner_changed",
            "customer.merged",
            "customer.erased",
        }
    ),
    indexes=tuple(
        IndexModel([(field, ASCENDING), ("name_key", ASCENDING), ("_id", ASCENDING)])
        if field != "name_key"
        else IndexModel([("name_key", ASCENDING), ("_id", ASCENDING)])
        for field in SEARCHED_BY
    ),
    apply=apply_search,
)


def search_query(criteria: dict[str, Any], owners: list[str] | None) -> dict[str, Any]:
    """The filter for ``criteria`` (a name prefix, a mobile, the last four of a national id, an
    owning agent) within ``owners`` (None: every owner). Merged duplicates are their survivors'."""
    query: dict[str, Any] = {"merged_into": None}
    if prefix := normalised_name(criteria.get("name")):
        query["name_key"] = {"$gte": prefix, "$lt": prefix + HIGHEST}
    if criteria.get("mobile_phone"):
        query["mobile"] = phone_digits(criteria["mobile_phone"])
    if criteria.get("national_id_last4"):
        query["id_last4"] = str(criteria["national_id_last4"]).upper()
    agent = criteria.get("owning_agent_id")
    if owners is not None:
        allowed = [o for o in owners if agent is None or o == agent]
        query["owning_agent_id"] = allowed[0] if len(allowed) == 1 else {"$in": allowed}
    elif agent is not None:
        query["owning_agent_id"] = agent
    return query


def _cursor_after(doc: dict[str, Any]) -> str:
    return encode_cursor([doc.get("name_key", ""), doc["_id"]])


def find_page(
    collection: Collection, criteria: dict[str, Any], owners: list[str] | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A page of matches ordered by name, then id, and the cursor of the next page."""
    query = search_query(criteria, owners)
    if cursor:
        # After the last page: a name beyond its last, or that name and a later id. Kept flat
        # beside the criteria (SecantusDB plans a filter's top level only, never under ``$and``).
        name_key, customer_id = decode_cursor(cursor, 2)
        bounds = dict(query.get("name_key", {}))
        bounds["$gte"] = max(bounds.get("$gte", ""), name_key)
        query["name_key"] = bounds
        query["$or"] = [{"name_key": {"$gt": name_key}}, {"_id": {"$gt": customer_id}}]
    found = list(collection.find(query).sort([("name_key", ASCENDING), ("_id", ASCENDING)]).limit(limit + 1))
    page = found[:limit]
    return {
        "customers": [
            {
                "customer_id": d["_id"],
                "full_name": d.get("full_name"),
                "mobile_phone": d.get("mobile_phone"),
                "national_id_masked": d.get("national_id_masked"),
                "owning_agent_id": d.get("owning_agent_id"),
                "erased": bool(d.get("erased")),
            }
            for d in page
        ],
        "next_cursor": encode_cursor([page[-1].get("name_key", ""), page[-1]["_id"]])
        if len(found) > limit
        else None,
    }
