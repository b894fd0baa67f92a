"""Analytics queries over the read models."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.collection import Collection
from pymongo.database import Database

from crm_shared.access import (
    SalesForceScope,
    TeamScope,
    owners_in_scope,
    require_customer_access,
    unknown_customer,
)
from crm_shared.auth import Role
from crm_shared.clock import Clock, utc_now
from crm_shared.domain import CommandMeta
from crm_shared.errors import CustomerMerged, PermissionDenied, ValidationFailed
from services.analytics.audit import AUDIT, audit_page
from services.analytics.catalog import ReadModelCatalog
from services.analytics.changes import Document
from services.analytics.customer_360 import fold, public_view, with_duplicates
from services.analytics.performance import BusinessFigures
from services.analytics.projections import Lag, ProjectionStatus, lag_of
from services.analytics.read_models import PROJECTIONS
from services.analytics.rebuild_jobs import RebuildJobs
from services.analytics.scoring.queries import SegmentQueries
from services.analytics.search import CUSTOMER_SEARCH, find_page
from services.analytics.store import Customer360Store
from services.analytics.targets import SegmentTargets
from services.analytics.timeline import TIMELINE, history_until, timeline_page


class QueueDepths(Protocol):
    def depth(self, queue: str) -> tuple[int, int]:
        """(messages waiting, consumers) of a queue."""
        ...


log = logging.getLogger("crm.analytics")
# Roles that see every customer's 360 view (beside operators and admins).
READS_EVERY_CUSTOMER = (Role.SERVICE_DESK,)


class AnalyticsQueries:
    def __init__(
        self,
        database: Database,
        clock: Clock = utc_now,
        catalog: ReadModelCatalog | None = None,
        queues: QueueDepths | None = None,
    ) -> None:
        self.database = database
        self.catalog = catalog or ReadModelCatalog(database)
        self.customer_360 = Customer360Store(database, self.catalog)
        # The view's "now": what is overdue, whether a ticket's SLA is warned or breached.
        self.clock = clock
        self.queues = queues
        self.status = ProjectionStatus(database)
        self.segments = SegmentQueries(database, clock)
        self.figures = BusinessFigures(database, self.segments, self.catalog)
        self.targets = SegmentTargets(database, self.catalog)
        self.rebuilds = RebuildJobs(database, utc_now)

    def _collection(self, model: str) -> Collection:
        return self.database[self.catalog.targets(model).active]

    def _governing(self, customer_id: str, meta: CommandMeta, scope: TeamScope) -> Document:
        """The customer's document, once the caller may see it. A merged duplicate is its
        survivor's: whoever may act on the survivor learns where it went."""
        doc = self.customer_360.get(customer_id)
        governing = self.customer_360.get(doc["merged_into"]) if doc and doc.get("merged_into") else doc
        # One answer for a customer that is not there (or not yet: a just-registered customer
        # appears within moments) and for one outside the caller's scope.
        require_customer_access(
            meta.actor,
            customer_id,
            governing["owning_agent_id"] if governing else None,
            scope,
            also=READS_EVERY_CUSTOMER,
        )
        assert doc is not None
        if doc.get("merged_into"):
            raise CustomerMerged.into(customer_id, doc["merged_into"])
        return doc

    def get_customer_360(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        customer_id = str(data["customer_id"])
        doc = self._governing(customer_id, meta, scope)
        if data.get("as_of") is not None:
            return self._as_of(customer_id, data["as_of"])
        if doc.get("merged_from"):
            doc = with_duplicates(doc, self.customer_360.merged_into(customer_id))
        view = public_view(doc, self.clock())
        # Tiers, RFM, lifecycle, risk and churn as the last recompute of the book left them.
        view["scores"] = self.segments.scores_of(customer_id)
        return view

    def _as_of(self, customer_id: str, as_of: datetime) -> dict[str, Any]:
        """The view as it was at ``as_of``: the customer's events up to then, folded, shown at that
        moment (what was overdue or breached then). The caller's scope is judged as of now."""
        if as_of > self.clock():
            raise ValidationFailed.single(
                "as_of", "future", "the view as of a moment still to come is unknown"
            )
        moment = as_of.astimezone(UTC).isoformat()
        timeline = self._collection(TIMELINE)
        doc = fold(history_until(timeline, customer_id, moment))
        if doc is None:
            raise unknown_customer(customer_id)  # not registered yet at that moment
        # (A merge is for good: a customer merged then is merged now, and refused before this.)
        duplicates = [
            fold(history_until(timeline, d["customer_id"], moment)) for d in doc.get("merged_from", [])
        ]
        if duplicates:
            doc = with_duplicates(doc, [d for d in duplicates if d is not None])
        view = public_view(doc, as_of)
        view["as_of"] = moment
        return view

    def get_customer_timeline(
        self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope
    ) -> dict[str, Any]:
        customer_id = str(data["customer_id"])
        doc = self._governing(customer_id, meta, scope)
        # A survivor's timeline holds its duplicates' interactions too.
        customers = [customer_id, *(d["customer_id"] for d in doc.get("merged_from", []))]
        page = timeline_page(self._collection(TIMELINE), customers, data["limit"], data["cursor"])
        return {"customer_id": customer_id, **page}

    def find_customers(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = owners_in_scope(meta.actor, scope, also=READS_EVERY_CUSTOMER)
        if owners == []:
            return {"customers": [], "next_cursor": None}
        return find_page(self._collection(CUSTOMER_SEARCH), data, owners, data["limit"], data["cursor"])

    def get_audit_log(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """Who did what to which record, when and why: administrators only."""
        meta.actor.require_role(Role.ADMIN)
        return audit_page(self._collection(AUDIT), data)

    def get_projections(self, _data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        if not meta.actor.sees_everything:
            raise PermissionDenied("only operators and admins see the projections")
        return {"projections": [lag.as_dict() for lag in self.lags()], "rebuilds": self.rebuilds.recent()}

    def start_rebuild(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """A rebuild for ``crm-rebuilds`` to run; refused while one of the same model waits or runs."""
        if not meta.actor.sees_everything:
            raise PermissionDenied("only operators and admins rebuild read models")
        models = sorted(PROJECTIONS) if data["model"] == "all" else [data["model"]]
        job = self.rebuilds.request(models, meta.actor.user_id)
        log.info(
            "rebuild of %s asked for by %s [correlation %s]", models, meta.actor.user_id, meta.correlation_id
        )
        return job

    def lags(self) -> list[Lag]:
        now = self.clock()
        lags = []
        for projection in PROJECTIONS.values():
            waiting, consumers = self.queues.depth(projection.queue) if self.queues else (0, 0)
            status = self.status.get(projection.name)
            building = self.catalog.targets_uncached(projection.name).building
            lags.append(lag_of(projection, status, waiting, consumers, building, now))
        return lags
