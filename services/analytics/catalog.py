"""Which MongoDB collection serves each analytics read model, and which one a rebuild is filling
(the ``read_models`` catalog), and the client every analytics process uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

CATALOG = "read_models"
# MongoDB's error code for a write that met a document with the same key.
DUPLICATE_KEY = 11000


def collided(error: BulkWriteError) -> list[int] | None:
    """The indexes of a bulk write's operations that met a document with the same key; None if
    any failed otherwise."""
    errors = error.details["writeErrors"]
    if any(e["code"] != DUPLICATE_KEY for e in errors):
        return None
    return [e["index"] for e in errors]


def write_idempotent(
    collection: Collection,
    writes: Sequence[Any],
    *,
    ordered: bool,
    instead: Callable[[int], list[Any]] | None = None,
) -> None:
    """One bulk write of idempotent upserts. Two writers upserting one new document at once (the
    live copy and a replay, two projectors) make the loser's insert collide; those writes go once
    more (ordered: from the first collision on, as the rest never ran), when nobody can be creating
    the document any longer; unordered, ``instead(i)`` may say what to write for the i-th one then.
    Unordered, a write colliding again is one whose filter does not match the existing document by
    design (an upsert guarded by a version, meeting a newer one): it has nothing to do. Ordered,
    that would leave the rest unwritten: it raises."""
    again = instead or (lambda i: [writes[i]])
    for attempt in range(2):
        if not writes:
            return
        try:
            collection.bulk_write(list(writes), ordered=ordered)
            return
        except BulkWriteError as e:
            if (indexes := collided(e)) is None or (attempt and ordered):
                raise
            if attempt:
                return
            writes = writes[indexes[0] :] if ordered else [w for i in indexes for w in again(i)]


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
