"""The service desk's domain: complaints taken on any channel and closed within their SLA (urgent
within 2 days, ordinary within 5 days of opening)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState

TICKET_NAMESPACE = uuid.UUID("b2c47e0d-5f1a-4e63-8d9c-0a7e3f6b1c25")
SLA_BY_PRIORITY = {"urgent": timedelta(days=2), "ordinary": timedelta(days=5)}


def sla_deadline(priority: str, opened_at: datetime) -> datetime:
    return opened_at + SLA_BY_PRIORITY[priority]


class Complaint(CrmAggregate):
    class Opened(CrmAggregate.Created):
        EVENT_TYPE = "service_desk.complaint_opened"
        ticket_id: str
        customer_id: str
        channel: str
        category: str
        priority: str
        description: str
        sla_deadline: datetime

    class Closed(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.complaint_closed"
        ticket_id: str
        customer_id: str
        resolution: str
        satisfaction: int
        closed_within_sla: bool

        def apply(self, complaint: Complaint) -> None:
            complaint.status = "closed"
            complaint.resolution = self.resolution
            complaint.satisfaction = self.satisfaction
            complaint.closed_at = self.timestamp

    customer_id: str
    channel: str
    category: str
    priority: str
    description: str
    sla_deadline: datetime
    # Aggregate annotations become __init__ parameters: state not carried by Opened needs defaults.
    status: str = "open"
    resolution: str | None = None
    satisfaction: int | None = None
    closed_at: datetime | None = None

    @classmethod
    def open(
        cls,
        *,
        customer_id: str,
        channel: str,
        category: str,
        priority: str,
        description: str,
        opened_at: datetime,
        meta: CommandMeta,
    ) -> Complaint:
        ticket_id = meta.derived_id(TICKET_NAMESPACE)
        return cls._create(
            cls.Opened,
            id=ticket_id,
            timestamp=opened_at,
            meta=meta.as_event_meta(),
            ticket_id=str(ticket_id),
            customer_id=customer_id,
            channel=channel,
            category=category,
            priority=priority,
            description=description,
            sla_deadline=sla_deadline(priority, opened_at),
        )

    def close(self, *, resolution: str, satisfaction: int, closed_at: datetime, meta: CommandMeta) -> None:
        if self.status == "closed":
            raise InvalidState(f"complaint {self.id} is already closed")
        self.trigger_event(
            self.Closed,
            timestamp=closed_at,
            meta=meta.as_event_meta(),
            ticket_id=str(self.id),
            customer_id=self.customer_id,
            resolution=resolution,
            satisfaction=satisfaction,
            closed_within_sla=closed_at <= self.sla_deadline,
        )
