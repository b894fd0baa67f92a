"""The churn early warning: rules over a customer's facts (lapses, cancellations, complaints and
breaches, low satisfaction, falling premium, no contact for long), each with a weight and a reason,
kept as data. A customer whose score reaches ``raise_at`` is at risk until it falls below
``clear_below`` (the gap keeps a customer near the line from raising and clearing every day)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.analytics.scoring.config import ChurnRule, ChurnRules
from services.analytics.scoring.features import Features


@dataclass(frozen=True)
class Reason:
    rule: str
    weight: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "weight": self.weight, "reason": self.reason}


@dataclass(frozen=True)
class ChurnAssessment:
    score: int
    reasons: tuple[Reason, ...]


def _at_least(value: Callable[[Features], int | None]) -> Callable[[Features, float], bool]:
    return lambda f, threshold: (v := value(f)) is not None and v >= threshold


def _premium_fell(features: Features, share: float) -> bool:
    before = features.premium_prior_12m
    return before > 0 and float(features.premium_12m) <= float(before) * (1 - share)


def _low_satisfaction(features: Features, at_most: float) -> bool:
    return features.last_satisfaction is not None and features.last_satisfaction <= at_most


MEETS: dict[str, Callable[[Features, float], bool]] = {
    "lapses_12m": _at_least(lambda f: f.lapses_12m),
    "cancellations_12m": _at_least(lambda f: f.cancellations_12m),
    "complaints_90d": _at_least(lambda f: f.complaints_90d),
    "complaints_12m": _at_least(lambda f: f.complaints_12m),
    "breaches_12m": _at_least(lambda f: f.breaches_12m),
    "late_payments": _at_least(lambda f: f.late_payments),
    # A customer never contacted counts from their registration.
    "days_since_contact": _at_least(lambda f: f.days_since_contact),
    "last_satisfaction_at_most": _low_satisfaction,
    "premium_fell_by": _premium_fell,
}


def meets(rule: ChurnRule, features: Features) -> bool:
    return MEETS[rule.kind](features, rule.threshold)


def assess(features: Features, rules: ChurnRules) -> ChurnAssessment:
    """The rules a customer meets, and their weights summed (at most 100). A prospect, an erased
    customer or one with nothing in force has nothing to leave: no score."""
    if features.erased or features.policies_in_force == 0:
        return ChurnAssessment(0, ())
    met = tuple(Reason(r.name, r.weight, r.reason) for r in rules.rules if meets(r, features))
    return ChurnAssessment(min(100, sum(r.weight for r in met)), met)


def crossing(at_risk: bool, score: int, rules: ChurnRules) -> bool | None:
    """True when a customer not at risk reaches the threshold (raise), False when one at risk falls
    below the clearing line (clear), None when nothing changes."""
    if not at_risk and score >= rules.raise_at:
        return True
    if at_risk and score < rules.clear_below:
        return False
    return None


def warned(doc: dict[str, Any]) -> bool:
    """Whether the customer's 360 document holds a raised churn warning (the churn watch's word,
    as the projector last applied it). A crossing judged against a document that is a moment behind
    the watch is recorded once all the same: the watch raises a raised warning no second time."""
    return any(isinstance(w, dict) and w.get("state") == "raised" for w in doc.get("churn_warnings") or [])
