"""Every analytics read model, by name: what the projector runs, ``crm rebuild`` rebuilds and
``crm projections`` reports on."""

from __future__ import annotations

from services.analytics.audit import AUDIT_PROJECTION
from services.analytics.facts import FACTS_PROJECTION
from services.analytics.projections import Projection
from services.analytics.search import SEARCH_PROJECTION
from services.analytics.store import CUSTOMER_360_PROJECTION
from services.analytics.timeline import TIMELINE_PROJECTION

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        CUSTOMER_360_PROJECTION,
        TIMELINE_PROJECTION,
        SEARCH_PROJECTION,
        FACTS_PROJECTION,
        AUDIT_PROJECTION,
    )
}


def consumer_queues() -> dict[str, tuple[str, ...]]:
    """Each projection's queue on crm.events and the event types it is bound to."""
    return {p.queue: p.bindings for p in PROJECTIONS.values()}
