"""Nameko entrypoint of the analytics context: queries over the read models, and the history of
its one write-side record (the churn watch) for rebuilds."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.config import Settings
from crm_shared.messaging import BrokerQueues
from crm_shared.nameko_support import Application, EventSourcedService, RpcSalesForce
from services.analytics.application import AnalyticsQueries
from services.analytics.catalog import mongo_client
from services.analytics.watch.application import ChurnWatchApplication


class Queries(DependencyProvider):
    def setup(self) -> None:
        settings = Settings.from_env()
        self.client = mongo_client(settings.mongo_uri)
        database = self.client[settings.mongo_database]
        self.queries = AnalyticsQueries(database, settings.clock(), queues=BrokerQueues(settings.amqp_uri))

    def stop(self) -> None:
        self.client.close()

    def get_dependency(self, worker_ctx: Any) -> AnalyticsQueries:
        return self.queries


class AnalyticsService(EventSourcedService):
    name = "analytics"

    app: ChurnWatchApplication = Application(ChurnWatchApplication.from_settings)
    queries: AnalyticsQueries = Queries()
    sales_rpc = RpcProxy("sales")

    def _scoped(self, operation: str, schema: type[Schema], payload: Any, handler: Any) -> dict:
        """Every query about customers takes the sales force (the scope rule's answers) last."""
        scope = RpcSalesForce(self.sales_rpc)
        return self.request.run(operation, schema, payload, lambda data, meta: handler(data, meta, scope))

    @rpc
    def get_customer_360(self, payload: Any) -> dict:
        return self._scoped(
            "get_customer_360", schemas.GetCustomer360, payload, self.queries.get_customer_360
        )

    @rpc
    def get_customer_timeline(self, payload: Any) -> dict:
        return self._scoped(
            "get_customer_timeline", schemas.GetCustomerTimeline, payload, self.queries.get_customer_timeline
        )

    @rpc
    def find_customers(self, payload: Any) -> dict:
        return self._scoped("find_customers", schemas.FindCustomers, payload, self.queries.find_customers)

    @rpc
    def get_segment_counts(self, payload: Any) -> dict:
        return self._scoped(
            "get_segment_counts", schemas.GetSegmentCounts, payload, self.queries.segments.get_segment_counts
        )

    @rpc
    def list_segment_members(self, payload: Any) -> dict:
        return self._scoped(
            "list_segment_members",
            schemas.ListSegmentMembers,
            payload,
            self.queries.segments.list_segment_members,
        )

    @rpc
    def list_segment_targets(self, payload: Any) -> dict:
        return self._scoped(
            "list_segment_targets",
            schemas.ListSegmentTargets,
            payload,
            self.queries.targets.list_segment_targets,
        )

    @rpc
    def get_agent_performance(self, payload: Any) -> dict:
        return self._scoped(
            "get_agent_performance",
            schemas.GetAgentPerformance,
            payload,
            self.queries.figures.get_agent_performance,
        )

    @rpc
    def get_team_performance(self, payload: Any) -> dict:
        return self._scoped(
            "get_team_performance",
            schemas.GetTeamPerformance,
            payload,
            self.queries.figures.get_team_performance,
        )

    @rpc
    def get_funnel(self, payload: Any) -> dict:
        return self._scoped("get_funnel", schemas.GetFunnel, payload, self.queries.figures.get_funnel)

    @rpc
    def get_complaint_statistics(self, payload: Any) -> dict:
        return self._scoped(
            "get_complaint_statistics",
            schemas.GetComplaintStatistics,
            payload,
            self.queries.figures.get_complaint_statistics,
        )

    @rpc
    def get_audit_log(self, payload: Any) -> dict:
        return self.request.run("get_audit_log", schemas.GetAuditLog, payload, self.queries.get_audit_log)

    @rpc
    def get_projections(self, payload: Any) -> dict:
        return self.request.run(
            "get_projections", schemas.GetProjections, payload, self.queries.get_projections
        )

    @rpc
    def start_rebuild(self, payload: Any) -> dict:
        return self.request.run("start_rebuild", schemas.StartRebuild, payload, self.queries.start_rebuild)
