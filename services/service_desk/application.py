"""Service desk command and query handlers."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError

from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound
from crm_shared.eventstore import CrmApplication
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.service_desk.domain import Complaint


class ServiceDeskApplication(CrmApplication):
    CONTEXT = "service_desk"

    @command
    def open_complaint(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory
    ) -> Decision:
        caller = meta.actor
        caller.require_role(Role.SERVICE_DESK, Role.AGENT, Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        customer_id = str(data["customer_id"])
        # The directory answers as the caller: the customer context applies the access rule
        # (crm_shared.access) and says unknown_customer for a customer outside the caller's scope.
        owning_agent_of_known_customer(customers, customer_id)
        complaint = Complaint.open(
            customer_id=customer_id,
            channel=data["channel"],
            category=data["category"],
            priority=data["priority"],
            description=data["description"],
            opened_at=self.clock(),
            meta=meta,
        )
        answer = {"ticket_id": str(complaint.id), "sla_deadline": complaint.sla_deadline.isoformat()}
        return Decision(answer, (complaint,))

    @command
    def close_complaint(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
        complaint = self._complaint(data["ticket_id"])
        complaint.close(
            resolution=data["resolution"],
            satisfaction=data["satisfaction"],
            closed_at=self.clock(),
            meta=meta,
        )
        answer = {
            "ticket_id": str(complaint.id),
            "closed_at": complaint.closed_at.isoformat() if complaint.closed_at else None,
            "closed_within_sla": complaint.closed_at is not None
            and complaint.closed_at <= complaint.sla_deadline,
        }
        return Decision(answer, (complaint,))

    def get_ticket(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
        complaint = self._complaint(data["ticket_id"])
        return {
            "ticket_id": str(complaint.id),
            "customer_id": complaint.customer_id,
            "channel": complaint.channel,
            "category": complaint.category,
            "priority": complaint.priority,
            "description": complaint.description,
            "status": complaint.status,
            "opened_at": complaint.created_on.isoformat(),
            "sla_deadline": complaint.sla_deadline.isoformat(),
            "resolution": complaint.resolution,
            "satisfaction": complaint.satisfaction,
            "closed_at": complaint.closed_at.isoformat() if complaint.closed_at else None,
            "version": complaint.version,
        }

    def _complaint(self, ticket_id: Any) -> Complaint:
        complaint: object
        try:
            complaint = self.repository.get(ticket_id)
        except AggregateNotFoundError:
            complaint = None
        if not isinstance(complaint, Complaint):
            raise NotFound(
                f"no ticket {ticket_id}",
                fields=[FieldError("ticket_id", "unknown_ticket", "no such record exists")],
            )
        return complaint
