"""Policies sold to customers."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from decimal import Decimal

from crm_shared.domain import CommandMeta, CrmAggregate

POLICY_NAMESPACE = uuid.UUID("9d1e4b7c-2a65-4f0b-8c3e-7a9f1b2d6e54")


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

    policy_number: str
    customer_id: str
    product: str
    annual_premium: Decimal
    start_date: date
    end_date: date
    term_years: int
    agent_id: str
    status: str = "active"

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
