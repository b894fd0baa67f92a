"""Analytics queries over the read models."""

from __future__ import annotations

from typing import Any

from crm_shared.access import TeamScope, require_customer_access
from crm_shared.auth import Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import CustomerMerged, FieldError
from services.analytics.customer_360 import public_view, with_duplicates
from services.analytics.store import Customer360Store


class AnalyticsQueries:
    def __init__(self, customer_360: Customer360Store) -> None:
        self.customer_360 = customer_360

    def get_customer_360(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        customer_id = str(data["customer_id"])
        doc = self.customer_360.get(customer_id)
        # One answer for a customer that is not there (or not yet: a just-registered customer
        # appears within moments) and for one outside the caller's scope.
        require_customer_access(
            meta.actor, customer_id, doc["owning_agent_id"] if doc else None, scope, also=(Role.SERVICE_DESK,)
        )
        assert doc is not None
        if doc.get("merged_into"):
            raise CustomerMerged(
                f"customer {customer_id} was merged into {doc['merged_into']}: use that customer id",
                fields=[FieldError("customer_id", "customer_merged", f"merged into {doc['merged_into']}")],
                details={"survivor_id": doc["merged_into"]},
            )
        if doc.get("merged_from"):
            doc = with_duplicates(doc, self.customer_360.merged_into(customer_id))
        return public_view(doc)
