"""What the service desk's events do to a customer's 360 document: every ticket with its state and
SLA clock (the view works out on track, warned, breached or paused at the moment it is read), the
call-backs, the satisfaction history (survey scores, call-back answers, scores given on closing),
and the praise and suggestions. Version 1's complaint events land in the same list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts import fields
from services.analytics.changes import Change, Element, Message

DESK_LISTS: dict[str, tuple[str, ...]] = {
    "tickets": ("opened_at", "ticket_id"),
    "call_backs": ("scheduled_at", "call_back_id"),
    "satisfaction_history": ("at", "key"),
    "feedback": ("at", "feedback_id"),
}
DESK_COUNTERS = ("open_ticket_count", "open_complaint_count")


def _ticket(payload: dict[str, Any]) -> Element:
    return Element("tickets", "ticket_id", payload["ticket_id"])


def _opened_counts(kind: str, amount: int) -> dict[str, int]:
    return {"open_ticket_count": amount, **({"open_complaint_count": amount} if kind == "complaint" else {})}


def _item(payload: dict[str, Any], message: Message, **fields: Any) -> dict[str, Any]:
    return {
        "ticket_id": payload["ticket_id"],
        "kind": "complaint",
        "channel": payload["channel"],
        "category": payload["category"],
        "priority": payload["priority"],
        "queue_id": None,
        "assignee_user_id": None,
        "status": "open",
        "opened_at": message["occurred_at"],
        "sla_deadline": payload["sla_deadline"],
        "sla_remaining_seconds": None,
        "sla_warning_at": None,
        "warned_at": None,
        "breached_at": None,
        "escalation_level": 0,
        "resolved_at": None,
        "closed_at": None,
        "close_reason": None,
        "closed_within_sla": None,
        "satisfaction": None,
        **fields,
    }


def _ticket_opened(payload: dict[str, Any], message: Message) -> Change:
    item = _item(
        payload,
        message,
        kind=payload["kind"],
        queue_id=payload["queue_id"],
        sla_warning_at=payload["sla_warning_at"],
        owning_agent_id=payload["owning_agent_id"],
    )
    return Change(push={"tickets": item}, inc=_opened_counts(payload["kind"], 1), holder=_ticket(payload))


def _complaint_opened(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={"tickets": _item(payload, message)}, inc=_opened_counts("complaint", 1), holder=_ticket(payload)
    )


def _satisfaction(key: str, at: str, ticket_id: str | None, source: str, **answer: Any) -> dict[str, Any]:
    return {"key": key, "at": at, "ticket_id": ticket_id, "source": source, **answer}


def _complaint_closed(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={
            "tickets.$.status": "closed",
            "tickets.$.closed_at": message["occurred_at"],
            "tickets.$.closed_within_sla": payload["closed_within_sla"],
            "tickets.$.satisfaction": payload["satisfaction"],
        },
        push={
            "satisfaction_history": _satisfaction(
                message["event_id"],
                message["occurred_at"],
                payload["ticket_id"],
                "closing",
                score=payload["satisfaction"],
            )
        },
        inc=_opened_counts("complaint", -1),
        element=_ticket(payload),
        holder=_ticket(payload),
    )


def _on_ticket(**fields: Any) -> Callable[[dict[str, Any], Message], Change]:
    """A change setting ticket fields from the payload: ``fields`` maps a ticket field to a
    payload field, or to a constant wrapped in a tuple."""

    def change(payload: dict[str, Any], _: Message) -> Change:
        values = {
            f"tickets.$.{name}": source[0] if isinstance(source, tuple) else payload[source]
            for name, source in fields.items()
        }
        return Change(set=values, element=_ticket(payload), holder=_ticket(payload))

    return change


def _resolved(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={
            "tickets.$.status": "resolved",
            "tickets.$.resolved_at": message["occurred_at"],
            "tickets.$.sla_warning_at": None,
        },
        element=_ticket(payload),
        holder=_ticket(payload),
    )


def _closed(payload: dict[str, Any], message: Message) -> Change:
    sets = {
        "tickets.$.status": "closed",
        "tickets.$.closed_at": message["occurred_at"],
        "tickets.$.close_reason": payload["reason"],
        "tickets.$.closed_within_sla": payload["closed_within_sla"],
        "tickets.$.satisfaction": payload["satisfaction"],
        "tickets.$.sla_warning_at": None,
    }
    push = {}
    if payload["satisfaction"] is not None:
        push["satisfaction_history"] = _satisfaction(
            message["event_id"],
            message["occurred_at"],
            payload["ticket_id"],
            "closing",
            score=payload["satisfaction"],
        )
    return Change(
        set=sets,
        push=push,
        inc=_opened_counts(payload["kind"], -1),
        element=_ticket(payload),
        holder=_ticket(payload),
    )


def _reopened(payload: dict[str, Any], message: Message) -> Change:
    change = _clock_runs(payload, message)
    # A ticket reopened from closed counts as open again; one reopened from resolved never stopped.
    return Change(
        set={**change.set, "tickets.$.closed_at": None, "tickets.$.resolved_at": None},
        inc=_opened_counts(payload["kind"], 1) if payload["previous_state"] == "closed" else {},
        element=change.element,
        holder=change.holder,
    )


def _clock_runs(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={
            "tickets.$.status": payload["state"],
            "tickets.$.sla_deadline": payload["sla_deadline"],
            "tickets.$.sla_warning_at": payload["sla_warning_at"],
            "tickets.$.sla_remaining_seconds": None,
        },
        element=_ticket(payload),
        holder=_ticket(payload),
    )


def _call_back_scheduled(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "call_backs": {
                "call_back_id": payload["call_back_id"],
                "ticket_id": payload["ticket_id"],
                "scheduled_at": message["occurred_at"],
                "due_at": payload["due_at"],
                "state": "scheduled",
                "satisfied": None,
            }
        },
        holder=_call_back(payload),
    )


def _call_back(payload: dict[str, Any]) -> Element:
    return Element("call_backs", "call_back_id", payload["call_back_id"])


def _call_back_made(payload: dict[str, Any], message: Message) -> Change:
    element = _call_back(payload)
    sets = {
        "call_backs.$.state": "made" if payload["reached"] else "not_reached",
        "call_backs.$.satisfied": payload["satisfied"],
    }
    if not payload["reached"]:
        return Change(set=sets, element=element, holder=element)
    entry = _satisfaction(
        message["event_id"],
        message["occurred_at"],
        payload["ticket_id"],
        "call_back",
        satisfied=payload["satisfied"],
    )
    return Change(set=sets, push={"satisfaction_history": entry}, element=element, holder=element)


def _survey_answered(payload: dict[str, Any], message: Message) -> Change:
    entry = _satisfaction(
        message["event_id"],
        message["occurred_at"],
        payload["ticket_id"],
        "survey",
        score=payload["average_score"],
        survey_set_id=payload["survey_set_id"],
        # The scores: the view keeps no free text.
        answers=[{"question_id": a["question_id"], "score": a["score"]} for a in payload["answers"]],
    )
    return Change(push={"satisfaction_history": entry}, holder=_call_back(payload))  # the call-back's survey


def _feedback(kind: str) -> Callable[[dict[str, Any], Message], Change]:
    def change(payload: dict[str, Any], message: Message) -> Change:
        return Change(
            push={
                "feedback": {
                    "feedback_id": payload["feedback_id"],
                    "kind": kind,
                    "at": message["occurred_at"],
                    "channel": payload["channel"],
                    "about_agent_id": payload["about_agent_id"],
                    "about_user_id": payload["about_user_id"],
                    "ticket_id": payload["ticket_id"],
                }
            },
            holder=Element("feedback", "feedback_id", payload["feedback_id"]),
        )

    return change


DESK_CHANGES: dict[str, Callable[[dict[str, Any], Message], Change]] = {
    "service_desk.complaint_opened": _complaint_opened,
    "service_desk.complaint_closed": _complaint_closed,
    "service_desk.ticket_opened": _ticket_opened,
    "service_desk.ticket_assigned": _on_ticket(
        queue_id="queue_id", assignee_user_id="assignee_user_id", status="state"
    ),
    # The note's text stays with the desk; the event still counts as the ticket's next version.
    "service_desk.ticket_note_added": lambda payload, _: Change(
        holder=_ticket(payload)
    ),  # the note stays on the desk
    "service_desk.ticket_awaiting_customer": _on_ticket(
        status=("awaiting_customer",),
        sla_deadline=(None,),
        sla_warning_at=(None,),
        sla_remaining_seconds="sla_remaining_seconds",
    ),
    "service_desk.ticket_customer_replied": _clock_runs,
    "service_desk.ticket_escalated": _on_ticket(escalation_level="level"),
    "service_desk.ticket_resolved": _resolved,
    "service_desk.ticket_closed": _closed,
    "service_desk.ticket_reopened": _reopened,
    "service_desk.sla_warning": lambda payload, message: Change(
        set={"tickets.$.warned_at": message["occurred_at"]}, element=_ticket(payload), holder=_ticket(payload)
    ),
    "service_desk.sla_breached": lambda payload, message: Change(
        set={"tickets.$.breached_at": message["occurred_at"]},
        element=_ticket(payload),
        holder=_ticket(payload),
    ),
    "service_desk.call_back_scheduled": _call_back_scheduled,
    "service_desk.call_back_made": _call_back_made,
    "service_desk.survey_answered": _survey_answered,
    "service_desk.praise_recorded": _feedback("praise"),
    "service_desk.suggestion_recorded": _feedback("suggestion"),
}


def sla_state(ticket: dict[str, Any], now: datetime) -> str | None:
    """On track, warned, breached or paused at ``now``; None once resolved or closed."""
    if ticket["status"] not in fields.UNRESOLVED_TICKET_STATES:
        return None
    if ticket.get("breached_at"):
        return "breached"
    deadline = ticket.get("sla_deadline")
    if deadline is None:
        remaining = ticket.get("sla_remaining_seconds")
        return "breached" if remaining is not None and remaining <= 0 else "paused"
    if datetime.fromisoformat(deadline) <= now:
        return "breached"
    warning = ticket.get("sla_warning_at")
    if ticket.get("warned_at") or (warning is not None and datetime.fromisoformat(warning) <= now):
        return "warned"
    return "on_track"
