"""After a complaint closes, the desk calls the customer back: was it settled, are they satisfied,
and a short survey. A ``CallBack`` is scheduled in the same append as the closing; which survey set
it asks comes from the customer's ``SurveyRotation`` (internal), changed in that append too, so two
complaints closed at once cannot both take the same set."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState
from services.service_desk.domain.survey import SurveyBank, SurveySet, average_score

ROTATION_NAMESPACE = uuid.UUID("3c8e5a17-9f24-4b6d-a0c3-7e1d5f9b2a48")


class CallBack(CrmAggregate):
    class Scheduled(CrmAggregate.Created):
        EVENT_TYPE = "service_desk.call_back_scheduled"
        call_back_id: str
        ticket_id: str
        customer_id: str
        queue_id: str
        assignee_user_id: str | None
        due_at: datetime
        survey_set_id: str

    class Made(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.call_back_made"
        call_back_id: str
        ticket_id: str
        customer_id: str
        queue_id: str
        made_by_user_id: str
        reached: bool
        # Whether the customer says the complaint was settled to their satisfaction (None: not
        # reached, or would not say).
        satisfied: bool | None

        def apply(self, call_back: CallBack) -> None:
            call_back.state = "made" if self.reached else "not_reached"
            call_back.satisfied = self.satisfied

    class SurveyAnswered(CrmAggregate.Event):
        EVENT_TYPE = "service_desk.survey_answered"
        call_back_id: str
        ticket_id: str
        customer_id: str
        queue_id: str
        survey_set_id: str
        answers: list[dict[str, Any]]
        average_score: float | None
        recorded_by_user_id: str

        def apply(self, call_back: CallBack) -> None:
            call_back.survey_answered = True

    call_back_id: str
    ticket_id: str
    customer_id: str
    queue_id: str
    assignee_user_id: str | None
    due_at: datetime
    survey_set_id: str
    state: str = "scheduled"
    satisfied: bool | None = None
    survey_answered: bool = False

    @classmethod
    def schedule(
        cls,
        *,
        call_back_id: str,
        ticket_id: str,
        customer_id: str,
        queue_id: str,
        assignee_user_id: str | None,
        due_at: datetime,
        survey_set: SurveySet,
        at: datetime,
        meta: CommandMeta,
    ) -> CallBack:
        return cls._create(
            cls.Scheduled,
            id=uuid.UUID(call_back_id),
            timestamp=at,
            meta=meta.as_event_meta(),
            call_back_id=call_back_id,
            ticket_id=ticket_id,
            customer_id=customer_id,
            queue_id=queue_id,
            assignee_user_id=assignee_user_id,
            due_at=due_at,
            survey_set_id=survey_set.set_id,
        )

    def _common(self, meta: CommandMeta, at: datetime) -> dict[str, Any]:
        return {
            "timestamp": at,
            "meta": meta.as_event_meta(),
            "call_back_id": self.call_back_id,
            "ticket_id": self.ticket_id,
            "customer_id": self.customer_id,
            "queue_id": self.queue_id,
        }

    def record(
        self, *, reached: bool, satisfied: bool | None, by_user_id: str, at: datetime, meta: CommandMeta
    ) -> None:
        if self.state == "made":
            raise InvalidState(f"the call-back {self.id} was made already")
        self.trigger_event(
            self.Made,
            **self._common(meta, at),
            made_by_user_id=by_user_id,
            reached=reached,
            satisfied=satisfied if reached else None,
        )

    def answer_survey(
        self, *, answers: list[dict[str, Any]], by_user_id: str, at: datetime, meta: CommandMeta
    ) -> None:
        """``answers``: checked against the set already (``survey.checked_answers``)."""
        if self.survey_answered:
            raise InvalidState(f"the survey of call-back {self.id} was answered already")
        if self.state != "made":
            raise InvalidState(
                f"call-back {self.id} is {self.state}: record the call (reached) before its survey"
            )
        self.trigger_event(
            self.SurveyAnswered,
            **self._common(meta, at),
            survey_set_id=self.survey_set_id,
            answers=answers,
            average_score=average_score(answers),
            recorded_by_user_id=by_user_id,
        )


class SurveyRotation(CrmAggregate):
    """Which survey set a customer was given last (internal: never published)."""

    class Started(CrmAggregate.Created):
        customer_id: str

    class Given(CrmAggregate.Event):
        set_id: str

        def apply(self, rotation: SurveyRotation) -> None:
            rotation.last_set_id = self.set_id

    customer_id: str
    last_set_id: str | None = None

    @staticmethod
    def id_for(customer_id: str) -> uuid.UUID:
        return uuid.uuid5(ROTATION_NAMESPACE, customer_id)

    @classmethod
    def start(cls, customer_id: str, at: datetime, meta: CommandMeta) -> SurveyRotation:
        return cls._create(
            cls.Started,
            id=cls.id_for(customer_id),
            timestamp=at,
            meta=meta.as_event_meta(),
            customer_id=customer_id,
        )

    def give_next(self, bank: SurveyBank, at: datetime, meta: CommandMeta) -> SurveySet:
        chosen = bank.next_set(self.customer_id, self.last_set_id)
        self.trigger_event(self.Given, timestamp=at, meta=meta.as_event_meta(), set_id=chosen.set_id)
        return chosen
