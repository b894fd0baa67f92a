"""After the ticket: the call-back a closed complaint gets, its satisfaction survey (one rotating
set of the question bank), and the praise and suggestions customers give."""

from __future__ import annotations

from typing import Any

from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound, ValidationFailed
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.service_desk.application.base import DESK, TAKERS
from services.service_desk.application.timers import Timers
from services.service_desk.domain.call_back import CallBack
from services.service_desk.domain.feedback import Feedback
from services.service_desk.domain.survey import checked_answers


class Aftercare(Timers):
    def _call_back(self, ticket_id: object) -> CallBack:
        ticket = self.ticket(ticket_id)
        call_back = self.find(CallBack, ticket.call_back_id) if ticket.call_back_id else None
        if call_back is None:
            raise NotFound(
                f"ticket {ticket_id} has no call-back (only a complaint closed as settled gets one)",
                fields=[FieldError("ticket_id", "no_call_back", "this ticket has no call-back")],
            )
        return call_back

    @command
    def record_call_back(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        call_back = self._call_back(data["ticket_id"])
        call_back.record(
            reached=data["reached"],
            satisfied=data.get("satisfied"),
            by_user_id=meta.actor.user_id,
            at=self.now(),
            meta=meta,
        )
        answer = {
            "ticket_id": call_back.ticket_id,
            "call_back_id": call_back.call_back_id,
            "state": call_back.state,
        }
        return Decision(answer, (call_back,))

    def get_survey(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """The set of questions this ticket's call-back asks."""
        meta.actor.require_role(*DESK)
        call_back = self._call_back(data["ticket_id"])
        survey_set = self.bank.set(call_back.survey_set_id)
        return {
            "ticket_id": call_back.ticket_id,
            "call_back_id": call_back.call_back_id,
            "call_back_state": call_back.state,
            "due_at": call_back.due_at.isoformat(),
            "survey_set_id": survey_set.set_id,
            "name": survey_set.name,
            "answered": call_back.survey_answered,
            "questions": [
                {"question_id": q.question_id, "text": q.text, "answer": q.answer}
                for q in survey_set.questions
            ],
        }

    @command
    def record_survey_response(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*DESK)
        call_back = self._call_back(data["ticket_id"])
        answers = checked_answers(self.bank.set(call_back.survey_set_id), data["answers"])
        call_back.answer_survey(answers=answers, by_user_id=meta.actor.user_id, at=self.now(), meta=meta)
        event = call_back.pending_events[-1]
        answer = {
            "ticket_id": call_back.ticket_id,
            "survey_set_id": call_back.survey_set_id,
            "average_score": getattr(event, "average_score", None),
        }
        return Decision(answer, (call_back,))

    def _feedback(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, *, suggestion: bool
    ) -> Decision:
        meta.actor.require_role(*TAKERS)
        customer_id = str(data["customer_id"])
        owning_agent_of_known_customer(customers, customer_id)
        queue_id = None
        if data.get("ticket_id") is not None:
            ticket = self.ticket_in_view(data["ticket_id"], meta.actor, customers)
            if ticket.customer_id != customer_id:
                raise ValidationFailed.single(
                    "ticket_id", "other_customer", f"ticket {ticket.ticket_id} is another customer's"
                )
            queue_id = ticket.queue_id
        feedback = Feedback.record(
            suggestion=suggestion,
            customer_id=customer_id,
            channel=data["channel"],
            about_agent_id=data.get("about_agent_id"),
            about_user_id=data.get("about_user_id"),
            ticket_id=str(data["ticket_id"]) if data.get("ticket_id") else None,
            queue_id=queue_id,
            text=data["text"],
            by_user_id=meta.actor.user_id,
            at=self.now(),
            meta=meta,
        )
        return Decision({"feedback_id": feedback.feedback_id, "customer_id": customer_id}, (feedback,))

    @command
    def record_praise(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory
    ) -> Decision:
        return self._feedback(data, meta, customers, suggestion=False)

    @command
    def record_suggestion(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory
    ) -> Decision:
        return self._feedback(data, meta, customers, suggestion=True)
