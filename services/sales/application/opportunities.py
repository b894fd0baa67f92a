"""Opportunities and pipelines: agents work their own, managers their teams'."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from crm_shared.access import TeamScope, may_act_on
from crm_shared.auth import Caller
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound, ValidationFailed
from crm_shared.rpc import CustomerDirectory
from services.sales.application.base import SELLERS, SalesBase
from services.sales.domain.opportunity import (
    OPEN_STAGES,
    PROBABILITY,
    Opportunity,
    Stage,
    allowed_moves,
    forecast,
)
from services.sales.domain.policy import Policy

PIPELINE_WINDOW = timedelta(days=365)


def yuan(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2).quantize(Decimal("0.01")))


def opportunity_view(opportunity: Opportunity) -> dict[str, Any]:
    stage = Stage(opportunity.stage)
    return {
        "opportunity_id": opportunity.opportunity_id,
        "customer_id": opportunity.customer_id,
        "customer_kind": opportunity.customer_kind,
        "agent_id": opportunity.agent_id,
        "product": opportunity.product,
        "source": opportunity.source,
        "stage": stage.value,
        "probability": str(PROBABILITY[stage]),
        "expected_annual_premium": str(opportunity.expected_annual_premium),
        "weighted_premium": str(opportunity.weighted_premium),
        "expected_close_date": opportunity.expected_close_date.isoformat()
        if opportunity.expected_close_date
        else None,
        "lost_reason": opportunity.lost_reason,
        "policy_number": opportunity.policy_number,
        "next_stages": allowed_moves(stage),
        "version": opportunity.version,
    }


def unknown_opportunity(opportunity_id: str) -> NotFound:
    return NotFound(
        f"no opportunity {opportunity_id} that you may see",
        fields=[FieldError("opportunity_id", "unknown_opportunity", "no such opportunity in your scope")],
    )


def conversion(reached: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage: how many opportunities reached it, how many of those were won and lost since, and
    the win rate among those closed (None while none has closed)."""
    by_stage: dict[str, dict[str, int]] = {}
    for row in reached:
        entry = by_stage.setdefault(row["reached"], {"reached": 0, "won": 0, "lost": 0})
        entry["reached"] += int(row["n"])
        if row["now"] in ("won", "lost"):
            entry[row["now"]] += int(row["n"])
    result: dict[str, dict[str, Any]] = {}
    for stage in (*OPEN_STAGES, Stage.WON, Stage.LOST):
        entry = by_stage.get(stage.value, {"reached": 0, "won": 0, "lost": 0})
        closed = entry["won"] + entry["lost"]
        rate = None if not closed else str((Decimal(entry["won"]) / closed).quantize(Decimal("0.001")))
        result[stage.value] = {**entry, "win_rate": rate}
    return result


class Opportunities(SalesBase):
    def opportunity_in_scope(self, opportunity_id: str, caller: Caller) -> Opportunity:
        opportunity = self.find(Opportunity, opportunity_id)
        if opportunity is None or not may_act_on(caller, opportunity.agent_id, self):
            raise unknown_opportunity(opportunity_id)
        return opportunity

    @command
    def open_opportunity(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        meta.actor.require_role(*SELLERS)
        customer_id = str(data["customer_id"])
        owner = self.owner_in_scope(customer_id, meta, customers, scope)
        self.work.catch_up()
        opportunity = Opportunity.open(
            customer_id=customer_id,
            customer_kind="existing"
            if self.work.holds_policy_in_force(customer_id, self.today())
            else "prospect",
            agent_id=owner,
            product=data["product"],
            expected_annual_premium=data["expected_annual_premium"],
            source=data["source"],
            expected_close_date=data.get("expected_close_date"),
            note=data.get("note"),
            meta=meta,
        )
        return Decision(opportunity_view(opportunity), (opportunity,))

    @command
    def move_opportunity(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*SELLERS)
        opportunity = self.opportunity_in_scope(str(data["opportunity_id"]), meta.actor)
        to_stage = Stage(data["stage"])
        policy_number = data.get("policy_number")
        if policy_number is not None:
            policy = self.find(Policy, Policy.id_for(policy_number))
            if policy is None or policy.customer_id != opportunity.customer_id:
                raise ValidationFailed.single(
                    "policy_number",
                    "unknown_policy",
                    f"no policy {policy_number} of this opportunity's customer",
                )
        opportunity.move(
            to_stage,
            lost_reason=data.get("lost_reason"),
            policy_number=policy_number,
            note=data.get("note"),
            meta=meta,
        )
        return Decision(opportunity_view(opportunity), (opportunity,))

    def get_opportunity(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        return opportunity_view(self.opportunity_in_scope(str(data["opportunity_id"]), meta.actor))

    # Pipelines ----------------------------------------------------------------------------------

    def get_pipeline(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*SELLERS)
        kind, agents = self.agents_in_view(data, meta.actor)
        self.work.catch_up()
        window = self.now() - PIPELINE_WINDOW
        rows = {r["stage"]: r for r in self.work.pipeline_of(agents, closed_since=window)}
        stages = []
        open_count, expected_open, weighted_open = 0, Decimal(0), Decimal(0)
        for stage in (*OPEN_STAGES, Stage.WON, Stage.LOST):
            row = rows.get(stage.value, {"n": 0, "expected": 0})
            expected = Decimal(int(row["expected"] or 0)).scaleb(-2)
            weighted = forecast(expected, stage)
            stages.append(
                {
                    "stage": stage.value,
                    "probability": str(PROBABILITY[stage]),
                    "count": int(row["n"]),
                    "expected_premium": str(expected.quantize(Decimal("0.01"))),
                    "weighted_premium": str(weighted),
                }
            )
            if stage in OPEN_STAGES:
                open_count += int(row["n"])
                expected_open += expected
                weighted_open += weighted
        return {
            "scope": {kind: data.get("agent_id") or data.get("team_id")},
            "agents": agents,
            "stages": stages,
            "open": {
                "count": open_count,
                "expected_premium": str(expected_open.quantize(Decimal("0.01"))),
                # The forecast: expected premium times each stage's probability, summed.
                "forecast": str(weighted_open.quantize(Decimal("0.01"))),
            },
            # Won and lost, and conversion, over the last year: a pipeline is about now.
            "window_days": PIPELINE_WINDOW.days,
            "conversion": conversion(self.work.stages_reached(agents, opened_since=window)),
        }
