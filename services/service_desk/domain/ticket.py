"""A ticket: an inquiry, a service request or a complaint, taken on any channel, classified in the
category tree, worked by a queue and a person, on an SLA clock (``sla.SlaClock``).

States and what moves between them (anything else is refused with ``invalid_state``)::

    open --assign(person)--> in_progress --request_customer_info--> awaiting_customer
    awaiting_customer --record_customer_reply--> in_progress (or open, with no one assigned)
    open | in_progress | awaiting_customer --resolve--> resolved
    resolved --confirm_resolution | close | (auto close after the wait)--> closed
    open | in_progress | awaiting_customer --close(withdrawn, duplicate...)--> closed
    resolved | closed (within the reopening window) --reopen--> in_progress (or open)

Escalation raises the level (1 team lead, 2 desk manager, 3 head of service) in any unresolved
state; a breach escalates an unescalated ticket to its queue's lead by itself. The warning and the
breach each happen once per ticket: the timer asks ``warn``/``breach`` and a second ask is a
no-op."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed
from services.service_desk.domain.sla import SlaClock, SlaState

TICKET_NAMESPACE = uuid.UUID("b2c47e0d-5f1a-4e63-8d9c-0a7e3f6b1c25")
NOTE_NAMESPACE = uuid.UUID("4e1f8a63-0b2d-47c5-9a1e-5d3c7b9f0e24")
CALL_BACK_NAMESPACE = uuid.UUID("9d27c4b1-6e0a-4f83-b5d9-1a3e8c7f2b60")
TOP_LEVEL = 3


class TicketState(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    AWAITING_CUSTOMER = "awaiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


UNRESOLVED = frozenset({TicketState.OPEN, TicketState.IN_PROGRESS, TicketState.AWAITING_CUSTOMER})


class Ticket(CrmAggregate):
    class Opened(CrmAggregate.Created):
        EVENT_TYPE = "service_desk.ticket_opened"
        ticket_id: str
        customer_id: str
        # The customer's owner when the ticket was opened: told of a complaint about their customer.
        owning_agent_id: str
        kind: str
        channel: str
        category: str
        priority: str
        queue_id: str
        subject: str
        description: str
        sla_target_hours: int
        warning_share: float
        sla_deadline: datetime
        sla_warning_at: datetime

    class Assigned(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_assigned"
        ticket_id: str
        customer_id: str
        queue_id: str
        assignee_user_id: str | None
        previous_queue_id: str
        previous_assignee_user_id: str | None
        state: str

        def apply(self, ticket: Ticket) -> None:
            ticket.queue_id = self.queue_id
            ticket.assignee_user_id = self.assignee_user_id
            ticket.state = self.state

    class NoteAdded(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_note_added"
        ticket_id: str
        customer_id: str
        note_id: str
        author_user_id: str
        # The text stays in the desk (get_ticket): it may hold what the customer confided.
        PRIVATE = frozenset({"text"})
        text: str

        def apply(self, ticket: Ticket) -> None:
            ticket.notes = [
                *ticket.notes,
                {
                    "note_id": self.note_id,
                    "author_user_id": self.author_user_id,
                    "text": self.text,
                    "at": self.timestamp.isoformat(),
                },
            ]

    class AwaitingCustomer(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_awaiting_customer"
        PRIVATE = frozenset({"question"})
        ticket_id: str
        customer_id: str
        question: str
        sla_remaining_seconds: int

        def apply(self, ticket: Ticket) -> None:
            ticket.state = TicketState.AWAITING_CUSTOMER.value
            ticket.clock = ticket.clock.stop(self.timestamp)

    class CustomerReplied(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_customer_replied"
        PRIVATE = frozenset({"reply"})
        ticket_id: str
        customer_id: str
        reply: str
        state: str
        sla_deadline: datetime
        sla_warning_at: datetime | None

        def apply(self, ticket: Ticket) -> None:
            ticket.state = self.state
            ticket.clock = ticket.clock.start(self.timestamp)

    class Escalated(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_escalated"
        ticket_id: str
        customer_id: str
        level: int
        previous_level: int
        reason: str
        escalated_to_user_id: str | None
        queue_id: str
        on_breach: bool

        def apply(self, ticket: Ticket) -> None:
            ticket.escalation_level = self.level
            ticket.escalated_to_user_id = self.escalated_to_user_id

    class Resolved(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_resolved"
        ticket_id: str
        customer_id: str
        kind: str
        queue_id: str
        assignee_user_id: str | None
        resolution: str
        within_sla: bool
        auto_close_at: datetime

        def apply(self, ticket: Ticket) -> None:
            ticket.state = TicketState.RESOLVED.value
            ticket.clock = ticket.clock.stop(self.timestamp)
            ticket.resolution = self.resolution
            ticket.resolved_at = self.timestamp
            ticket.auto_close_at = self.auto_close_at

    class Closed(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_closed"
        ticket_id: str
        customer_id: str
        kind: str
        queue_id: str
        assignee_user_id: str | None
        # confirmed (the customer agreed), auto_closed (no answer in time), resolved (the desk
        # closed it), withdrawn, duplicate.
        reason: str
        resolution: str | None
        closed_within_sla: bool
        # 1-5 when the customer said it on closing (the complaint shortcut); surveys come later.
        satisfaction: int | None
        # The call-back a closed complaint gets (scheduled in the same append), else None.
        call_back_id: str | None

        def apply(self, ticket: Ticket) -> None:
            ticket.state = TicketState.CLOSED.value
            ticket.clock = ticket.clock.stop(self.timestamp)
            ticket.closed_at = self.timestamp
            ticket.close_reason = self.reason
            ticket.satisfaction = self.satisfaction
            ticket.call_back_id = self.call_back_id
            ticket.closed_within_sla = self.closed_within_sla
            if self.resolution is not None:
                ticket.resolution = self.resolution

    class Reopened(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.ticket_reopened"
        ticket_id: str
        customer_id: str
        kind: str
        reason: str
        previous_state: str
        state: str
        sla_deadline: datetime
        sla_warning_at: datetime | None

        def apply(self, ticket: Ticket) -> None:
            ticket.state = self.state
            ticket.clock = ticket.clock.start(self.timestamp)
            ticket.reopen_count += 1
            ticket.closed_at = None
            ticket.resolved_at = None
            ticket.auto_close_at = None

    class SlaWarning(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.sla_warning"
        ticket_id: str
        customer_id: str
        queue_id: str
        # Who is told: the person working the ticket, or the queue while no one is.
        assignee_user_id: str | None
        due_at: datetime
        sla_deadline: datetime

        def apply(self, ticket: Ticket) -> None:
            ticket.clock = replace(ticket.clock, warned=True)
            ticket.warned_at = self.timestamp

    class SlaBreached(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.sla_breached"
        ticket_id: str
        customer_id: str
        kind: str
        priority: str
        queue_id: str
        assignee_user_id: str | None
        sla_deadline: datetime

        def apply(self, ticket: Ticket) -> None:
            ticket.clock = replace(ticket.clock, breached=True)
            ticket.breached_at = self.timestamp

    ticket_id: str
    customer_id: str
    owning_agent_id: str
    kind: str
    channel: str
    category: str
    priority: str
    queue_id: str
    subject: str
    description: str
    sla_target_hours: int
    warning_share: float
    sla_deadline: datetime
    sla_warning_at: datetime
    state: str = TicketState.OPEN.value
    assignee_user_id: str | None = None
    escalation_level: int = 0
    escalated_to_user_id: str | None = None
    resolution: str | None = None
    resolved_at: datetime | None = None
    auto_close_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    satisfaction: int | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    reopen_count: int = 0
    call_back_id: str | None = None
    closed_within_sla: bool | None = None

    def __post_init__(self) -> None:
        self.notes: list[dict[str, str]] = []
        # The window the opening gave, to the second (the event's hours are rounded down).
        self.clock = SlaClock(self.created_on, self.sla_deadline - self.created_on, self.warning_share)

    @classmethod
    def open(
        cls,
        *,
        customer_id: str,
        owning_agent_id: str,
        kind: str,
        channel: str,
        category: str,
        priority: str,
        queue_id: str,
        subject: str,
        description: str,
        target: timedelta,
        warning_share: float,
        at: datetime,
        meta: CommandMeta,
    ) -> Ticket:
        ticket_id = meta.derived_id(TICKET_NAMESPACE)
        clock = SlaClock(at, target, warning_share)
        return cls._create(
            cls.Opened,
            id=ticket_id,
            timestamp=at,
            meta=meta.as_event_meta(),
            ticket_id=str(ticket_id),
            customer_id=customer_id,
            owning_agent_id=owning_agent_id,
            kind=kind,
            channel=channel,
            category=category,
            priority=priority,
            queue_id=queue_id,
            subject=subject,
            description=description,
            sla_target_hours=int(target.total_seconds() // 3600),
            warning_share=warning_share,
            sla_deadline=clock.deadline(),
            sla_warning_at=clock.warning_at(),
        )

    # Reading -------------------------------------------------------------------------------------

    @property
    def unresolved(self) -> bool:
        return self.state in UNRESOLVED

    def sla_state(self, now: datetime) -> SlaState:
        return self.clock.state(now)

    def _require(self, action: str, *states: TicketState) -> None:
        if self.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise InvalidState(f"ticket {self.id} is {self.state}: it can be {action} only when {allowed}")

    def _common(self, meta: CommandMeta, at: datetime) -> dict[str, object]:
        return {
            "timestamp": at,
            "meta": meta.as_event_meta(),
            "ticket_id": str(self.id),
            "customer_id": self.customer_id,
        }

    def _worked_state(self) -> str:
        return (TicketState.IN_PROGRESS if self.assignee_user_id else TicketState.OPEN).value

    # Working the ticket --------------------------------------------------------------------------

    def assign(self, *, queue_id: str, assignee_user_id: str | None, at: datetime, meta: CommandMeta) -> bool:
        """To a queue, and a person in it or no one (back to the queue). False when it holds that
        assignment already."""
        self._require("assigned", *UNRESOLVED)
        if (queue_id, assignee_user_id) == (self.queue_id, self.assignee_user_id):
            return False
        state = self.state
        if self.state != TicketState.AWAITING_CUSTOMER:
            state = (TicketState.IN_PROGRESS if assignee_user_id else TicketState.OPEN).value
        self.trigger_event(
            self.Assigned,
            **self._common(meta, at),
            queue_id=queue_id,
            assignee_user_id=assignee_user_id,
            previous_queue_id=self.queue_id,
            previous_assignee_user_id=self.assignee_user_id,
            state=state,
        )
        return True

    def add_note(self, *, text: str, author_user_id: str, at: datetime, meta: CommandMeta) -> str:
        if self.state == TicketState.CLOSED:
            raise InvalidState(f"ticket {self.id} is closed: reopen it to add to it")
        note_id = str(uuid.uuid5(NOTE_NAMESPACE, meta.causation_id))
        self.trigger_event(
            self.NoteAdded,
            **self._common(meta, at),
            note_id=note_id,
            author_user_id=author_user_id,
            text=text,
        )
        return note_id

    def request_customer_info(self, *, question: str, at: datetime, meta: CommandMeta) -> None:
        self._require("put on hold for the customer", TicketState.OPEN, TicketState.IN_PROGRESS)
        remaining = self.clock.remaining(at)
        self.trigger_event(
            self.AwaitingCustomer,
            **self._common(meta, at),
            question=question,
            sla_remaining_seconds=int(remaining.total_seconds()),
        )

    def record_customer_reply(self, *, reply: str, at: datetime, meta: CommandMeta) -> None:
        self._require("answered by the customer", TicketState.AWAITING_CUSTOMER)
        clock = self.clock.start(at)
        self.trigger_event(
            self.CustomerReplied,
            **self._common(meta, at),
            reply=reply,
            state=self._worked_state(),
            sla_deadline=clock.deadline(),
            sla_warning_at=clock.warning_at(),
        )

    def escalate(
        self,
        *,
        level: int,
        reason: str,
        to_user_id: str | None,
        at: datetime,
        meta: CommandMeta,
        on_breach: bool = False,
    ) -> None:
        self._require("escalated", *UNRESOLVED)
        if not self.escalation_level < level <= TOP_LEVEL:
            raise InvalidState(
                f"ticket {self.id} is at escalation level {self.escalation_level}: it can go up to a "
                f"level from {self.escalation_level + 1} to {TOP_LEVEL}"
                if self.escalation_level < TOP_LEVEL
                else f"ticket {self.id} is escalated to the top level ({TOP_LEVEL}) already"
            )
        self.trigger_event(
            self.Escalated,
            **self._common(meta, at),
            level=level,
            previous_level=self.escalation_level,
            reason=reason,
            escalated_to_user_id=to_user_id,
            queue_id=self.queue_id,
            on_breach=on_breach,
        )

    def resolve(
        self, *, resolution: str, auto_close_after: timedelta, at: datetime, meta: CommandMeta
    ) -> None:
        self._require("resolved", *UNRESOLVED)
        self.trigger_event(
            self.Resolved,
            **self._common(meta, at),
            kind=self.kind,
            queue_id=self.queue_id,
            assignee_user_id=self.assignee_user_id,
            resolution=resolution,
            within_sla=not self.clock.breached and self.clock.remaining(at) > timedelta(0),
            auto_close_at=at + auto_close_after,
        )

    def close(
        self,
        *,
        reason: str,
        at: datetime,
        meta: CommandMeta,
        resolution: str | None = None,
        satisfaction: int | None = None,
    ) -> str | None:
        """``reason`` "confirmed", "resolved" or "auto_closed" closes a resolved ticket (or, with a
        ``resolution``, an unresolved one in one step: the complaint shortcut); "withdrawn" and
        "duplicate" close an unresolved one. A complaint closed as settled gets a call-back: its id is
        returned, for the ``CallBack`` scheduled in the same append."""
        if reason in ("withdrawn", "duplicate"):
            self._require(f"closed as {reason}", *UNRESOLVED)
        elif resolution is None:
            self._require("closed as settled", TicketState.RESOLVED)
        else:
            self._require("resolved and closed", *UNRESOLVED)
        if satisfaction is not None and not 1 <= satisfaction <= 5:
            raise ValidationFailed.single("satisfaction", "range", "a score from 1 (worst) to 5 (best)")
        stopped = self.clock.stop(at)
        settled = reason not in ("withdrawn", "duplicate")
        call_back_id = (
            str(uuid.uuid5(CALL_BACK_NAMESPACE, f"{self.id}:{self.version + 1}"))
            if self.kind == "complaint" and settled
            else None
        )
        self.trigger_event(
            self.Closed,
            **self._common(meta, at),
            kind=self.kind,
            queue_id=self.queue_id,
            assignee_user_id=self.assignee_user_id,
            reason=reason,
            resolution=resolution,
            closed_within_sla=not self.clock.breached and stopped.remaining(at) > timedelta(0),
            satisfaction=satisfaction,
            call_back_id=call_back_id,
        )
        return call_back_id

    def auto_close(self, *, at: datetime, meta: CommandMeta) -> bool:
        """Closes a resolved ticket the customer did not confirm in time (a complaint then has its
        ``call_back_id``); False when it is not due."""
        if self.state != TicketState.RESOLVED or self.auto_close_at is None or at < self.auto_close_at:
            return False
        self.close(reason="auto_closed", at=at, meta=meta)
        return True

    def reopen(self, *, reason: str, reopen_within: timedelta, at: datetime, meta: CommandMeta) -> None:
        self._require("reopened", TicketState.RESOLVED, TicketState.CLOSED)
        if self.closed_at is not None and at - self.closed_at > reopen_within:
            raise InvalidState(
                f"ticket {self.id} was closed on {self.closed_at.date()}, more than "
                f"{reopen_within.days} days ago: open a new ticket instead"
            )
        if self.close_reason in ("withdrawn", "duplicate"):
            raise InvalidState(
                f"ticket {self.id} was closed as {self.close_reason}: open a new ticket instead"
            )
        clock = self.clock.start(at)
        self.trigger_event(
            self.Reopened,
            **self._common(meta, at),
            kind=self.kind,
            reason=reason,
            previous_state=self.state,
            state=self._worked_state(),
            sla_deadline=clock.deadline(),
            sla_warning_at=clock.warning_at(),
        )

    # The clock's own events (the timers) -----------------------------------------------------------

    def warn(self, *, at: datetime, meta: CommandMeta) -> bool:
        """The warning at the share of the window, once; False when it is not due or was given."""
        due = self.clock.warning_at()
        if not self.unresolved or due is None or at < due:
            return False
        self.trigger_event(
            self.SlaWarning,
            **self._common(meta, at),
            queue_id=self.queue_id,
            assignee_user_id=self.assignee_user_id,
            due_at=due,
            sla_deadline=self.clock.deadline(),
        )
        return True

    def breach(self, *, lead_user_id: str | None, at: datetime, meta: CommandMeta) -> bool:
        """The breach at the deadline, once, with an escalation to the queue's lead (level 1) if
        nobody escalated it before; False when it is not due or was recorded."""
        deadline = self.clock.deadline()
        if not self.unresolved or self.clock.breached or deadline is None or at < deadline:
            return False
        self.trigger_event(
            self.SlaBreached,
            **self._common(meta, at),
            kind=self.kind,
            priority=self.priority,
            queue_id=self.queue_id,
            assignee_user_id=self.assignee_user_id,
            sla_deadline=deadline,
        )
        # To the team lead, unless it went past the lead already.
        if self.escalation_level == 0:
            self.escalate(
                level=1,
                reason=f"SLA breached: due {deadline.isoformat()}",
                to_user_id=lead_user_id,
                at=at,
                meta=meta,
                on_breach=True,
            )
        return True
