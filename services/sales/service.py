"""Nameko entrypoint of the sales context: one line per RPC.

Sales learns that a customer exists, and who owns them, by asking the customer service over RPC at
the moment of the command, as the original caller. The customer context is the only source of truth
for who exists and who owns them, and a policy sold to a customer registered a second earlier must
not be refused by a replica that has not caught up. The sales force (teams, agents) lives here: it
answers the other contexts' scope questions (``scope_of``) and is its own scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema
from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, EventSourcedService, RpcCustomerDirectory, bounded_call
from crm_shared.rpc import Handler
from services.sales.application import SalesApplication
from services.sales.targets import RpcSegmentTargets

# A handler that asks the customer context about the customer: (data, meta, customers, scope).
WithCustomers = Callable[..., Any]


class SalesService(EventSourcedService):
    name = "sales"

    app: SalesApplication = Application(SalesApplication.from_settings)
    customer_rpc = RpcProxy("customer")
    analytics_rpc = RpcProxy("analytics")

    def _command(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler, command=True)

    def _about_customers(self, handler: WithCustomers) -> Handler:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return lambda data, meta: handler(data, meta, directory, self.app)

    def _customer_command(
        self, operation: str, schema: type[Schema], payload: Any, handler: WithCustomers
    ) -> dict:
        return self._command(operation, schema, payload, self._about_customers(handler))

    def _customer_query(
        self, operation: str, schema: type[Schema], payload: Any, handler: WithCustomers
    ) -> dict:
        return self.request.run(operation, schema, payload, self._about_customers(handler))

    # Policies and quotes -------------------------------------------------------------------------

    @rpc
    def sell_policy(self, payload: Any) -> dict:
        return self._customer_command("sell_policy", schemas.SellPolicy, payload, self.app.sell_policy)

    @rpc
    def get_policy(self, payload: Any) -> dict:
        return self._customer_query("get_policy", schemas.GetPolicy, payload, self.app.get_policy)

    @rpc
    def issue_quote(self, payload: Any) -> dict:
        return self._customer_command("issue_quote", schemas.IssueQuote, payload, self.app.issue_quote)

    @rpc
    def get_quote(self, payload: Any) -> dict:
        return self._customer_query("get_quote", schemas.GetQuote, payload, self.app.get_quote)

    @rpc
    def renew_policy(self, payload: Any) -> dict:
        return self._customer_command("renew_policy", schemas.RenewPolicy, payload, self.app.renew_policy)

    @rpc
    def record_premium_payment(self, payload: Any) -> dict:
        return self._customer_command(
            "record_premium_payment", schemas.RecordPremiumPayment, payload, self.app.record_premium_payment
        )

    @rpc
    def record_policy_lapse(self, payload: Any) -> dict:
        return self._customer_command(
            "record_policy_lapse", schemas.RecordPolicyLapse, payload, self.app.record_policy_lapse
        )

    @rpc
    def reinstate_policy(self, payload: Any) -> dict:
        return self._customer_command(
            "reinstate_policy", schemas.ReinstatePolicy, payload, self.app.reinstate_policy
        )

    @rpc
    def cancel_policy(self, payload: Any) -> dict:
        return self._customer_command("cancel_policy", schemas.CancelPolicy, payload, self.app.cancel_policy)

    @rpc
    def record_claim(self, payload: Any) -> dict:
        return self._customer_command("record_claim", schemas.RecordClaim, payload, self.app.record_claim)

    # Opportunities -----------------------------------------------------------------------------

    @rpc
    def open_opportunity(self, payload: Any) -> dict:
        return self._customer_command(
            "open_opportunity", schemas.OpenOpportunity, payload, self.app.open_opportunity
        )

    @rpc
    def move_opportunity(self, payload: Any) -> dict:
        return self._command("move_opportunity", schemas.MoveOpportunity, payload, self.app.move_opportunity)

    @rpc
    def get_opportunity(self, payload: Any) -> dict:
        return self.request.run("get_opportunity", schemas.GetOpportunity, payload, self.app.get_opportunity)

    @rpc
    def get_pipeline(self, payload: Any) -> dict:
        return self.request.run("get_pipeline", schemas.GetPipeline, payload, self.app.get_pipeline)

    # The agent's day ---------------------------------------------------------------------------

    @rpc
    def plan_activity(self, payload: Any) -> dict:
        return self._customer_command("plan_activity", schemas.PlanActivity, payload, self.app.plan_activity)

    @rpc
    def plan_follow_up(self, payload: Any) -> dict:
        return self._command("plan_follow_up", schemas.PlanFollowUp, payload, self.app.plan_follow_up)

    @rpc
    def reschedule_activity(self, payload: Any) -> dict:
        return self._command(
            "reschedule_activity", schemas.RescheduleActivity, payload, self.app.reschedule_activity
        )

    @rpc
    def complete_activity(self, payload: Any) -> dict:
        return self._command(
            "complete_activity", schemas.CompleteActivity, payload, self.app.complete_activity
        )

    @rpc
    def cancel_activity(self, payload: Any) -> dict:
        return self._command("cancel_activity", schemas.CancelActivity, payload, self.app.cancel_activity)

    @rpc
    def get_activity(self, payload: Any) -> dict:
        return self.request.run("get_activity", schemas.GetActivity, payload, self.app.get_activity)

    @rpc
    def get_daily_plan(self, payload: Any) -> dict:
        return self.request.run("get_daily_plan", schemas.GetDailyPlan, payload, self.app.get_daily_plan)

    @rpc
    def get_team_day(self, payload: Any) -> dict:
        return self.request.run("get_team_day", schemas.GetTeamDay, payload, self.app.get_team_day)

    # The sales force ---------------------------------------------------------------------------

    @rpc
    def create_team(self, payload: Any) -> dict:
        return self._command("create_team", schemas.CreateTeam, payload, self.app.create_team)

    @rpc
    def appoint_team_manager(self, payload: Any) -> dict:
        return self._command(
            "appoint_team_manager", schemas.AppointTeamManager, payload, self.app.appoint_team_manager
        )

    @rpc
    def register_agent(self, payload: Any) -> dict:
        return self._command("register_agent", schemas.RegisterAgent, payload, self.app.register_agent)

    @rpc
    def move_agent(self, payload: Any) -> dict:
        return self._command("move_agent", schemas.MoveAgent, payload, self.app.move_agent)

    @rpc
    def record_agent_departure(self, payload: Any) -> dict:
        return self._command(
            "record_agent_departure",
            schemas.RecordAgentDeparture,
            payload,
            self.app.record_agent_departure,
        )

    @rpc
    def get_agent(self, payload: Any) -> dict:
        return self.request.run("get_agent", schemas.GetAgent, payload, self.app.get_agent)

    @rpc
    def get_team(self, payload: Any) -> dict:
        return self.request.run("get_team", schemas.GetTeam, payload, self.app.get_team)

    @rpc
    def plan_succession(self, payload: Any) -> dict:
        return self.request.run("plan_succession", schemas.PlanSuccession, payload, self.app.plan_succession)

    @rpc
    def scope_of(self, payload: Any) -> dict:
        return self.request.run("scope_of", schemas.ScopeOf, payload, self.app.scope_of)

    # Campaigns ---------------------------------------------------------------------------------

    @rpc
    def create_campaign(self, payload: Any) -> dict:
        return self._command("create_campaign", schemas.CreateCampaign, payload, self.app.create_campaign)

    @rpc
    def preview_campaign(self, payload: Any) -> dict:
        # The target is read from analytics as the caller (a manager sees their teams' customers).
        targets = RpcSegmentTargets(
            lambda p: bounded_call(self.analytics_rpc.list_segment_targets, p, "analytics")
        )
        return self.request.run(
            "preview_campaign",
            schemas.PreviewCampaign,
            payload,
            lambda data, meta: self.app.preview_campaign(data, meta, targets),
        )

    @rpc
    def launch_campaign(self, payload: Any) -> dict:
        return self._command("launch_campaign", schemas.LaunchCampaign, payload, self.app.launch_campaign)

    @rpc
    def pause_campaign(self, payload: Any) -> dict:
        return self._command("pause_campaign", schemas.PauseCampaign, payload, self.app.pause_campaign)

    @rpc
    def close_campaign(self, payload: Any) -> dict:
        return self._command("close_campaign", schemas.CloseCampaign, payload, self.app.close_campaign)

    @rpc
    def get_campaign(self, payload: Any) -> dict:
        return self.request.run("get_campaign", schemas.GetCampaign, payload, self.app.get_campaign)

    @rpc
    def list_campaigns(self, payload: Any) -> dict:
        return self.request.run("list_campaigns", schemas.ListCampaigns, payload, self.app.list_campaigns)

    @rpc
    def record_campaign_response(self, payload: Any) -> dict:
        return self._command(
            "record_campaign_response",
            schemas.RecordCampaignResponse,
            payload,
            self.app.record_campaign_response,
        )

    @rpc
    def get_campaign_results(self, payload: Any) -> dict:
        return self.request.run(
            "get_campaign_results", schemas.GetCampaignResults, payload, self.app.get_campaign_results
        )
