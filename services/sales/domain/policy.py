"""Policies sold to customers, and their life: renewals, premiums paid, lapses and reinstatements,
cancellations, and the claims made on them.

The state machine (``ALLOWED``): an active policy may be renewed (within its renewal window), paid,
lapse (reported by the core policy system: a premium missed past its grace period) or be cancelled;
a lapsed one may be reinstated (within ``REINSTATEMENT_WINDOW``) or cancelled; a cancelled one is
final. Anything else is ``invalid_state``. Claims are recorded for a loss on a day the policy was in
force, whatever its state now, and follow their own small state machine (``CLAIM_MOVES``)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from contracts import fields
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed

POLICY_NAMESPACE = uuid.UUID("9d1e4b7c-2a65-4f0b-8c3e-7a9f1b2d6e54")
# A renewal is taken from this long before the term ends until this long after.
RENEWAL_OPENS = timedelta(days=90)
RENEWAL_GRACE = timedelta(days=30)
REINSTATEMENT_WINDOW = timedelta(days=730)


class PolicyStatus(StrEnum):
    ACTIVE = "active"
    LAPSED = "lapsed"
    CANCELLED = "cancelled"


class PolicyAction(StrEnum):
    RENEW = "renew"
    PAY = "pay"
    LAPSE = "lapse"
    REINSTATE = "reinstate"
    CANCEL = "cancel"


ALLOWED: dict[PolicyStatus, frozenset[PolicyAction]] = {
    PolicyStatus.ACTIVE: frozenset(
        {PolicyAction.RENEW, PolicyAction.PAY, PolicyAction.LAPSE, PolicyAction.CANCEL}
    ),
    PolicyStatus.LAPSED: frozenset({PolicyAction.REINSTATE, PolicyAction.CANCEL}),
    PolicyStatus.CANCELLED: frozenset(),
}

CANCELLATION_REASONS = fields.CANCELLATION_REASONS


class ClaimStatus(StrEnum):
    REPORTED = "reported"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


CLAIM_MOVES: dict[ClaimStatus, frozenset[ClaimStatus]] = {
    ClaimStatus.REPORTED: frozenset({ClaimStatus.UNDER_REVIEW, ClaimStatus.APPROVED, ClaimStatus.REJECTED}),
    ClaimStatus.UNDER_REVIEW: frozenset({ClaimStatus.APPROVED, ClaimStatus.REJECTED}),
    ClaimStatus.APPROVED: frozenset({ClaimStatus.PAID, ClaimStatus.REJECTED}),
    ClaimStatus.REJECTED: frozenset(),
    ClaimStatus.PAID: frozenset(),
}


def policy_number_for(command_id: str) -> str:
    """The policy number a sale command gets; the same command always gets the same number."""
    return "POL-" + hashlib.sha256(f"policy:{command_id}".encode()).hexdigest()[:16].upper()


def add_years(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a non-leap year
        return start.replace(year=start.year + years, day=28)


class Policy(CrmAggregate):
    class Sold(CrmAggregate.Created):
        EVENT_TYPE = "sales.policy_sold"
        policy_number: str
        customer_id: str
        product: str
        annual_premium: Decimal
        start_date: date
        end_date: date
        term_years: int
        agent_id: str

    class Renewed(CrmAggregate.Event):
        EVENT_TYPE = "sales.policy_renewed"
        policy_number: str
        customer_id: str
        previous_end_date: date
        start_date: date
        end_date: date
        term_years: int
        annual_premium: Decimal
        quote_id: str | None

        def apply(self, policy: Policy) -> None:
            policy.term_start = self.start_date
            policy.end_date = self.end_date
            policy.term_years = self.term_years
            policy.annual_premium = self.annual_premium
            policy.renewals += 1

    class PremiumPaid(CrmAggregate.Event):
        EVENT_TYPE = "sales.premium_paid"
        policy_number: str
        customer_id: str
        payment_id: str
        amount: Decimal
        due_date: date
        paid_on: date
        days_late: int

        def apply(self, policy: Policy) -> None:
            policy.paid_through = max(policy.paid_through or self.due_date, self.due_date)
            policy.paid_due_dates = (*(policy.paid_due_dates or ()), self.due_date)
            policy.payment_ids = (*(policy.payment_ids or ()), self.payment_id)

    class Lapsed(CrmAggregate.Event):
        EVENT_TYPE = "sales.policy_lapsed"
        policy_number: str
        customer_id: str
        missed_due_date: date
        lapsed_on: date

        def apply(self, policy: Policy) -> None:
            policy.status = PolicyStatus.LAPSED.value
            policy.lapsed_on = self.lapsed_on

    class Reinstated(CrmAggregate.Event):
        EVENT_TYPE = "sales.policy_reinstated"
        policy_number: str
        customer_id: str
        lapsed_on: date
        reinstated_on: date
        reason: str

        def apply(self, policy: Policy) -> None:
            policy.status = PolicyStatus.ACTIVE.value
            policy.lapsed_on = None
            policy.gaps = (*(policy.gaps or ()), (self.lapsed_on, self.reinstated_on))

    class Cancelled(CrmAggregate.Event):
        EVENT_TYPE = "sales.policy_cancelled"
        policy_number: str
        customer_id: str
        previous_status: str
        cancelled_on: date
        reason: str
        note: str | None

        def apply(self, policy: Policy) -> None:
            policy.status = PolicyStatus.CANCELLED.value
            policy.cancelled_on = self.cancelled_on

    class ClaimRecorded(CrmAggregate.Event):
        EVENT_TYPE = "sales.claim_recorded"
        policy_number: str
        customer_id: str
        claim_id: str
        loss_date: date
        amount_claimed: Decimal
        status: str
        amount_paid: Decimal | None

        def apply(self, policy: Policy) -> None:
            policy.claims = {**(policy.claims or {}), self.claim_id: self.status}

    class ClaimUpdated(CrmAggregate.Event):
        EVENT_TYPE = "sales.claim_updated"
        policy_number: str
        customer_id: str
        claim_id: str
        previous_status: str
        status: str
        amount_paid: Decimal | None

        def apply(self, policy: Policy) -> None:
            policy.claims = {**(policy.claims or {}), self.claim_id: self.status}

    policy_number: str
    customer_id: str
    product: str
    annual_premium: Decimal
    start_date: date
    end_date: date
    term_years: int
    agent_id: str
    status: str = PolicyStatus.ACTIVE.value
    term_start: date | None = None  # of the term in force, once renewed
    renewals: int = 0
    paid_through: date | None = None  # the latest due date paid
    paid_due_dates: tuple[date, ...] | None = None
    payment_ids: tuple[str, ...] | None = None
    lapsed_on: date | None = None
    # The lapses it was reinstated from: (lapsed on, reinstated on), out of force in between.
    gaps: tuple[tuple[date, date], ...] | None = None
    cancelled_on: date | None = None
    claims: dict[str, str] | None = None  # claim id -> status

    @staticmethod
    def id_for(policy_number: str) -> uuid.UUID:
        return uuid.uuid5(POLICY_NAMESPACE, policy_number)

    @classmethod
    def sell(
        cls,
        *,
        policy_number: str,
        customer_id: str,
        product: str,
        annual_premium: Decimal,
        start_date: date,
        term_years: int,
        agent_id: str,
        meta: CommandMeta,
    ) -> Policy:
        return cls._create(
            cls.Sold,
            id=cls.id_for(policy_number),
            meta=meta.as_event_meta(),
            policy_number=policy_number,
            customer_id=customer_id,
            product=product,
            annual_premium=annual_premium,
            start_date=start_date,
            end_date=add_years(start_date, term_years),
            term_years=term_years,
            agent_id=agent_id,
        )

    # The state machine --------------------------------------------------------------------------

    def may(self, action: PolicyAction) -> bool:
        return action in ALLOWED[PolicyStatus(self.status)]

    def _require(self, action: PolicyAction) -> None:
        if not self.may(action):
            allowed = ", ".join(sorted(a.value for a in ALLOWED[PolicyStatus(self.status)])) or "nothing"
            raise InvalidState(
                f"policy {self.policy_number} is {self.status}: it may not {action.value} "
                f"(a {self.status} policy allows {allowed})"
            )

    def _event(self, event_class: type[CrmAggregate.Event], meta: CommandMeta, **fields: Any) -> None:
        self.trigger_event(
            event_class,
            meta=meta.as_event_meta(),
            policy_number=self.policy_number,
            customer_id=self.customer_id,
            **fields,
        )

    def renew(
        self, *, on: date, term_years: int, annual_premium: Decimal, quote_id: str | None, meta: CommandMeta
    ) -> None:
        self._require(PolicyAction.RENEW)
        if on < self.end_date - RENEWAL_OPENS:
            raise InvalidState(
                f"policy {self.policy_number} runs until {self.end_date}: renewals open on "
                f"{self.end_date - RENEWAL_OPENS}"
            )
        if on > self.end_date + RENEWAL_GRACE:
            raise InvalidState(
                f"policy {self.policy_number} ended on {self.end_date}, more than "
                f"{RENEWAL_GRACE.days} days ago: sell a new policy instead"
            )
        self._event(
            self.Renewed,
            meta,
            previous_end_date=self.end_date,
            start_date=self.end_date,
            end_date=add_years(self.end_date, term_years),
            term_years=term_years,
            annual_premium=annual_premium,
            quote_id=quote_id,
        )

    def pay(
        self,
        *,
        payment_id: str,
        amount: Decimal,
        due_date: date,
        paid_on: date,
        today: date,
        meta: CommandMeta,
    ) -> bool:
        """A premium paid for ``due_date``. The same payment reported again changes nothing (False);
        a second payment for a due date paid already is refused."""
        self._require(PolicyAction.PAY)
        if payment_id in (self.payment_ids or ()):
            return False
        if due_date in (self.paid_due_dates or ()):
            raise ValidationFailed.single(
                "due_date",
                "already_paid",
                f"the premium due {due_date} of policy {self.policy_number} is paid",
            )
        if not self.start_date <= due_date <= self.end_date:
            raise ValidationFailed.single(
                "due_date",
                "outside_term",
                f"policy {self.policy_number} runs {self.start_date} to {self.end_date}",
            )
        if paid_on > today:
            raise ValidationFailed.single(
                "paid_on", "in_the_future", f"a payment is reported once made (today is {today})"
            )
        self._event(
            self.PremiumPaid,
            meta,
            payment_id=payment_id,
            amount=amount,
            due_date=due_date,
            paid_on=paid_on,
            days_late=max(0, (paid_on - due_date).days),
        )
        return True

    def lapse(self, *, missed_due_date: date, lapsed_on: date, today: date, meta: CommandMeta) -> None:
        self._require(PolicyAction.LAPSE)
        if missed_due_date in (self.paid_due_dates or ()):
            raise InvalidState(f"the premium due {missed_due_date} of policy {self.policy_number} was paid")
        if not self.start_date <= missed_due_date <= self.end_date:
            raise ValidationFailed.single(
                "missed_due_date",
                "outside_term",
                f"policy {self.policy_number} runs {self.start_date} to {self.end_date}",
            )
        if lapsed_on <= missed_due_date:
            raise ValidationFailed.single(
                "lapsed_on", "after_due_date", "a policy lapses after the grace period of the missed premium"
            )
        if lapsed_on > today:
            raise ValidationFailed.single(
                "lapsed_on", "in_the_future", f"a lapse is reported once it happened (today is {today})"
            )
        self._event(self.Lapsed, meta, missed_due_date=missed_due_date, lapsed_on=lapsed_on)

    def reinstate(self, *, on: date, reason: str, today: date, meta: CommandMeta) -> None:
        self._require(PolicyAction.REINSTATE)
        assert self.lapsed_on is not None
        if on < self.lapsed_on:
            raise ValidationFailed.single(
                "reinstated_on", "before_lapse", f"policy {self.policy_number} lapsed on {self.lapsed_on}"
            )
        if on > today:
            raise ValidationFailed.single("reinstated_on", "in_the_future", f"today is {today}")
        if on > self.lapsed_on + REINSTATEMENT_WINDOW:
            raise InvalidState(
                f"policy {self.policy_number} lapsed on {self.lapsed_on}: reinstatement is possible for "
                f"{REINSTATEMENT_WINDOW.days} days; sell a new policy instead"
            )
        self._event(self.Reinstated, meta, lapsed_on=self.lapsed_on, reinstated_on=on, reason=reason)

    def cancel(self, *, on: date, reason: str, note: str | None, today: date, meta: CommandMeta) -> None:
        """Cancelled from ``on``: not before the policy was sold (or its cover started, if that was
        earlier), nor before a lapse it is in, nor in the future."""
        self._require(PolicyAction.CANCEL)
        if reason not in CANCELLATION_REASONS:
            raise ValidationFailed.single(
                "reason", "one_of", f"must be one of {', '.join(CANCELLATION_REASONS)}"
            )
        earliest = max(min(self.start_date, self.created_on.date()), self.lapsed_on or date.min)
        if not earliest <= on <= today:
            raise ValidationFailed.single(
                "cancelled_on",
                "range",
                f"policy {self.policy_number} can be cancelled from {earliest} to {today}",
            )
        self._event(
            self.Cancelled, meta, previous_status=self.status, cancelled_on=on, reason=reason, note=note
        )

    # Claims ---------------------------------------------------------------------------------

    def in_force_on(self, day: date) -> bool:
        if not self.start_date <= day < self.end_date:
            return False
        if self.cancelled_on is not None and day >= self.cancelled_on:
            return False
        if any(lapsed <= day < reinstated for lapsed, reinstated in self.gaps or ()):
            return False
        return not (self.lapsed_on is not None and day >= self.lapsed_on)

    def record_claim(
        self,
        *,
        claim_id: str,
        loss_date: date,
        amount_claimed: Decimal,
        status: ClaimStatus,
        amount_paid: Decimal | None,
        meta: CommandMeta,
    ) -> bool:
        """A claim first reported, or a later state of one already recorded. False when it
        changes nothing (the claims system sent the state it had sent)."""
        if status == ClaimStatus.PAID and not amount_paid:
            raise ValidationFailed.single("amount_paid", "required", "a paid claim says how much was paid")
        if status != ClaimStatus.PAID and amount_paid is not None:
            raise ValidationFailed.single(
                "amount_paid", "not_allowed", "only a paid claim has an amount paid"
            )
        known = (self.claims or {}).get(claim_id)
        if known is None:
            if not self.in_force_on(loss_date):
                raise InvalidState(f"policy {self.policy_number} was not in force on {loss_date}")
            self._event(
                self.ClaimRecorded,
                meta,
                claim_id=claim_id,
                loss_date=loss_date,
                amount_claimed=amount_claimed,
                status=status.value,
                amount_paid=amount_paid,
            )
            return True
        if ClaimStatus(known) == status:
            return False
        if status not in CLAIM_MOVES[ClaimStatus(known)]:
            allowed = (
                ", ".join(sorted(s.value for s in CLAIM_MOVES[ClaimStatus(known)])) or "nothing: it is final"
            )
            raise InvalidState(f"claim {claim_id} is {known}; it may become {allowed}")
        self._event(
            self.ClaimUpdated,
            meta,
            claim_id=claim_id,
            previous_status=known,
            status=status.value,
            amount_paid=amount_paid,
        )
        return True
