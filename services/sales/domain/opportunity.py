"""Opportunities: a sale being worked, from first contact to won or lost.

Each stage has a probability of closing; the forecast of an opportunity is its expected annual
premium times that probability. An opportunity moves only along ``TRANSITIONS``: forward one
stage, back one stage from a proposal or a negotiation (the customer asks for another proposal),
won from a proposal or a negotiation, and lost from any open stage (with a reason from
``LOST_REASONS``). Won and lost are final."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from contracts import fields
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed
from services.sales.domain.following import FollowsItsCustomer

OPPORTUNITY_NAMESPACE = uuid.UUID("3e8a1c5d-9b24-4f70-a6d3-1c0e7b9f2a48")


class Stage(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    NEEDS_ANALYSIS = "needs_analysis"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"


OPEN_STAGES = (Stage.NEW, Stage.CONTACTED, Stage.NEEDS_ANALYSIS, Stage.PROPOSAL, Stage.NEGOTIATION)
CLOSED_STAGES = (Stage.WON, Stage.LOST)

PROBABILITY: dict[Stage, Decimal] = {
    Stage.NEW: Decimal("0.10"),
    Stage.CONTACTED: Decimal("0.20"),
    Stage.NEEDS_ANALYSIS: Decimal("0.40"),
    Stage.PROPOSAL: Decimal("0.60"),
    Stage.NEGOTIATION: Decimal("0.80"),
    Stage.WON: Decimal("1.00"),
    Stage.LOST: Decimal("0.00"),
}

TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.NEW: frozenset({Stage.CONTACTED, Stage.LOST}),
    Stage.CONTACTED: frozenset({Stage.NEEDS_ANALYSIS, Stage.LOST}),
    Stage.NEEDS_ANALYSIS: frozenset({Stage.PROPOSAL, Stage.LOST}),
    Stage.PROPOSAL: frozenset({Stage.NEGOTIATION, Stage.NEEDS_ANALYSIS, Stage.WON, Stage.LOST}),
    Stage.NEGOTIATION: frozenset({Stage.PROPOSAL, Stage.WON, Stage.LOST}),
    Stage.WON: frozenset(),
    Stage.LOST: frozenset(),
}

SOURCES = fields.OPPORTUNITY_SOURCES
LOST_REASONS = fields.LOST_REASONS
# Whom an opportunity is for: a customer who holds a policy in force, or a prospect (a customer
# record with none yet).
CUSTOMER_KINDS = fields.CUSTOMER_KINDS


def forecast(expected_annual_premium: Decimal, stage: Stage) -> Decimal:
    """The weighted premium: expected premium times the stage's probability, to the cent."""
    return (expected_annual_premium * PROBABILITY[stage]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def allowed_moves(stage: Stage) -> list[str]:
    return sorted(s.value for s in TRANSITIONS[stage])


class Opportunity(FollowsItsCustomer, CrmAggregate):
    WORK_ID = "opportunity_id"

    class Opened(CrmAggregate.Created):
        EVENT_TYPE = "sales.opportunity_opened"
        opportunity_id: str
        customer_id: str
        customer_kind: str
        agent_id: str
        product: str
        expected_annual_premium: Decimal
        source: str
        stage: str
        probability: Decimal
        expected_close_date: date | None
        note: str | None

    class Moved(CrmAggregate.Event):
        EVENT_TYPE = "sales.opportunity_moved"
        opportunity_id: str
        customer_id: str
        agent_id: str
        from_stage: str
        to_stage: str
        probability: Decimal
        lost_reason: str | None
        policy_number: str | None
        note: str | None

        def apply(self, opportunity: Opportunity) -> None:
            opportunity.stage = self.to_stage
            opportunity.probability = self.probability
            opportunity.lost_reason = self.lost_reason
            opportunity.policy_number = self.policy_number

    class Reassigned(CrmAggregate.Event):
        EVENT_TYPE = "sales.opportunity_reassigned"
        opportunity_id: str
        customer_id: str
        from_agent_id: str
        to_agent_id: str
        reason: str
        # The customer version whose owner change this follows (see ``following.FollowedOwner``).
        owner_version: int

        def apply(self, opportunity: Opportunity) -> None:
            opportunity.agent_id = self.to_agent_id

    opportunity_id: str
    customer_id: str
    customer_kind: str
    agent_id: str
    product: str
    expected_annual_premium: Decimal
    source: str
    stage: str
    probability: Decimal
    expected_close_date: date | None
    note: str | None
    lost_reason: str | None = None
    policy_number: str | None = None

    @classmethod
    def open(
        cls,
        *,
        customer_id: str,
        customer_kind: str,
        agent_id: str,
        product: str,
        expected_annual_premium: Decimal,
        source: str,
        expected_close_date: date | None,
        note: str | None,
        meta: CommandMeta,
        opportunity_id: uuid.UUID | None = None,
    ) -> Opportunity:
        """``opportunity_id``: given where the opportunity's cause names it (a campaign's for a
        customer); derived from the command otherwise."""
        if source not in SOURCES:
            raise ValidationFailed.single("source", "one_of", f"must be one of {', '.join(SOURCES)}")
        if expected_annual_premium <= 0:
            raise ValidationFailed.single("expected_annual_premium", "positive", "must be greater than 0")
        opportunity_id = opportunity_id or meta.derived_id(OPPORTUNITY_NAMESPACE)
        return cls._create(
            cls.Opened,
            id=opportunity_id,
            meta=meta.as_event_meta(),
            opportunity_id=str(opportunity_id),
            customer_id=customer_id,
            customer_kind=customer_kind,
            agent_id=agent_id,
            product=product,
            expected_annual_premium=expected_annual_premium,
            source=source,
            stage=Stage.NEW.value,
            probability=PROBABILITY[Stage.NEW],
            expected_close_date=expected_close_date,
            note=note,
        )

    @property
    def is_open(self) -> bool:
        return Stage(self.stage) in OPEN_STAGES

    @property
    def weighted_premium(self) -> Decimal:
        return forecast(self.expected_annual_premium, Stage(self.stage))

    def move(
        self,
        to_stage: Stage,
        *,
        lost_reason: str | None = None,
        policy_number: str | None = None,
        note: str | None = None,
        meta: CommandMeta,
    ) -> None:
        """``policy_number``: the policy sold, for ``won``; ``lost_reason`` for ``lost``."""
        current = Stage(self.stage)
        if to_stage not in TRANSITIONS[current]:
            if current in CLOSED_STAGES:
                raise InvalidState(f"opportunity {self.opportunity_id} is {current} already")
            raise InvalidState(
                f"an opportunity in {current} moves to {', '.join(allowed_moves(current))}, not {to_stage}"
            )
        if to_stage == Stage.LOST and lost_reason not in LOST_REASONS:
            raise ValidationFailed.single(
                "lost_reason", "required", f"a lost opportunity names why: one of {', '.join(LOST_REASONS)}"
            )
        if to_stage != Stage.LOST and lost_reason is not None:
            raise ValidationFailed.single("lost_reason", "not_allowed", "only a lost opportunity has one")
        if to_stage == Stage.WON and not policy_number:
            raise ValidationFailed.single(
                "policy_number", "required", "a won opportunity names the policy sold"
            )
        if to_stage != Stage.WON and policy_number is not None:
            raise ValidationFailed.single("policy_number", "not_allowed", "only a won opportunity has one")
        self.trigger_event(
            self.Moved,
            meta=meta.as_event_meta(),
            opportunity_id=self.opportunity_id,
            customer_id=self.customer_id,
            agent_id=self.agent_id,
            from_stage=current.value,
            to_stage=to_stage.value,
            probability=PROBABILITY[to_stage],
            lost_reason=lost_reason,
            policy_number=policy_number,
            note=note,
        )
