"""MongoDB adapter of the customer 360 read model. Writes are compare-and-set on the document's
revision, so two projector instances can never interleave a read-modify-write on one customer."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from services.analytics.customer_360 import Document, Message, customer_of, project

CUSTOMER_360 = "customer_360"


def mongo_client(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)


class Customer360Store:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def get(self, customer_id: str) -> Document | None:
        return self.collection.find_one({"_id": customer_id})

    def apply(self, message: Message, max_attempts: int = 5) -> bool:
        """Apply one event message; True if the document changed."""
        customer_id = customer_of(message)
        if customer_id is None:
            return False
        for _ in range(max_attempts):
            current = self.get(customer_id)
            new = project(current, message)
            if new is None:
                return False
            if self._write(current, new):
                return True
        raise RuntimeError(f"customer_360 {customer_id} kept changing under the projector")

    def _write(self, current: Document | None, new: Document) -> bool:
        if current is None:
            try:
                self.collection.insert_one(new)
            except DuplicateKeyError:
                return False
            return True
        result = self.collection.replace_one({"_id": new["_id"], "revision": current["revision"]}, new)
        return result.matched_count == 1


def ensure_indexes(collection: Collection[Any]) -> None:
    collection.create_index("owning_agent_id")
