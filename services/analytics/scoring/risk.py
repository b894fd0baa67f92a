"""A customer's risk score (0-100) from their claims (how often against the policy-years they held
in the last three years, and what was paid against the premium earned) and their payment
behaviour (lapses, late payments), with the reasons that make it up."""

from __future__ import annotations

from dataclasses import dataclass

from services.analytics.scoring.config import RiskWeights
from services.analytics.scoring.features import Features


@dataclass(frozen=True)
class RiskScore:
    score: int
    reasons: tuple[str, ...]


def risk_score(features: Features, weights: RiskWeights) -> RiskScore:
    parts: list[tuple[float, str]] = []
    if features.claims_36m:
        years = max(features.policy_years_36m, 1 / 12)  # a claim in a first month is not infinite
        frequency = features.claims_36m / years
        parts.append(
            (
                weights.claims_weight * min(1.0, frequency / weights.claims_at),
                f"{features.claims_36m} claims in {years:.1f} policy-years (3 years)",
            )
        )
    if features.claims_paid_36m > 0:
        premium = float(features.premium_36m)
        ratio = float(features.claims_paid_36m) / premium if premium > 0 else float("inf")
        parts.append(
            (
                weights.loss_weight * min(1.0, ratio / weights.loss_at),
                f"claims paid {features.claims_paid_36m} against premium {features.premium_36m} (3 years)",
            )
        )
    if features.lapses_ever:
        parts.append(
            (
                min(weights.lapses_weight, features.lapses_ever * weights.lapse_points),
                f"{features.lapses_ever} lapsed policies",
            )
        )
    if features.late_payments:
        parts.append(
            (
                min(weights.late_weight, features.late_payments * weights.late_points),
                f"{features.late_payments} late payments",
            )
        )
    score = min(100, round(sum(points for points, _ in parts)))
    return RiskScore(score, tuple(reason for points, reason in parts if points > 0))
