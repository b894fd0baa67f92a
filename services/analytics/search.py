"""Finding customers: one small document per customer with what people search by (the name,
normalised, for prefix search; the mobile phone's digits; the last four of the national id; the
owning agent), each with an index that also orders by name, so a page is a range scan of one index.

The order is one string per document, ``name_sort`` (the normalised name, a NUL, the id): a single
sort field is what SecantusDB walks an index for, where a sort on two fields (name, then id) is a
blocking sort of every match, and a page's cursor is then one bound on that field.

Each field is a last-writer-wins register: it is written only by an event of the customer's record
newer than the one that last wrote it (``versions.<field>``), so events may come in any order, twice,
or with some missing, and the document still ends as the latest version says; its bookkeeping is
one number per field, however long the customer's history."""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Callable, Iterator
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
# Between the name and the id in ``name_sort``: below every character, so "wang li" and its ids
# sort before "wang lia".
SEPARATOR = "\x00"


def normalised_name(name: str | None) -> str | None:
    """Compatibility forms folded (full-width letters, ligatures), case folded, spaces collapsed."""
    if name is None:
        return None
    folded = unicodedata.normalize("NFKC", name).casefold().replace(SEPARATOR, " ")
    return " ".join(folded.split())


def name_sort(name_key: str, customer_id: str) -> str:
    return f"{name_key}{SEPARATOR}{customer_id}"


def phone_digits(phone: str | None) -> str | None:
    """The national number's digits: ``+86 138-0013 8000`` and ``13800138000`` are one phone."""
    if phone is None:
        return None
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def _name(full_name: str | None, customer_id: str) -> dict[str, Any]:
    # "" rather than null for an erased name: every document then sorts, and pages, by text.
    key = normalised_name(full_name) or ""
    return {"full_name": full_name, "name_key": key, "name_sort": name_sort(key, customer_id)}


def _unnamed(customer_id: str) -> dict[str, str]:
    """Where a document's name has not come yet: it sorts, and pages, first."""
    return {"name_key": "", "name_sort": name_sort("", customer_id)}


def _national_id(national_id: str | None) -> dict[str, Any]:
    return {
        "national_id_masked": mask_national_id(national_id),
        "id_last4": None if national_id is None else national_id[-4:].upper(),
    }


def registers_of(message: Message) -> dict[str, dict[str, Any]]:
    """Register name -> the fields the event sets in it."""
    payload, kind = message["payload"], message["event_type"]
    customer_id = str(payload["customer_id"])
    if kind == "customer.registered":
        return {
            "name": _name(payload["full_name"], customer_id),
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
            registers["name"] = _name(changes["full_name"], customer_id)
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
            "name": _name(None, customer_id),
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
            **({} if "name_key" in fields else {"$setOnInsert": _unnamed(customer_id)}),
        },
        upsert=True,
    )


def _first_write(customer_id: str, version: int, registers: dict[str, dict[str, Any]]) -> Any:
    if version != 1:
        return _register_write(customer_id, version, registers)
    fields = {name: value for register in registers.values() for name, value in register.items()}
    return InsertOne(
        {"_id": customer_id, **_unnamed(customer_id), **fields, "versions": dict.fromkeys(registers, version)}
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


SEARCHED_BY = ("mobile", "id_last4", "owning_agent_id")

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
    indexes=(
        IndexModel([("name_sort", ASCENDING)]),
        *(IndexModel([(field, ASCENDING), ("name_sort", ASCENDING)]) for field in SEARCHED_BY),
    ),
    apply=apply_search,
)


def _name_range(prefix: str | None, after: str | None) -> dict[str, str]:
    """The ``name_sort`` bounds of a name prefix (None: any name) past a page's last entry."""
    low = prefix or ""
    bounds = {"$gt": after} if after is not None and after >= low else {"$gte": low}
    return bounds | ({"$lt": prefix + HIGHEST} if prefix else {})


def index_walks(
    criteria: dict[str, Any], owners: list[str] | None, after: str | None
) -> list[dict[str, Any]]:
    """The filters to read, each one index range in name order, whose union holds every match of
    ``criteria`` within ``owners`` (None: every owner) after ``after``. Each is an equality on the
    narrowest criterion and the name range, the one shape SecantusDB's planner walks an index for
    (a filter holding ``$in``, a null or a second range is a collection scan there); the other
    criteria are checked on what it reads (``matches``)."""
    names = _name_range(normalised_name(criteria.get("name")), after)
    if criteria.get("mobile_phone"):
        return [{"mobile": phone_digits(criteria["mobile_phone"]), "name_sort": names}]
    if criteria.get("national_id_last4"):
        return [{"id_last4": str(criteria["national_id_last4"]).upper(), "name_sort": names}]
    agent = criteria.get("owning_agent_id")
    if owners is not None:
        # A manager's teams: one walk per owner (each once), merged by name.
        return [
            {"owning_agent_id": o, "name_sort": names} for o in dict.fromkeys(owners) if agent in (None, o)
        ]
    if agent is not None:
        return [{"owning_agent_id": agent, "name_sort": names}]
    return [{"name_sort": names}]


def matching(criteria: dict[str, Any], owners: list[str] | None) -> Callable[[dict[str, Any]], bool]:
    """The test every criterion makes of a document, the criteria normalised once; merged
    duplicates are their survivors' and never match."""
    prefix = normalised_name(criteria.get("name"))
    mobile = phone_digits(criteria["mobile_phone"]) if criteria.get("mobile_phone") else None
    last4 = str(criteria["national_id_last4"]).upper() if criteria.get("national_id_last4") else None
    agent = criteria.get("owning_agent_id")
    allowed = None if owners is None else set(owners)

    def test(doc: dict[str, Any]) -> bool:
        return (
            doc.get("merged_into") is None
            and (not prefix or doc.get("name_key", "").startswith(prefix))
            and (mobile is None or doc.get("mobile") == mobile)
            and (last4 is None or doc.get("id_last4") == last4)
            and (not agent or doc.get("owning_agent_id") == agent)
            and (allowed is None or doc.get("owning_agent_id") in allowed)
        )

    return test


def matches(doc: dict[str, Any], criteria: dict[str, Any], owners: list[str] | None) -> bool:
    return matching(criteria, owners)(doc)


def _walk(collection: Collection, walk: dict[str, Any], batch: int) -> Iterator[dict[str, Any]]:
    """One index range in name order, read a batch at a time (a query per batch: SecantusDB reads
    a whole range for a query, so each reads on from the last one's end)."""
    while True:
        found = list(collection.find(walk).sort("name_sort", ASCENDING).limit(batch))
        yield from found
        if len(found) < batch:
            return
        walk = {**walk, "name_sort": {**walk["name_sort"], "$gt": found[-1]["name_sort"]}}
        walk["name_sort"].pop("$gte", None)
        batch *= 4


def find_page(
    collection: Collection, criteria: dict[str, Any], owners: list[str] | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A page of matches ordered by name, then id, and the cursor of the next page."""
    after = name_sort(*decode_cursor(cursor, 2)) if cursor else None
    walks = [_walk(collection, w, limit + 1) for w in index_walks(criteria, owners, after)]
    wanted = matching(criteria, owners)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for doc in heapq.merge(*walks, key=lambda d: d["name_sort"]):
        # A customer moved between two owners' reads may come from both.
        if doc["_id"] not in seen and wanted(doc):
            seen.add(doc["_id"])
            found.append(doc)
            if len(found) > limit:
                break
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
