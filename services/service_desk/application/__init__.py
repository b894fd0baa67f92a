"""The service desk's application: one event store, handlers grouped by what they are about."""

from __future__ import annotations

from services.service_desk.application.reports import Reports


class ServiceDeskApplication(Reports):
    """Tickets, the SLA timers, the call-backs and surveys, and the desk's reports."""


__all__ = ["ServiceDeskApplication"]
