"""Value tiers by premium earned over the last 12 months (20% of customers bring 80% of the
profit): *VIP* the top ``vip_share`` of the customers who earned any, *important* the rest of the
top ``top_share``, *general* the others, unless they earned less than ``low_value_below`` (*low
value*); *potential* the prospects (never a policy) and the dormant (nothing in force, nothing
bought or paid for ``dormant_after_days``). And the value x churn matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date

from services.analytics.scoring.config import ValueTierRules
from services.analytics.scoring.features import Features

VIP, IMPORTANT, GENERAL, LOW_VALUE, POTENTIAL = "vip", "important", "general", "low_value", "potential"
VALUE_TIERS = (VIP, IMPORTANT, GENERAL, LOW_VALUE, POTENTIAL)
HIGH_VALUE = (VIP, IMPORTANT)

STABLE_HIGH, HIGH_AT_RISK, STABLE_LOW, LOW_AT_RISK, NO_VALUE = (
    "stable_high_value",
    "high_value_at_risk",
    "stable_low_value",
    "low_value_at_risk",
    "no_value",
)
MATRIX_CELLS = (STABLE_HIGH, HIGH_AT_RISK, STABLE_LOW, LOW_AT_RISK, NO_VALUE)
# The premium (cents) a customer needs to be VIP, and to be important.
TierLines = tuple[int, int] | None


def is_potential(features: Features, today: date, rules: ValueTierRules) -> bool:
    if features.is_prospect or features.premium_12m <= 0:
        return True
    dormant_since = features.last_transaction_on
    return features.policies_in_force == 0 and (
        dormant_since is None or (today - dormant_since).days >= rules.dormant_after_days
    )


def tier_sizes(valued: int, rules: ValueTierRules) -> tuple[int, int]:
    """How many of the ``valued`` customers (premium earned, not potential) are VIP, and how many
    are VIP or important: a share rounded up, so that a small book still has its top customers."""
    return math.ceil(valued * rules.vip_share), math.ceil(valued * rules.top_share)


def tier_thresholds(valued: int, premium_at: Callable[[int], int], rules: ValueTierRules) -> TierLines:
    """The premium (cents) of the last VIP and of the last important customer, from the valued
    customers sorted highest premium first (``premium_at(rank)``); None for a book with none."""
    if valued == 0:
        return None
    vip, top = tier_sizes(valued, rules)
    return premium_at(vip - 1), premium_at(top - 1)


def value_tier(premium_cents: int, potential: bool, lines: TierLines, rules: ValueTierRules) -> str:
    """A customer's tier from their premium over 12 months (cents) and the book's lines; customers
    with equal premium share the better tier."""
    if lines is None or potential:
        return POTENTIAL
    vip_line, top_line = lines
    if premium_cents >= vip_line:
        return VIP
    if premium_cents >= top_line:
        return IMPORTANT
    return GENERAL if premium_cents >= rules.low_value_below * 100 else LOW_VALUE


def matrix_cell(tier: str, at_risk: bool) -> str:
    if tier == POTENTIAL:
        return NO_VALUE
    if tier in HIGH_VALUE:
        return HIGH_AT_RISK if at_risk else STABLE_HIGH
    return LOW_AT_RISK if at_risk else STABLE_LOW
