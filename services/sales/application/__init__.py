"""The sales context's application: one event store, handlers grouped by what they are about."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from crm_shared.config import Settings
from crm_shared.eventstore import event_store_env
from services.sales.application.handing_over import HandingOver
from services.sales.application.opportunities import Opportunities
from services.sales.application.selling import Selling


class SalesApplication(HandingOver, Opportunities, Selling):
    CONTEXT = "sales"

    @classmethod
    def from_settings(cls, settings: Settings) -> SalesApplication:
        return cls(
            env=event_store_env(cls.CONTEXT, settings),
            clock=settings.clock(),
            zone=ZoneInfo(settings.timezone),
        )


__all__ = ["SalesApplication"]
