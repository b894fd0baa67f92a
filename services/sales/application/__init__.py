"""The sales context's application: one event store, handlers grouped by what they are about."""

from __future__ import annotations

from services.sales.application.sales_force import SalesForce
from services.sales.application.selling import Selling


class SalesApplication(SalesForce, Selling):
    CONTEXT = "sales"


__all__ = ["SalesApplication"]
