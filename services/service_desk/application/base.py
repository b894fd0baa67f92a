"""What the service desk's handlers share: its rules and question bank, the business's day, the
tables beside the store, and who may do what."""

from __future__ import annotations

import functools
import os
from datetime import date, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from eventsourcing.utils import EnvType

from crm_shared.auth import Caller, Role
from crm_shared.clock import Clock, utc_now
from crm_shared.errors import FieldError, NotFound, ValidationFailed
from crm_shared.eventstore import CrmApplication
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.service_desk.desk_tables import DeskTables
from services.service_desk.domain.rules import DeskRules
from services.service_desk.domain.survey import SurveyBank
from services.service_desk.domain.ticket import Ticket

# Who works tickets; who may also open them and record what customers say (agents and managers,
# for the customers in their scope).
DESK = (Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
TAKERS = (*DESK, Role.AGENT, Role.MANAGER)


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
        super().__init__(env, clock)
        self.zone: tzinfo = zone or ZoneInfo("Asia/Shanghai")
        self.rules = rules or rules_from_env()
        self.bank = bank or bank_from_env()

    @functools.cached_property
    def tables(self) -> DeskTables:
        return DeskTables(self, self.zone)

    def create_own_tables(self) -> None:
        self.tables.create_tables()

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def ticket(self, ticket_id: object) -> Ticket:
        ticket = self.find(Ticket, str(ticket_id))
        if ticket is None:
            raise unknown_ticket(ticket_id)
        return ticket

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
