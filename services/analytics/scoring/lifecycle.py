"""Where a customer is in their life with the insurer: prospect (never a policy), new (a first
policy within ``new_for_days``), active, loyal (a customer for ``loyal_after_years`` with
``loyal_renewals`` renewals), at risk (the churn warning is up), lapsed (nothing in force for less
than ``lost_after_days``), lost (for longer)."""

from __future__ import annotations

from datetime import date

from services.analytics.scoring.config import LifecycleRules
from services.analytics.scoring.features import Features

PROSPECT, NEW, ACTIVE, LOYAL, AT_RISK, LAPSED, LOST = (
    "prospect",
    "new",
    "active",
    "loyal",
    "at_risk",
    "lapsed",
    "lost",
)
LIFECYCLE_STAGES = (PROSPECT, NEW, ACTIVE, LOYAL, AT_RISK, LAPSED, LOST)


def lifecycle_stage(features: Features, today: date, at_risk: bool, rules: LifecycleRules) -> str:
    if features.is_prospect:
        return PROSPECT
    if features.policies_in_force == 0:
        until = features.in_force_until
        if until is None:  # bought, not started yet
            return NEW
        return LAPSED if (today - until).days < rules.lost_after_days else LOST
    if at_risk:
        return AT_RISK
    first = features.first_policy_on
    assert first is not None
    if (today - first).days < rules.new_for_days:
        return NEW
    if (today - first).days >= 365 * rules.loyal_after_years and features.renewals >= rules.loyal_renewals:
        return LOYAL
    return ACTIVE
