"""Nameko entrypoint of the sales context.

Sales learns that a customer exists by asking the customer service over RPC at the moment of the
sale, as the original caller. The customer context is the only source of truth for who exists and who
owns them, and a policy sold to a customer registered a second earlier must not be refused by a
replica that has not caught up. The sales force (teams, agents) lives here: it answers the other
contexts' scope questions (``scope_of``) and is its own scope."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, CrmService, RpcCustomerDirectory
from crm_shared.rpc import Handler
from services.sales.application import SalesApplication


class SalesService(CrmService):
    name = "sales"

    app: SalesApplication = Application(SalesApplication.from_settings)
    customer_rpc = RpcProxy("customer")

    def _command(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler, command=True)

    @rpc
    def sell_policy(self, payload: Any) -> dict:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return self._command(
            "sell_policy",
            schemas.SellPolicy,
            payload,
            lambda data, meta: self.app.sell_policy(data, meta, directory, self.app),
        )

    @rpc
    def get_policy(self, payload: Any) -> dict:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return self.request.run(
            "get_policy",
            schemas.GetPolicy,
            payload,
            lambda data, meta: self.app.get_policy(data, meta, directory, self.app),
        )

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
