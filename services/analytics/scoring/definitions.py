"""Segments defined after the fact (``crm segment define FILE``): a definition kept as data, a name
and conditions that all must hold, over a customer's facts at the moment (``features_of``: premium
over 12 months, lapses, complaints, days since contact...), their 360 record (owner, products held,
city) and their event history (how many lapses, cancellations, renewals, claims, complaints or
activities done within so many days). Defining one computes its members over the whole book (from
the 360 documents, which hold each customer's history folded); the nightly recompute and the 360
projector (after each batch, for the customers it changed) keep them current. Members are rows of
the segment tables under the scheme ``defined``, the definition's name as their segment, so they
count and list like every segment, and the 360 shows them as the customer's tags.

    {"name": "lapsing_life_holders",
     "description": "life policy holders who lapsed lately and complained",
     "all": [{"holds_product": "life"},
             {"event": "sales.policy_lapsed", "within_days": 365, "at_least": 1},
             {"field": "complaints_12m", "op": ">=", "value": 1}]}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database

from services.analytics.changes import Document
from services.analytics.scoring.config import ScoringConfigError
from services.analytics.scoring.features import Features, features_of, moment_of
from services.analytics.store import LOOKUP_CHUNK, chunks

DEFINITIONS = "segment_definitions"
DEFINED = "defined"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a is not None and a >= b,
    ">": lambda a, b: a is not None and a > b,
    "<=": lambda a, b: a is not None and a <= b,
    "<": lambda a, b: a is not None and a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
FEATURES = {f.name for f in fields(Features)} - {"customer_id", "registered_at", "last_contact_at"}


# The event history a condition may count, as the 360 document keeps it: (list, time field, test).
HISTORY: dict[str, tuple[str, str, Callable[[dict[str, Any]], bool]]] = {
    "sales.policy_sold": ("policies", "start_date", lambda _i: True),
    "sales.policy_lapsed": ("policy_status_history", "at", lambda i: i["status"] == "lapsed"),
    "sales.policy_cancelled": ("policy_status_history", "at", lambda i: i["status"] == "cancelled"),
    "sales.policy_renewed": ("policy_status_history", "at", lambda i: str(i["reason"]).startswith("renewed")),
    "sales.claim_recorded": ("claims", "loss_date", lambda _i: True),
    "sales.activity_completed": ("activities", "completed_at", lambda i: i.get("state") == "done"),
    "service_desk.ticket_opened": ("tickets", "opened_at", lambda _i: True),
    "service_desk.complaint_opened": ("tickets", "opened_at", lambda i: i.get("kind") == "complaint"),
}


@dataclass(frozen=True)
class Definition:
    name: str
    description: str
    conditions: tuple[dict[str, Any], ...]

    @classmethod
    def from_data(cls, data: Any) -> Definition:
        if not isinstance(data, dict):
            raise ScoringConfigError("a segment definition is a JSON object: {name, description, all: [...]}")
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise ScoringConfigError(
                "name must be 1-40 lower-case letters, digits or '_', starting with a letter"
            )
        conditions = data.get("all")
        if not isinstance(conditions, list) or not conditions:
            raise ScoringConfigError("all must be a non-empty list of conditions")
        for index, condition in enumerate(conditions):
            _check(condition, f"all.{index}")
        return cls(name, str(data.get("description") or ""), tuple(conditions))

    def as_data(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "all": list(self.conditions)}

    def holds(self, doc: Document, features: Features, at: datetime) -> bool:
        return all(_holds(c, doc, features, at) for c in self.conditions)


def _check(condition: Any, where: str) -> None:
    if not isinstance(condition, dict):
        raise ScoringConfigError(f"{where} must be an object")
    if "field" in condition:
        if condition["field"] not in FEATURES and condition["field"] != "owning_agent_id":
            raise ScoringConfigError(
                f"{where}.field must be one of {', '.join(sorted(FEATURES | {'owning_agent_id'}))}"
            )
        if condition.get("op") not in OPS:
            raise ScoringConfigError(f"{where}.op must be one of {' '.join(OPS)}")
        if "value" not in condition:
            raise ScoringConfigError(f"{where}.value is missing")
        value, name = condition["value"], condition["field"]
        textual = name == "owning_agent_id"
        if textual and not isinstance(value, str | None):
            raise ScoringConfigError(f"{where}.value must be an agent id (a text)")
        if not textual and (isinstance(value, bool) or not isinstance(value, int | float | None)):
            raise ScoringConfigError(f"{where}.value must be a number for {name}")
    elif "event" in condition:
        if condition["event"] not in HISTORY:
            raise ScoringConfigError(f"{where}.event must be one of {', '.join(sorted(HISTORY))}")
        for key in ("within_days", "at_least"):
            value = condition.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if key == "within_days" else 0)
            ):
                raise ScoringConfigError(
                    f"{where}.{key} must be a whole number ({'1' if key == 'within_days' else '0'} or more)"
                )
    elif "holds_product" in condition:
        if not isinstance(condition["holds_product"], str):
            raise ScoringConfigError(f'{where}.holds_product must be a product, such as "life"')
    elif "city" in condition:
        if not isinstance(condition["city"], str):
            raise ScoringConfigError(f"{where}.city must be a text")
    else:
        raise ScoringConfigError(f"{where} must have one of field, event, holds_product or city")


def _holds(condition: dict[str, Any], doc: Document, features: Features, at: datetime) -> bool:
    if "field" in condition:
        name = condition["field"]
        value: Any = doc.get("owning_agent_id") if name == "owning_agent_id" else getattr(features, name)
        if isinstance(value, Decimal):  # against a number given in JSON
            value = float(value)
        elif isinstance(value, date):
            value = value.isoformat()
        try:
            return OPS[condition["op"]](value, condition["value"])
        except TypeError:  # a value of another type (a date against a number): does not hold
            return False
    if "event" in condition:
        array, when, test = HISTORY[condition["event"]]
        since = at - timedelta(days=condition["within_days"])
        count = sum(
            1
            for item in doc.get(array, [])
            if test(item) and item.get(when) and since <= moment_of(item[when]) <= at
        )
        return count >= condition["at_least"]
    if "holds_product" in condition:
        return any(
            p.get("product") == condition["holds_product"] and p.get("status") == "active"
            for p in doc.get("policies", [])
        )
    address = (doc.get("profile") or {}).get("address") or {}
    return str(address.get("city", "")).casefold() == condition["city"].casefold()


class DefinedSegments:
    """The definitions, and their members kept in the segment tables."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.definitions = database[DEFINITIONS]
        self.members = database["segment_members"]

    def all(self) -> list[Definition]:
        return [Definition.from_data(d["definition"]) for d in self.definitions.find({}).sort("_id", 1)]

    def save(self, definition: Definition, by: str, at: datetime) -> None:
        self.definitions.replace_one(
            {"_id": definition.name},
            {
                "_id": definition.name,
                "definition": definition.as_data(),
                "defined_by": by,
                "defined_at": at.isoformat(),
            },
            upsert=True,
        )

    def sync(
        self, docs: Iterable[Document], at: datetime, definitions: list[Definition] | None = None
    ) -> int:
        """Evaluate the definitions for these customers' documents and write the memberships that
        changed; returns how many rows were written or removed."""
        chosen = self.all() if definitions is None else definitions
        if not chosen:
            return 0
        docs = [d for d in docs if d.get("merged_into") is None]
        ids = [str(d["_id"]) for d in docs]
        present: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in chunks(ids, LOOKUP_CHUNK):
            query = {"customer_id": {"$in": list(chunk)}, "scheme": DEFINED}
            for row in self.members.find(query):
                present[(row["customer_id"], row["segment"])] = row
        writes: list[ReplaceOne | DeleteOne] = []
        for doc in docs:
            customer_id = str(doc["_id"])
            features = None if doc.get("erased_at") else features_of(doc, at)
            for definition in chosen:
                key = f"{DEFINED}|{definition.name}|{customer_id}"
                row = present.get((customer_id, definition.name))
                inside = features is not None and definition.holds(doc, features, at)
                if inside and (row is None or row["owning_agent_id"] != doc.get("owning_agent_id")):
                    writes.append(
                        ReplaceOne(
                            {"_id": key},
                            {
                                "_id": key,
                                "scheme": DEFINED,
                                "segment": definition.name,
                                "customer_id": customer_id,
                                "owning_agent_id": doc.get("owning_agent_id"),
                                "since": row["since"] if row else at.isoformat(),
                            },
                            upsert=True,
                        )
                    )
                elif not inside and row is not None:
                    writes.append(DeleteOne({"_id": key}))
        if writes:
            self.members.bulk_write(writes, ordered=False)
        return len(writes)

    def drop(self, name: str) -> int | None:
        """Forget a definition and its members; how many members it had (None: no such one)."""
        if self.definitions.delete_one({"_id": name}).deleted_count == 0:
            return None
        return self.members.delete_many({"scheme": DEFINED, "segment": name}).deleted_count

    def tags_of(self, customer_id: str) -> list[str]:
        return sorted(
            r["segment"]
            for r in self.members.find({"customer_id": customer_id, "scheme": DEFINED}, {"segment": 1})
        )
