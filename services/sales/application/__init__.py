"""The sales context's application: one event store, handlers grouped by what they are about."""

from __future__ import annotations

from services.sales.application.campaigns import Campaigns
from services.sales.application.handing_over import HandingOver
from services.sales.application.opportunities import Opportunities
from services.sales.application.selling import Selling


class SalesApplication(HandingOver, Opportunities, Selling, Campaigns):
    CONTEXT = "sales"


__all__ = ["SalesApplication"]
