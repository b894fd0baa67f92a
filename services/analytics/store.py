"""MongoDB adapter of the customer 360 read model.

Writes are compare-and-set on the document's write token (``write_id``, fresh on every write), so
two writers (the live projector, a rebuild, a repair by ``crm verify``) never interleave a
read-modify-write on one customer. The token, not ``revision``, is compared: a repair may write a
document whose revision equals the one a concurrent projector read (ABA). Every write is journaled
before it is acknowledged. Which collection is live is recorded in the ``read_models`` catalog: a
rebuild fills a fresh collection, the projector writes to both while it runs, then reads switch
over."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import InsertOne, MongoClient, ReplaceOne, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.analytics.customer_360 import Document, Message, VersionGap, customer_of, project

CUSTOMER_360 = "customer_360"
CATALOG = "read_models"


# The compare-and-set token of a document: set only by ``_stamped``, compared only by ``_as_read``.
WRITE_ID = "write_id"


def mongo_client(uri: str) -> MongoClient:
    """A client whose writes are acknowledged only once they are in the database's journal, so a
    write the projector (and so the broker) saw acknowledged survives a kill -9 of the database.
    Any ``w`` given in ``uri`` (e.g. ``majority``) is kept."""
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True, journal=True)


@dataclass(frozen=True)
class Targets:
    active: str
    building: str | None


class ReadModelCatalog:
    """Which collection serves a read model, and which one a rebuild is filling. Lookups are cached
    for ``ttl`` seconds; a rebuild waits longer than that before it replays (see Rebuilder)."""

    def __init__(self, database: Database, ttl: float = 1.0) -> None:
        self.collection = database[CATALOG]
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Targets]] = {}

    def targets(self, model: str) -> Targets:
        cached = self._cache.get(model)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        entry = self.collection.find_one({"_id": model}) or {}
        targets = Targets(entry.get("active", model), entry.get("building"))
        self._cache[model] = (time.monotonic(), targets)
        return targets

    # Every change below is one conditional update, so two rebuilds (or a --force while the
    # first is still alive) cannot both believe they own the collection being built.

    def _ensure_entry(self, model: str) -> None:
        self.collection.update_one(
            {"_id": model}, {"$setOnInsert": {"active": model, "building": None}}, upsert=True
        )

    def begin_rebuild(self, model: str, fresh: str) -> None:
        self._ensure_entry(model)
        claimed = self.collection.update_one({"_id": model, "building": None}, {"$set": {"building": fresh}})
        self._cache.pop(model, None)
        if claimed.modified_count != 1:
            raise RuntimeError(
                f"a rebuild of {model} into {self.targets_uncached(model).building} is already "
                "under way; if it died, run the rebuild again with --force"
            )

    def force_rebuild(self, model: str, fresh: str) -> str | None:
        """Take the rebuild over; returns the abandoned collection, if any."""
        self._ensure_entry(model)
        before = self.collection.find_one_and_update(
            {"_id": model}, {"$set": {"building": fresh}}, return_document=ReturnDocument.BEFORE
        )
        self._cache.pop(model, None)
        return (before or {}).get("building")

    def abort_rebuild(self, model: str, fresh: str) -> None:
        self.collection.update_one({"_id": model, "building": fresh}, {"$set": {"building": None}})
        self._cache.pop(model, None)

    def switch(self, model: str, fresh: str) -> str:
        """Serve reads from ``fresh``; returns the collection it replaces. Refused if another
        rebuild took over meanwhile."""
        before = self.collection.find_one_and_update(
            {"_id": model, "building": fresh},
            {"$set": {"active": fresh, "building": None}},
            return_document=ReturnDocument.BEFORE,
        )
        self._cache.pop(model, None)
        if before is None:
            raise RuntimeError(f"another rebuild of {model} took over; {fresh} was not switched to")
        return str(before["active"])

    def targets_uncached(self, model: str) -> Targets:
        self._cache.pop(model, None)
        return self.targets(model)


def apply_message(
    collection: Collection,
    message: Message,
    *,
    gaps_wait_for_replay: bool = False,
    max_attempts: int = 10,
) -> bool:
    """Apply one event message to one collection; True if a document changed. A version gap raises
    ``VersionGap`` (the projector retries the message, then dead-letters it: requeue its
    predecessor first), except in a collection being rebuilt, where the replay brings the missing
    versions and this one after them."""
    customer_id = customer_of(message)
    if customer_id is None:
        return False
    for _ in range(max_attempts):
        current = collection.find_one({"_id": customer_id})
        try:
            new = project(current, message)
        except VersionGap:
            if gaps_wait_for_replay:
                return False
            raise
        if new is None:
            return False
        if compare_and_set(collection, current, new):
            return True
    raise RuntimeError(f"{collection.name} {customer_id} kept changing under the projector")


def _stamped(doc: Document) -> Document:
    """``doc`` with a fresh write token: every write to a customer 360 collection goes through here."""
    doc[WRITE_ID] = uuid.uuid4().hex
    return doc


def _as_read(current: Document) -> dict[str, Any]:
    """The filter matching ``current`` only as it was read: nobody wrote it since. A document
    written before the token existed has none, and ``None`` matches a missing field."""
    return {"_id": current["_id"], WRITE_ID: current.get(WRITE_ID)}


def compare_and_set(collection: Collection, current: Document | None, new: Document) -> bool:
    """Write ``new`` if the document is still ``current`` as read (insert it if ``current`` is
    None); False if another writer got there first: read again and retry."""
    if current is None:
        try:
            collection.insert_one(_stamped(new))
        except DuplicateKeyError:
            return False
        return True
    result = collection.replace_one(_as_read(current), _stamped(new))
    return result.matched_count == 1


def compare_and_delete(collection: Collection, current: Document) -> bool:
    """Delete the document if it is still ``current`` as read."""
    return collection.delete_one(_as_read(current)).deleted_count == 1


# Ids per ``$in`` read: SecantusDB's cost per id grows with the list's length (1000 ids cost ten
# times 100 ids per id); MongoDB does not mind either way.
LOOKUP_CHUNK = 100
Outcome = BaseException | None
T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def apply_together(
    collection: Collection, messages: list[Message], *, gaps_wait_for_replay: bool = False
) -> list[Outcome]:
    """Apply many messages with one read per ``LOOKUP_CHUNK`` customers and one bulk write: one
    outcome per message, in order, None when it is applied (or changes nothing), the exception when
    it is not (a ``VersionGap``: the caller retries it, then sets it aside). A document another
    writer changed meanwhile makes the batch fall back to one message at a time (every apply is
    idempotent)."""
    outcomes: list[Outcome] = [None] * len(messages)
    by_customer: dict[str, list[int]] = defaultdict(list)
    for index, message in enumerate(messages):
        if (customer_id := customer_of(message)) is not None:
            by_customer[customer_id].append(index)
    if not by_customer:
        return outcomes
    existing: dict[str, Document] = {}
    for chunk in chunks(list(by_customer), LOOKUP_CHUNK):
        existing.update((d["_id"], d) for d in collection.find({"_id": {"$in": chunk}}))
    writes: list[Any] = []
    for customer_id, indexes in by_customer.items():
        current = existing.get(customer_id)
        doc = current
        for index in indexes:
            try:
                doc = project(doc, messages[index]) or doc
            except VersionGap as gap:  # the versions after it in this batch gap too
                outcomes[index] = None if gaps_wait_for_replay else gap
        if doc is current or doc is None:
            continue
        writes.append(
            InsertOne(_stamped(doc)) if current is None else ReplaceOne(_as_read(current), _stamped(doc))
        )
    if not writes:
        return outcomes
    try:
        result = collection.bulk_write(writes, ordered=False)
        done = result.inserted_count + result.matched_count
    except BulkWriteError as e:
        done = e.details.get("nInserted", 0) + e.details.get("nMatched", 0)
    if done < len(writes):
        for index, message in enumerate(messages):
            try:
                apply_message(collection, message, gaps_wait_for_replay=gaps_wait_for_replay)
                outcomes[index] = None
            except Exception as e:
                outcomes[index] = e
    return outcomes


def apply_batch(
    collection: Collection, messages: list[Message], *, gaps_wait_for_replay: bool = False
) -> None:
    """``apply_together`` for a writer with nobody to hand a single message back to (a replay read
    in store order, where no gap can occur; the live copy into a collection being rebuilt): raises
    what any message raised."""
    for outcome in apply_together(collection, messages, gaps_wait_for_replay=gaps_wait_for_replay):
        if outcome is not None:
            raise outcome


class Customer360Store:
    def __init__(self, database: Database, catalog: ReadModelCatalog | None = None) -> None:
        self.database = database
        self.catalog = catalog or ReadModelCatalog(database)

    def collection(self) -> Collection:
        return self.database[self.catalog.targets(CUSTOMER_360).active]

    def get(self, customer_id: str) -> Document | None:
        return self.collection().find_one({"_id": customer_id})

    def apply(self, messages: list[Message]) -> list[Outcome]:
        """Apply live events together: to the serving collection and, during a rebuild, in version
        order to the one being built. One outcome per message (see ``apply_together``); a failure
        of the database itself raises."""
        targets = self.catalog.targets(CUSTOMER_360)
        outcomes = apply_together(self.database[targets.active], messages)
        if targets.building:
            apply_batch(self.database[targets.building], messages, gaps_wait_for_replay=True)
        return outcomes


def ensure_indexes(collection: Collection[Any]) -> None:
    collection.create_index("owning_agent_id")
