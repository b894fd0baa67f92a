"""What the service desk's handlers share: its rules and question bank, the business's day, the
tables beside the store, and who may do what."""

from __future__ import annotations

import functools
import os
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

from eventsourcing.utils import EnvType

from crm_shared.auth import Caller, Role
from crm_shared.clock import Clock, utc_now
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, InvalidState, NotFound, ValidationFailed
from crm_shared.eventstore import CrmApplication
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.service_desk.desk_tables import DeskTables
from services.service_desk.domain.legacy import Complaint
from services.service_desk.domain.rules import DeskRules
from services.service_desk.domain.sla import Due
from services.service_desk.domain.survey import SurveyBank
from services.service_desk.domain.ticket import Ticket

# Who works tickets; who may also open them and record what customers say (agents and managers,
# for the customers in their scope).
DESK = (Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
TAKERS = (*DESK, Role.AGENT, Role.MANAGER)


TIMER_NAMESPACE = uuid.UUID("e7a1c5d3-2b9f-4e60-8c14-9f3d6b0a2e71")
# Whose name the clock's events are recorded under.
DESK_TIMERS = Caller("service:service-desk-timers", Role.SYSTEM)


def timer_meta(ticket: Ticket, due: Due, at: datetime) -> CommandMeta:
    """The clock's command for a ticket's due moment: the same (ticket, kind, due moment) is the
    same command, whichever process fires it."""
    key = f"{ticket.id}:{due.value}:{at.isoformat()}"
    return CommandMeta(f"sla-timer:{ticket.id}", str(uuid.uuid5(TIMER_NAMESPACE, key)), DESK_TIMERS)


def unknown_ticket(ticket_id: object) -> NotFound:
    return NotFound(
        f"no ticket {ticket_id} that you may see",
        fields=[FieldError("ticket_id", "unknown_ticket", "no such ticket in your scope")],
    )


def rules_from_env() -> DeskRules:
    config, categories = os.environ.get("CRM_DESK_CONFIG"), os.environ.get("CRM_DESK_CATEGORIES")
    return DeskRules.load(Path(config) if config else None, Path(categories) if categories else None)


def bank_from_env() -> SurveyBank:
    bank = os.environ.get("CRM_SURVEY_BANK")
    return SurveyBank.load(Path(bank) if bank else None)


class DeskBase(CrmApplication):
    CONTEXT = "service_desk"

    def __init__(
        self,
        env: EnvType | None = None,
        clock: Clock = utc_now,
        zone: tzinfo | None = None,
        rules: DeskRules | None = None,
        bank: SurveyBank | None = None,
    ) -> None:
        super().__init__(env, clock, zone)
        self.rules = rules or rules_from_env()
        self.bank = bank or bank_from_env()

    @functools.cached_property
    def tables(self) -> DeskTables:
        return DeskTables(self)

    def create_own_tables(self) -> None:
        self.tables.create_tables()

    def ticket(self, ticket_id: object) -> Ticket:
        ticket = self.find(Ticket, str(ticket_id))
        if ticket is None:
            if self.find(Complaint, str(ticket_id)) is not None:
                raise InvalidState(
                    f"ticket {ticket_id} is a complaint of version 1 of the desk, on no SLA clock: "
                    "close it with close_complaint"
                )
            raise unknown_ticket(ticket_id)
        return ticket

    def lead_of(self, ticket: Ticket) -> str | None:
        queue = self.rules.queues.get(ticket.queue_id)
        return queue.lead_user_id if queue is not None else None

    def fire_fallen_due(self, ticket: Ticket, now: datetime) -> tuple[int, int]:
        """The warning and the breach that fell due by ``now`` and were not recorded yet (the
        timers had not come to them), in order, under the timers' name: how many of each. Run by
        the timers, and before a ticket's clock stops (waiting on the customer, resolved, closed),
        so that a ticket stopped late is still warned and breached."""
        warnings = breaches = 0
        due = ticket.clock.next_due()
        if due is not None and due[0] == Due.WARNING and due[1] <= now:
            warnings += ticket.warn(at=now, meta=timer_meta(ticket, Due.WARNING, due[1]))
        deadline = ticket.clock.deadline()
        if deadline is not None and deadline <= now:
            meta = timer_meta(ticket, Due.BREACH, deadline)
            breaches += ticket.breach(lead_user_id=self.lead_of(ticket), at=now, meta=meta)
        return warnings, breaches

    def ticket_in_view(
        self, ticket_id: object, caller: Caller, customers: CustomerDirectory | None
    ) -> Ticket:
        """The ticket, for the desk; for an agent or a manager only if its customer is in their
        scope (the customer context answers as the caller), else unknown."""
        ticket = self.ticket(ticket_id)
        if caller.role not in DESK:
            if customers is None:
                raise unknown_ticket(ticket_id)
            try:
                owning_agent_of_known_customer(customers, ticket.customer_id, follow_merge=True)
            except ValidationFailed:
                raise unknown_ticket(ticket_id) from None
        return ticket
