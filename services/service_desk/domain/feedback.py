"""What customers tell the desk besides complaints: praise (kept beside complaints, so that good
work is seen as well) and suggestions."""

from __future__ import annotations

import uuid
from datetime import datetime

from crm_shared.domain import CommandMeta, CrmAggregate

FEEDBACK_NAMESPACE = uuid.UUID("6a0d3f92-5c1e-4b87-9e26-d4b8a1c7f035")


class Feedback(CrmAggregate):
    class PraiseRecorded(CrmAggregate.Created):
        EVENT_TYPE = "service_desk.praise_recorded"
        # What the customer wrote stays with the desk.
        PRIVATE = frozenset({"text"})
        feedback_id: str
        customer_id: str
        channel: str
        # Whom the praise is for: an agent, a desk person or a queue (None: the company).
        about_agent_id: str | None
        about_user_id: str | None
        ticket_id: str | None
        # The queue of that ticket (its team counts it), else None.
        queue_id: str | None
        text: str
        recorded_by_user_id: str

    class SuggestionRecorded(PraiseRecorded):
        EVENT_TYPE = "service_desk.suggestion_recorded"

    feedback_id: str
    customer_id: str
    channel: str
    about_agent_id: str | None
    about_user_id: str | None
    ticket_id: str | None
    queue_id: str | None
    text: str
    recorded_by_user_id: str

    @classmethod
    def record(
        cls,
        *,
        suggestion: bool,
        customer_id: str,
        channel: str,
        about_agent_id: str | None,
        about_user_id: str | None,
        ticket_id: str | None,
        queue_id: str | None,
        text: str,
        by_user_id: str,
        at: datetime,
        meta: CommandMeta,
    ) -> Feedback:
        feedback_id = meta.derived_id(FEEDBACK_NAMESPACE)
        return cls._create(
            cls.SuggestionRecorded if suggestion else cls.PraiseRecorded,
            id=feedback_id,
            timestamp=at,
            meta=meta.as_event_meta(),
            feedback_id=str(feedback_id),
            customer_id=customer_id,
            channel=channel,
            about_agent_id=about_agent_id,
            about_user_id=about_user_id,
            ticket_id=ticket_id,
            queue_id=queue_id,
            text=text,
            recorded_by_user_id=by_user_id,
        )
