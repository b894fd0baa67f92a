"""Selling and the policy's life: quotes from the catalogue, policies sold (from a quote or at a
premium given), renewed, paid, lapsed, reinstated, cancelled, and the claims made on them.

Agents act on their own customers' policies, managers on their teams'; the core policy and claims
systems (role ``system``) report payments, lapses and claims, reinstate and cancel, on any policy,
and may not sell or read anyone's personal data."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from crm_shared.access import TeamScope, may_act_on
from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from crm_shared.rpc import CustomerDirectory, owning_agent_of_known_customer
from services.sales.application.base import SELLERS, SalesBase
from services.sales.domain.policy import ClaimStatus, Policy, policy_number_for
from services.sales.domain.rating import Quote, age_on, catalogue_in_force, load_catalogue

# What the core systems report: facts about money and claims, kept where they happen.
CORE_SYSTEM_REPORTS = (Role.SYSTEM, Role.OPERATOR, Role.ADMIN)
SERVICING = (*SELLERS, Role.SYSTEM)
# What the sales force may cancel a policy for; the rest (non-payment, fraud, a death) is decided by
# the core policy system.
SELLERS_CANCEL_FOR = ("customer_request", "cooling_off", "replaced")


def unknown_policy(number: str) -> NotFound:
    return NotFound(
        f"no policy {number} that you may see",
        fields=[FieldError("policy_number", "unknown_policy", "no such policy in your scope")],
    )


def unknown_quote(quote_id: str) -> ValidationFailed:
    return ValidationFailed.single("quote_id", "unknown_quote", f"no quote {quote_id} that you may use")


def policy_view(policy: Policy) -> dict[str, Any]:
    return {
        "policy_number": policy.policy_number,
        "customer_id": policy.customer_id,
        "product": policy.product,
        "annual_premium": str(policy.annual_premium),
        "start_date": policy.start_date.isoformat(),
        "term_start": (policy.term_start or policy.start_date).isoformat(),
        "end_date": policy.end_date.isoformat(),
        "term_years": policy.term_years,
        "agent_id": policy.agent_id,
        "status": policy.status,
        "renewals": policy.renewals,
        "paid_through": policy.paid_through.isoformat() if policy.paid_through else None,
        "lapsed_on": policy.lapsed_on.isoformat() if policy.lapsed_on else None,
        "cancelled_on": policy.cancelled_on.isoformat() if policy.cancelled_on else None,
        "claims": dict(policy.claims or {}),
        "version": policy.version,
    }


def quote_view(quote: Quote) -> dict[str, Any]:
    return {
        "quote_id": quote.quote_id,
        "customer_id": quote.customer_id,
        "agent_id": quote.agent_id,
        "product": quote.product,
        "sum_insured": str(quote.sum_insured),
        "term_years": quote.term_years,
        "start_date": quote.start_date.isoformat(),
        "age": quote.age,
        "age_band": quote.age_band,
        "rate_per_thousand": str(quote.rate_per_thousand),
        "annual_premium": str(quote.annual_premium),
        "catalogue_version": quote.catalogue_version,
        "issued_on": quote.issued_on.isoformat(),
        "valid_until": quote.valid_until.isoformat(),
        "policy_number": quote.policy_number,
    }


class Selling(SalesBase):
    catalogues = load_catalogue()

    # Quotes -------------------------------------------------------------------------------------

    @command
    def issue_quote(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        meta.actor.require_role(*SELLERS)
        customer_id = str(data["customer_id"])
        owner = self.owner_in_scope(customer_id, meta, customers, scope)
        born = customers.birth_date_of(customer_id)
        if born is None:
            raise ValidationFailed.single(
                "customer_id", "no_birth_date", "the customer record holds no birth date"
            )
        today = self.today()
        start = data.get("start_date") or today
        if start < today:
            raise ValidationFailed.single("start_date", "in_the_past", "cover starts today or later")
        catalogue = catalogue_in_force(self.catalogues, today)
        rating = catalogue.rate(data["product"], age_on(born, start), data["term_years"], data["sum_insured"])
        quote = Quote.issue(
            rating=rating,
            customer_id=customer_id,
            agent_id=owner,
            start_date=start,
            issued_on=today,
            valid_days=catalogue.quote_valid_days,
            meta=meta,
        )
        return Decision(quote_view(quote), (quote,))

    def get_quote(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> dict[str, Any]:
        quote = self.find(Quote, data["quote_id"])
        if quote is None or not self._sees_customer(quote.customer_id, meta, customers, scope):
            raise NotFound(
                f"no quote {data['quote_id']} that you may see",
                fields=[FieldError("quote_id", "unknown_quote", "no such quote in your scope")],
            )
        return quote_view(quote) | {"expired": self.today() > quote.valid_until}

    def _usable_quote(self, quote_id: Any, customer_id: str) -> Quote:
        quote = self.find(Quote, quote_id)
        if quote is None:
            raise unknown_quote(str(quote_id))
        quote.require_usable(customer_id, self.today())
        return quote

    def _sellable_quote(self, quote_id: Any, customer_id: str) -> Quote:
        """A quote sold as a new policy: its cover may not start before the sale."""
        quote = self._usable_quote(quote_id, customer_id)
        if quote.start_date < self.today():
            raise ValidationFailed.single(
                "quote_id",
                "start_passed",
                f"quote {quote.quote_id} covers from {quote.start_date}, before today: issue a new quote",
            )
        return quote

    # Selling ------------------------------------------------------------------------------------

    @command
    def sell_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        meta.actor.require_role(*SELLERS)
        customer_id = str(data["customer_id"])
        owning_agent = self.owner_in_scope(customer_id, meta, customers, scope)
        terms: dict[str, Any] = {
            k: data.get(k) for k in ("product", "annual_premium", "term_years", "start_date")
        }
        changed: list[CrmAggregate] = []
        quote: Quote | None = None
        if data.get("quote_id") is not None:
            quote = self._sellable_quote(data["quote_id"], customer_id)
            quoted = {
                "product": quote.product,
                "annual_premium": quote.annual_premium,
                "term_years": quote.term_years,
                "start_date": quote.start_date,
            }
            for name, value in quoted.items():
                if terms[name] is not None and terms[name] != value:
                    raise ValidationFailed.single(
                        name,
                        "differs_from_quote",
                        f"quote {quote.quote_id} says {value}; leave it out or issue a new quote",
                    )
            terms = quoted
        policy = Policy.sell(
            policy_number=policy_number_for(meta.causation_id),
            customer_id=customer_id,
            product=terms["product"],
            annual_premium=terms["annual_premium"],
            start_date=terms["start_date"],
            term_years=terms["term_years"],
            agent_id=owning_agent,
            meta=meta,
        )
        changed.append(policy)
        if quote is not None:
            quote.accept(policy.policy_number, meta)
            changed.append(quote)
        answer = {"policy_number": policy.policy_number, "annual_premium": str(policy.annual_premium)}
        return Decision(answer, tuple(changed))

    # The policy's life --------------------------------------------------------------------------

    def _sees_customer(
        self,
        customer_id: str,
        meta: CommandMeta,
        customers: CustomerDirectory,
        scope: TeamScope,
        also: Iterable[Role] = (),
    ) -> bool:
        caller = meta.actor
        if caller.sees_everything or caller.role in tuple(also):
            return True
        try:
            owner = owning_agent_of_known_customer(customers, customer_id, follow_merge=True)
        except (NotFound, ValidationFailed):
            return False
        return may_act_on(caller, owner, scope)

    def policy_in_scope(
        self,
        number: str,
        meta: CommandMeta,
        customers: CustomerDirectory,
        scope: TeamScope,
        also: Iterable[Role] = (),
    ) -> Policy:
        """Whoever may act on the policy's customer now (its owner may have changed since the
        sale); the roles in ``also`` act on every policy."""
        policy = self.find(Policy, Policy.id_for(number))
        if policy is None or not self._sees_customer(policy.customer_id, meta, customers, scope, also):
            raise unknown_policy(number)
        return policy

    def get_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> dict[str, Any]:
        policy = self.policy_in_scope(
            data["policy_number"], meta, customers, scope, also=(Role.SERVICE_DESK, Role.SYSTEM)
        )
        return policy_view(policy)

    def _serviced(
        self,
        data: dict[str, Any],
        meta: CommandMeta,
        customers: CustomerDirectory,
        scope: TeamScope,
        roles: tuple[Role, ...],
    ) -> Policy:
        """The policy a servicing command names, for a caller of ``roles``: internal systems act on
        every policy, the others on their customers' (see ``policy_in_scope``)."""
        meta.actor.require_role(*roles)
        return self.policy_in_scope(data["policy_number"], meta, customers, scope, also=(Role.SYSTEM,))

    def _acted(self, policy: Policy) -> Decision:
        return Decision(
            {"policy_number": policy.policy_number, "status": policy.status, "version": policy.version},
            (policy,),
        )

    @command
    def renew_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        meta.actor.require_role(*SELLERS)
        policy = self.policy_in_scope(data["policy_number"], meta, customers, scope)
        term_years = data.get("term_years") or policy.term_years
        premium = data.get("annual_premium") or policy.annual_premium
        changed: list[CrmAggregate] = [policy]
        quote_id = None
        if data.get("quote_id") is not None:
            quote = self._usable_quote(data["quote_id"], policy.customer_id)
            if quote.product != policy.product:
                raise ValidationFailed.single(
                    "quote_id", "other_product", f"quote {quote.quote_id} is for {quote.product}"
                )
            if quote.start_date != policy.end_date:
                raise ValidationFailed.single(
                    "quote_id",
                    "other_start",
                    f"a renewal starts on {policy.end_date}: quote for that start date (the age and the "
                    f"catalogue then), not {quote.start_date}",
                )
            term_years, premium, quote_id = quote.term_years, quote.annual_premium, quote.quote_id
            quote.accept(policy.policy_number, meta)
            changed.append(quote)
        policy.renew(
            on=self.today(), term_years=term_years, annual_premium=premium, quote_id=quote_id, meta=meta
        )
        answer = self._acted(policy).answer | {
            "end_date": policy.end_date.isoformat(),
            "annual_premium": str(premium),
        }
        return Decision(answer, tuple(changed))

    @command
    def record_premium_payment(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        policy = self._serviced(data, meta, customers, scope, CORE_SYSTEM_REPORTS)
        paid_on: date = data.get("paid_on") or self.today()
        recorded = policy.pay(
            payment_id=data["payment_id"],
            amount=data["amount"],
            due_date=data["due_date"],
            paid_on=paid_on,
            today=self.today(),
            meta=meta,
        )
        answer = self._acted(policy).answer | {
            "paid_through": policy.paid_through.isoformat() if policy.paid_through else None,
            "already_recorded": not recorded,
        }
        return Decision(answer, (policy,) if recorded else ())

    @command
    def record_policy_lapse(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        policy = self._serviced(data, meta, customers, scope, CORE_SYSTEM_REPORTS)
        policy.lapse(
            missed_due_date=data["missed_due_date"],
            lapsed_on=data.get("lapsed_on") or self.today(),
            today=self.today(),
            meta=meta,
        )
        return self._acted(policy)

    @command
    def reinstate_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        policy = self._serviced(data, meta, customers, scope, SERVICING)
        policy.reinstate(
            on=data.get("reinstated_on") or self.today(), reason=data["reason"], today=self.today(), meta=meta
        )
        return self._acted(policy)

    @command
    def cancel_policy(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        policy = self._serviced(data, meta, customers, scope, SERVICING)
        if (
            meta.actor.role in SELLERS
            and not meta.actor.sees_everything
            and data["reason"] not in SELLERS_CANCEL_FOR
        ):
            raise PermissionDenied(
                f"an agent or a manager cancels for {', '.join(SELLERS_CANCEL_FOR)}; a cancellation for "
                f"{data['reason']} comes from the core policy system or an operator"
            )
        policy.cancel(
            on=data.get("cancelled_on") or self.today(),
            reason=data["reason"],
            note=data.get("note"),
            today=self.today(),
            meta=meta,
        )
        return self._acted(policy)

    @command
    def record_claim(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        policy = self._serviced(data, meta, customers, scope, CORE_SYSTEM_REPORTS)
        changed = policy.record_claim(
            claim_id=data["claim_id"],
            loss_date=data["loss_date"],
            amount_claimed=data["amount_claimed"],
            status=ClaimStatus(data["status"]),
            amount_paid=data.get("amount_paid"),
            meta=meta,
        )
        answer = {
            "policy_number": policy.policy_number,
            "claim_id": data["claim_id"],
            "status": data["status"],
        }
        return Decision(answer, (policy,) if changed else ())
