"""The scoring configuration: value-tier thresholds, lifecycle spans, the RFM watch rule, the risk
weights and the churn rules, kept as data (``services/analytics/config/scoring.json``;
``CRM_SCORING_CONFIG`` points a deployment at its own file). A file that is not usable is refused
whole, with the field that is wrong."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "scoring.json"


class ScoringConfigError(ValueError):
    """The configuration names the field that is wrong and what it must be."""


@dataclass(frozen=True)
class ValueTierRules:
    vip_share: float
    top_share: float
    low_value_below: Decimal
    dormant_after_days: int


@dataclass(frozen=True)
class LifecycleRules:
    new_for_days: int
    loyal_after_years: int
    loyal_renewals: int
    lost_after_days: int


@dataclass(frozen=True)
class RiskWeights:
    claims_weight: int
    claims_at: float  # claims a policy-year at which the claims part is full
    loss_weight: int
    loss_at: float  # paid claims over earned premium at which the loss part is full
    lapses_weight: int
    lapse_points: int
    late_weight: int
    late_points: int


@dataclass(frozen=True)
class ChurnRule:
    name: str
    kind: str
    weight: int
    reason: str
    # The rule's threshold: a count or a number of days ("at_least"), a score ("at_most"), or a
    # share of last year's premium ("share").
    threshold: float


@dataclass(frozen=True)
class ChurnRules:
    raise_at: int
    clear_below: int
    rules: tuple[ChurnRule, ...]


# Rule kinds and the threshold each takes.
CHURN_KINDS = {
    "lapses_12m": "at_least",
    "cancellations_12m": "at_least",
    "complaints_90d": "at_least",
    "complaints_12m": "at_least",
    "breaches_12m": "at_least",
    "late_payments": "at_least",
    "days_since_contact": "at_least",
    "last_satisfaction_at_most": "at_most",
    "premium_fell_by": "share",
}


@dataclass(frozen=True)
class ScoringConfig:
    # The local time of day (the deployment's zone) the book is recomputed at, "HH:MM".
    recompute_at: time
    value: ValueTierRules
    lifecycle: LifecycleRules
    rfm_watch_drop: int
    risk: RiskWeights
    churn: ChurnRules

    @classmethod
    def load(cls, path: Path | None = None) -> ScoringConfig:
        path = path or CONFIG_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ScoringConfigError(f"the scoring configuration {path} is not readable JSON: {e}") from e
        return cls.from_data(data)

    @classmethod
    def from_env(cls) -> ScoringConfig:
        path = os.environ.get("CRM_SCORING_CONFIG")
        return cls.load(Path(path) if path else None)

    @classmethod
    def from_data(cls, data: Any) -> ScoringConfig:
        read = _Reader(data)
        value = ValueTierRules(
            vip_share=read.share("value_tiers.vip_share"),
            top_share=read.share("value_tiers.top_share"),
            low_value_below=read.money("value_tiers.low_value_below"),
            dormant_after_days=read.positive("value_tiers.dormant_after_days"),
        )
        if value.vip_share >= value.top_share:
            raise ScoringConfigError("value_tiers.vip_share must be below value_tiers.top_share")
        churn = ChurnRules(
            raise_at=read.positive("churn.raise_at"),
            clear_below=read.positive("churn.clear_below"),
            rules=tuple(churn_rules(read.get("churn.rules"))),
        )
        if churn.clear_below > churn.raise_at:
            raise ScoringConfigError("churn.clear_below must not be above churn.raise_at")
        try:
            at = time.fromisoformat(read.text("recompute_at"))
        except ValueError:
            raise ScoringConfigError('recompute_at must be a time of day, such as "02:00"') from None
        return cls(
            recompute_at=at,
            value=value,
            lifecycle=LifecycleRules(
                new_for_days=read.positive("lifecycle.new_for_days"),
                loyal_after_years=read.positive("lifecycle.loyal_after_years"),
                loyal_renewals=read.count("lifecycle.loyal_renewals"),
                lost_after_days=read.positive("lifecycle.lost_after_days"),
            ),
            rfm_watch_drop=read.positive("rfm.watch_drop"),
            risk=RiskWeights(
                claims_weight=read.count("risk.claims_per_policy_year.weight"),
                claims_at=read.number("risk.claims_per_policy_year.at"),
                loss_weight=read.count("risk.loss_ratio.weight"),
                loss_at=read.number("risk.loss_ratio.at"),
                lapses_weight=read.count("risk.lapses.weight"),
                lapse_points=read.count("risk.lapses.each"),
                late_weight=read.count("risk.late_payments.weight"),
                late_points=read.count("risk.late_payments.each"),
            ),
            churn=churn,
        )


def churn_rules(data: Any, where: str = "churn.rules") -> list[ChurnRule]:
    """A list of churn rules, each ``{name, kind, weight, reason, <threshold>}``; also the format of
    a rule file given to ``crm churn backtest``."""
    if not isinstance(data, list) or not data:
        raise ScoringConfigError(f"{where} must be a non-empty list of rules")
    rules, names = [], set()
    for index, item in enumerate(data):
        read = _Reader(item, f"{where}.{index}.")
        kind = read.text("kind")
        if kind not in CHURN_KINDS:
            raise ScoringConfigError(f"{where}.{index}.kind must be one of {', '.join(sorted(CHURN_KINDS))}")
        name = read.text("name")
        if name in names:
            raise ScoringConfigError(f"{where}.{index}.name {name!r} is used twice")
        names.add(name)
        threshold_field = CHURN_KINDS[kind]
        threshold = (
            read.share(threshold_field) if threshold_field == "share" else read.number(threshold_field)
        )
        rules.append(ChurnRule(name, kind, read.positive("weight"), read.text("reason"), threshold))
    return rules


class _Reader:
    def __init__(self, data: Any, prefix: str = "") -> None:
        self.data, self.prefix = data, prefix

    def get(self, path: str) -> Any:
        node = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ScoringConfigError(f"{self.prefix}{path} is missing")
            node = node[part]
        return node

    def number(self, path: str) -> float:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ScoringConfigError(f"{self.prefix}{path} must be a number, 0 or more")
        return float(value)

    def share(self, path: str) -> float:
        value = self.number(path)
        if not 0 < value < 1:
            raise ScoringConfigError(f"{self.prefix}{path} must lie between 0 and 1")
        return value

    def count(self, path: str) -> int:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScoringConfigError(f"{self.prefix}{path} must be a whole number, 0 or more")
        return value

    def positive(self, path: str) -> int:
        value = self.count(path)
        if value == 0:
            raise ScoringConfigError(f"{self.prefix}{path} must be 1 or more")
        return value

    def text(self, path: str) -> str:
        value = self.get(path)
        if not isinstance(value, str) or not value.strip():
            raise ScoringConfigError(f"{self.prefix}{path} must be a non-empty text")
        return value

    def money(self, path: str) -> Decimal:
        try:
            value = Decimal(str(self.get(path)))
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value < 0:
            raise ScoringConfigError(f'{self.prefix}{path} must be an amount in yuan, such as "1000.00"')
        return value


def churn_rules_file(path: Path, defaults: ChurnRules) -> ChurnRules:
    """A proposed rule set for a backtest: a JSON list of rules (the warning lines stay as
    configured), or ``{"raise_at", "clear_below", "rules"}``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ScoringConfigError(f"{path} is not readable JSON: {e}") from e
    if isinstance(data, list):
        return ChurnRules(defaults.raise_at, defaults.clear_below, tuple(churn_rules(data, "rules")))
    read = _Reader(data)
    rules = ChurnRules(
        read.positive("raise_at"),
        read.positive("clear_below"),
        tuple(churn_rules(read.get("rules"), "rules")),
    )
    if rules.clear_below > rules.raise_at:
        raise ScoringConfigError("clear_below must not be above raise_at")
    return rules
