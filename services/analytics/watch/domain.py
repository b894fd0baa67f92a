"""The churn watch: analytics' one write-side record, a customer's churn warning. Raised when their
score reaches the warning line, cleared when it falls below the clearing line; raising a raised
warning (or clearing a clear one) records nothing, so the nightly recompute and the live check may
both see the same crossing and the owning agent still gets one follow-up."""

from __future__ import annotations

import uuid
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate

WATCH_NAMESPACE = uuid.UUID("6c1f9e24-3b7a-4d58-9a0e-2f8b5c7d1e43")
RAISED = "analytics.churn_risk_raised"
CLEARED = "analytics.churn_risk_cleared"


class ChurnWatch(CrmAggregate):
    class FirstRaised(CrmAggregate.Created):
        EVENT_TYPE = RAISED
        customer_id: str
        owning_agent_id: str | None
        score: int
        reasons: list[dict[str, Any]]
        assessed_at: str

    class Raised(CrmAggregate.Event):
        EVENT_TYPE = RAISED
        customer_id: str
        owning_agent_id: str | None
        score: int
        reasons: list[dict[str, Any]]
        assessed_at: str

        def apply(self, watch: ChurnWatch) -> None:
            watch.at_risk = True
            watch.score = self.score

    class Cleared(CrmAggregate.Event):
        EVENT_TYPE = CLEARED
        customer_id: str
        owning_agent_id: str | None
        score: int
        assessed_at: str

        def apply(self, watch: ChurnWatch) -> None:
            watch.at_risk = False
            watch.score = self.score

    def __init__(
        self,
        customer_id: str,
        owning_agent_id: str | None,
        score: int,
        reasons: list[dict[str, Any]],
        assessed_at: str,
    ) -> None:
        self.customer_id = customer_id
        self.at_risk = True
        self.score = score

    @staticmethod
    def id_for(customer_id: str) -> uuid.UUID:
        return uuid.uuid5(WATCH_NAMESPACE, customer_id)

    @classmethod
    def first_raise(
        cls,
        customer_id: str,
        owning_agent_id: str | None,
        score: int,
        reasons: list[dict[str, Any]],
        assessed_at: str,
        meta: CommandMeta,
    ) -> ChurnWatch:
        return cls._create(
            cls.FirstRaised,
            id=cls.id_for(customer_id),
            meta=meta.as_event_meta(),
            customer_id=customer_id,
            owning_agent_id=owning_agent_id,
            score=score,
            reasons=reasons,
            assessed_at=assessed_at,
        )

    def raise_warning(
        self,
        owning_agent_id: str | None,
        score: int,
        reasons: list[dict[str, Any]],
        assessed_at: str,
        meta: CommandMeta,
    ) -> bool:
        if self.at_risk:
            return False
        self.trigger_event(
            self.Raised,
            meta=meta.as_event_meta(),
            customer_id=self.customer_id,
            owning_agent_id=owning_agent_id,
            score=score,
            reasons=reasons,
            assessed_at=assessed_at,
        )
        return True

    def clear(self, owning_agent_id: str | None, score: int, assessed_at: str, meta: CommandMeta) -> bool:
        if not self.at_risk:
            return False
        self.trigger_event(
            self.Cleared,
            meta=meta.as_event_meta(),
            customer_id=self.customer_id,
            owning_agent_id=owning_agent_id,
            score=score,
            assessed_at=assessed_at,
        )
        return True
