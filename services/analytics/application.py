"""Analytics queries over the read models."""

from __future__ import annotations

from typing import Any

from crm_shared.access import TeamScope, require_customer_access
from crm_shared.auth import Role
from crm_shared.clock import Clock, utc_now
from crm_shared.domain import CommandMeta
from crm_shared.errors import CustomerMerged
from services.analytics.customer_360 import public_view, with_duplicates
from services.analytics.store import Customer360Store


class AnalyticsQueries:
    def __init__(self, customer_360: Customer360Store, clock: Clock = utc_now) -> None:
        self.customer_360 = customer_360
        # The view's "now": what is overdue, whether a ticket's SLA is warned or breached.
        self.clock = clock

    def get_customer_360(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        customer_id = str(data["customer_id"])
        doc = self.customer_360.get(customer_id)
        # A merged duplicate is its survivor's: whoever may act on the survivor learns where it went.
        governing = self.customer_360.get(doc["merged_into"]) if doc and doc.get("merged_into") else doc
        # One answer for a customer that is not there (or not yet: a just-registered customer
        # appears within moments) and for one outside the caller's scope.
        require_customer_access(
            meta.actor,
            customer_id,
            governing["owning_agent_id"] if governing else None,
            scope,
            also=(Role.SERVICE_DESK,),
        )
        assert doc is not None
        if doc.get("merged_into"):
            raise CustomerMerged.into(customer_id, doc["merged_into"])
        if doc.get("merged_from"):
            doc = with_duplicates(doc, self.customer_360.merged_into(customer_id))
        return public_view(doc, self.clock())
