"""Analytics queries over the read models."""

from __future__ import annotations

from typing import Any

from crm_shared.auth import Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound
from services.analytics.customer_360 import public_view
from services.analytics.store import Customer360Store


class AnalyticsQueries:
    def __init__(self, customer_360: Customer360Store) -> None:
        self.customer_360 = customer_360

    def get_customer_360(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        customer_id = str(data["customer_id"])
        doc = self.customer_360.get(customer_id)
        if doc is None:
            raise NotFound(
                f"no customer 360 view for {customer_id} (yet: a just-registered customer "
                "appears within moments)",
                fields=[FieldError("customer_id", "unknown_customer", "no such customer")],
            )
        meta.actor.require_customer_access(
            doc["owning_agent_id"], f"customer {customer_id}", also=(Role.SERVICE_DESK,)
        )
        return public_view(doc)
