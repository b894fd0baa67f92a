"""Campaign targets: a segment's customers, a page at a time in customer id order (one owner's, if
named: an index range each), with what sales' campaign rules need to know of each from the 360
view: the owner now, the province, the products held in force, the marketing consents per channel,
do-not-call, and whether the customer was erased or merged. Nothing else of the person leaves."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from crm_shared.access import SalesForceScope, owners_in_scope
from crm_shared.auth import Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, PermissionDenied
from services.analytics.catalog import ReadModelCatalog
from services.analytics.scoring.recompute import ALL_OWNERS, COUNTS, MEMBERS
from services.analytics.store import CUSTOMER_360, LOOKUP_CHUNK, chunks

CONSENT_CHANNELS = ("phone", "sms", "email", "post")
FACTS = {
    "owning_agent_id": 1,
    "profile.address.province": 1,
    "policies.product": 1,
    "policies.status": 1,
    "consents": 1,
    "contact_preferences.do_not_call": 1,
    "erased_at": 1,
    "merged_into": 1,
}
# Campaigns run as internal systems (the launcher) or as marketing; a manager previews their teams'.
READS_TARGETS = (Role.SYSTEM,)


def target_facts(doc: dict[str, Any]) -> dict[str, Any]:
    address = (doc.get("profile") or {}).get("address") or {}
    consents = doc.get("consents") or {}
    return {
        "customer_id": str(doc["_id"]),
        "owning_agent_id": doc.get("owning_agent_id"),
        "region": address.get("province"),
        "products_held": sorted(
            {
                p["product"]
                for p in doc.get("policies") or []
                if p.get("status") == "active" and p.get("product")
            }
        ),
        "marketing_consents": {
            channel: (consents.get(f"{channel}_marketing") or {}).get("status") == "granted"
            for channel in CONSENT_CHANNELS
        },
        "do_not_call": bool((doc.get("contact_preferences") or {}).get("do_not_call")),
        "erased": doc.get("erased_at") is not None,
        "merged": doc.get("merged_into") is not None,
    }


class SegmentTargets:
    def __init__(self, database: Database, catalog: ReadModelCatalog) -> None:
        self.database = database
        self.catalog = catalog

    def list_segment_targets(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owner = data.get("owning_agent_id")
        allowed = owners_in_scope(meta.actor, scope, also=READS_TARGETS)
        if allowed is not None and (owner is None or owner not in allowed):
            raise PermissionDenied(
                "you may list the targets among your own teams' customers: name one of their agents",
                fields=[FieldError("owning_agent_id", "out_of_scope", "not an owner you may see")],
            )
        query: dict[str, Any] = {"scheme": data["scheme"], "segment": data["segment"]}
        if owner is not None:
            query["owning_agent_id"] = owner
        if data.get("after_customer_id"):
            query["customer_id"] = {"$gt": str(data["after_customer_id"])}
        limit = data["limit"]
        rows = list(
            self.database[MEMBERS]
            .find(query, {"customer_id": 1, "_id": 0})
            .sort("customer_id", ASCENDING)
            .limit(limit + 1)
        )
        page = [r["customer_id"] for r in rows[:limit]]
        views = self.database[self.catalog.targets(CUSTOMER_360).active]
        docs: dict[str, dict[str, Any]] = {}
        for chunk in chunks(page, LOOKUP_CHUNK):
            for doc in views.find({"_id": {"$in": list(chunk)}}, FACTS):
                docs[str(doc["_id"])] = doc
        return {
            "scheme": data["scheme"],
            "segment": data["segment"],
            # How many the segment held (of the owner, if named) at the last recompute.
            "segment_size": self._size(data["scheme"], data["segment"], owner),
            # In the segment's order; a member whose 360 view is gone (a rebuild under way) is left
            # out, and the page's last id still moves the walk on.
            "targets": [target_facts(docs[c]) for c in page if c in docs],
            "last_customer_id": page[-1] if page else None,
            "more": len(rows) > limit,
        }

    def _size(self, scheme: str, segment: str, owner: str | None) -> int | None:
        counts = self.database[COUNTS]
        # The last recompute's month first, then its row: each an index range (month, scheme, owner).
        latest = counts.find_one(
            {"scheme": scheme, "owner": ALL_OWNERS}, {"month": 1}, sort=[("month", DESCENDING)]
        )
        if latest is None:
            return None
        row = counts.find_one(
            {"month": latest["month"], "scheme": scheme, "owner": owner or ALL_OWNERS, "segment": segment},
            {"count": 1},
        )
        return 0 if row is None else int(row["count"])
