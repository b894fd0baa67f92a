"""The service desk's application: one event store, handlers grouped by what they are about."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from crm_shared.config import Settings
from crm_shared.eventstore import event_store_env
from services.service_desk.application.reports import Reports


class ServiceDeskApplication(Reports):
    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceDeskApplication:
        return cls(
            env=event_store_env(cls.CONTEXT, settings),
            clock=settings.clock(),
            zone=ZoneInfo(settings.timezone),
        )


__all__ = ["ServiceDeskApplication"]
