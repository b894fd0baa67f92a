"""Which MongoDB collection serves each analytics read model, and which one a rebuild is filling
(the ``read_models`` catalog), and the client every analytics process uses."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pymongo import MongoClient, ReturnDocument
from pymongo.database import Database

CATALOG = "read_models"
# MongoDB's error code for a write that met a document with the same key.
DUPLICATE_KEY = 11000


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
