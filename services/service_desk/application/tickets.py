"""Tickets from opening to closing: classified and routed, assigned, noted, put on hold for the
customer, escalated, resolved, confirmed or closed, reopened. A closed complaint gets its call-back
in the same append."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.service_desk.application.base import DESK, TAKERS, DeskBase
from services.service_desk.domain.call_back import CallBack, SurveyRotation
from services.service_desk.domain.legacy import Complaint
from services.service_desk.domain.ticket import Ticket


def moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_view(ticket: Ticket, now: datetime) -> dict[str, Any]:
    return {
        "ticket_id": ticket.ticket_id,
        "customer_id": ticket.customer_id,
        "owning_agent_id": ticket.owning_agent_id,
        "kind": ticket.kind,
        "channel": ticket.channel,
        "category": ticket.category,
        "priority": ticket.priority,
        "queue_id": ticket.queue_id,
        "assignee_user_id": ticket.assignee_user_id,
        "subject": ticket.subject,
        "description": ticket.description,
        "state": ticket.state,
        # "status" is the name version 1 of get_ticket answered with (open or closed).
        "status": "closed" if ticket.state == "closed" else "open",
        "opened_at": ticket.created_on.isoformat(),
        "sla": {
            "target_hours": ticket.sla_target_hours,
            "state": ticket.sla_state(now).value if ticket.unresolved else None,
            "deadline": moment(ticket.clock.deadline()),
            "remaining_seconds": int(ticket.clock.remaining(now).total_seconds()),
            "warned_at": moment(ticket.warned_at),
            "breached_at": moment(ticket.breached_at),
        },
        # While the clock stands still: the deadline it had when it stopped (version 1's field).
        "sla_deadline": moment(ticket.clock.last_deadline),
        "escalation_level": ticket.escalation_level,
        "escalated_to_user_id": ticket.escalated_to_user_id,
        "notes": ticket.notes,
        "resolution": ticket.resolution,
        "resolved_at": moment(ticket.resolved_at),
        "auto_close_at": moment(ticket.auto_close_at),
        "closed_at": moment(ticket.closed_at),
        "close_reason": ticket.close_reason,
        "satisfaction": ticket.satisfaction,
        "reopen_count": ticket.reopen_count,
        "call_back_id": ticket.call_back_id,
        "version": ticket.version,
    }


def legacy_view(complaint: Complaint) -> dict[str, Any]:
    """A complaint of version 1 of the desk, as version 1's get_ticket showed it."""
    return {
        "ticket_id": str(complaint.id),
        "customer_id": complaint.customer_id,
        "kind": "complaint",
        "channel": complaint.channel,
        "category": complaint.category,
        "priority": complaint.priority,
        "description": complaint.description,
        "state": complaint.status,
        "status": complaint.status,
        "opened_at": complaint.created_on.isoformat(),
        "sla_deadline": complaint.sla_deadline.isoformat(),
        "resolution": complaint.resolution,
        "satisfaction": complaint.satisfaction,
        "closed_at": moment(complaint.closed_at),
        "version": complaint.version,
    }


def state_answer(ticket: Ticket, **more: Any) -> dict[str, Any]:
    return {"ticket_id": ticket.ticket_id, "state": ticket.state, "version": ticket.version, **more}


class Tickets(DeskBase):
    def _open(self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory) -> Decision:
        meta.actor.require_role(*TAKERS)
        customer_id = str(data["customer_id"])
        # The directory answers as the caller: the customer context applies the access rule
        # (crm_shared.access) and says unknown_customer for a customer outside the caller's scope.
        owner = owning_agent_of_known_customer(customers, customer_id)
        self.rules.category(data["category"])
        queue = self.rules.queue_for(data["kind"], data["category"])
        ticket = Ticket.open(
            customer_id=customer_id,
            owning_agent_id=owner,
            kind=data["kind"],
            channel=data["channel"],
            category=data["category"],
            priority=data["priority"],
            queue_id=queue.queue_id,
            subject=data["subject"],
            description=data["description"],
            target=self.rules.sla_target(data["kind"], data["priority"]),
            warning_share=self.rules.warning_share,
            at=self.now(),
            meta=meta,
        )
        answer = state_answer(
            ticket,
            queue_id=ticket.queue_id,
            sla_deadline=moment(ticket.sla_deadline),
            sla_warning_at=moment(ticket.sla_warning_at),
        )
        return Decision(answer, (ticket,))

    @command
    def open_ticket(self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory) -> Decision:
        return self._open(data, meta, customers)

    @command
    def open_complaint(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory
    ) -> Decision:
        """The complaint shortcut of version 1: a ticket of kind complaint."""
        subject = (
            data["description"].strip().splitlines()[0][:200] if data["description"].strip() else "complaint"
        )
        return self._open({**data, "kind": "complaint", "subject": subject}, meta, customers)

    @command
    def assign_ticket(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        queue = self.rules.queue(data.get("queue_id") or ticket.queue_id)
        ticket.assign(
            queue_id=queue.queue_id, assignee_user_id=data.get("assignee_user_id"), at=self.now(), meta=meta
        )
        answer = state_answer(ticket, queue_id=ticket.queue_id, assignee_user_id=ticket.assignee_user_id)
        return Decision(answer, (ticket,) if ticket.pending_events else ())

    @command
    def add_ticket_note(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        note_id = ticket.add_note(
            text=data["text"], author_user_id=meta.actor.user_id, at=self.now(), meta=meta
        )
        return Decision(state_answer(ticket, note_id=note_id), (ticket,))

    @command
    def request_customer_info(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket, now = self.ticket(data["ticket_id"]), self.now()
        self.fire_fallen_due(ticket, now)
        ticket.request_customer_info(question=data["question"], at=now, meta=meta)
        remaining = int(ticket.clock.remaining(now).total_seconds())
        return Decision(state_answer(ticket, sla_remaining_seconds=remaining), (ticket,))

    @command
    def record_customer_reply(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        ticket.record_customer_reply(reply=data["reply"], at=self.now(), meta=meta)
        return Decision(state_answer(ticket, sla_deadline=moment(ticket.clock.deadline())), (ticket,))

    @command
    def escalate_ticket(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        to_user = data.get("escalated_to_user_id")
        if to_user is None and data["level"] == 1:
            to_user = self.lead_of(ticket)
        ticket.escalate(
            level=data["level"], reason=data["reason"], to_user_id=to_user, at=self.now(), meta=meta
        )
        answer = state_answer(ticket, escalation_level=ticket.escalation_level, escalated_to_user_id=to_user)
        return Decision(answer, (ticket,))

    @command
    def resolve_ticket(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket, now = self.ticket(data["ticket_id"]), self.now()
        self.fire_fallen_due(ticket, now)
        ticket.resolve(
            resolution=data["resolution"],
            auto_close_after=self.rules.auto_close_after,
            at=now,
            meta=meta,
        )
        return Decision(state_answer(ticket, auto_close_at=moment(ticket.auto_close_at)), (ticket,))

    @command
    def confirm_resolution(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        ticket.close(reason="confirmed", at=self.now(), meta=meta)
        return self._closed(ticket, meta)

    @command
    def close_ticket(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        # A resolved ticket's clock stands still: nothing falls due, and this fires nothing.
        ticket, now = self.ticket(data["ticket_id"]), self.now()
        self.fire_fallen_due(ticket, now)
        ticket.close(reason=data["reason"], at=now, meta=meta)
        return self._closed(ticket, meta)

    @command
    def close_complaint(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """Version 1's one step: resolve (unless resolved) and close, with the customer's score."""
        meta.actor.require_role(*DESK)
        if (complaint := self.find(Complaint, str(data["ticket_id"]))) is not None:
            return self._close_version_1(complaint, data, meta)
        ticket = self.ticket(data["ticket_id"])
        if ticket.kind != "complaint":
            raise InvalidState(f"ticket {ticket.ticket_id} is an {ticket.kind}: resolve and close it instead")
        now = self.now()
        self.fire_fallen_due(ticket, now)
        resolution = None if ticket.state == "resolved" else data["resolution"]
        ticket.close(
            reason="resolved",
            resolution=resolution,
            satisfaction=data["satisfaction"],
            at=now,
            meta=meta,
        )
        return self._closed(ticket, meta)

    @command
    def reopen_ticket(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        ticket = self.ticket(data["ticket_id"])
        ticket.reopen(reason=data["reason"], reopen_within=self.rules.reopen_within, at=self.now(), meta=meta)
        return Decision(state_answer(ticket, sla_deadline=moment(ticket.clock.deadline())), (ticket,))

    def _close_version_1(self, complaint: Complaint, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """A complaint opened by version 1 of the desk (still in a store) closes as it did then."""
        complaint.close(
            resolution=data["resolution"], satisfaction=data["satisfaction"], closed_at=self.now(), meta=meta
        )
        answer = {
            "ticket_id": str(complaint.id),
            "state": "closed",
            "closed_at": moment(complaint.closed_at),
            "closed_within_sla": complaint.closed_at is not None
            and complaint.closed_at <= complaint.sla_deadline,
            "call_back_id": None,
        }
        return Decision(answer, (complaint,))

    def _closed(self, ticket: Ticket, meta: CommandMeta) -> Decision:
        changed = [ticket, *self.call_back_for(ticket, meta)]
        answer = state_answer(
            ticket,
            closed_at=moment(ticket.closed_at),
            closed_within_sla=ticket.closed_within_sla,
            call_back_id=ticket.call_back_id,
        )
        return Decision(answer, tuple(changed))

    def call_back_for(self, ticket: Ticket, meta: CommandMeta) -> list[CrmAggregate]:
        """The call-back a complaint closed just now gets, with the next survey set of its
        customer's rotation; nothing for other tickets."""
        if ticket.call_back_id is None or ticket.closed_at is None:
            return []
        closed_at = ticket.closed_at
        rotation = self.find(SurveyRotation, SurveyRotation.id_for(ticket.customer_id))
        rotation = rotation or SurveyRotation.start(ticket.customer_id, closed_at, meta)
        survey_set = rotation.give_next(self.bank, closed_at, meta)
        call_back = CallBack.schedule(
            call_back_id=ticket.call_back_id,
            ticket_id=ticket.ticket_id,
            customer_id=ticket.customer_id,
            queue_id=ticket.queue_id,
            assignee_user_id=ticket.assignee_user_id,
            due_at=ticket.closed_at + self.rules.call_back_after,
            survey_set=survey_set,
            at=ticket.closed_at,
            meta=meta,
        )
        return [rotation, call_back]

    def get_ticket(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory | None = None
    ) -> dict[str, Any]:
        meta.actor.require_role(*TAKERS)
        if (
            complaint := self.find(Complaint, str(data["ticket_id"]))
        ) is not None and meta.actor.role in DESK:
            return legacy_view(complaint)
        return ticket_view(self.ticket_in_view(data["ticket_id"], meta.actor, customers), self.now())

    def list_ticket_categories(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*TAKERS)
        return {"version": self.rules.version, "categories": self.rules.category_tree()}
