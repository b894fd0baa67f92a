"""The churn watch's application: records a customer's churn warning raised or cleared, once per
crossing, in analytics' own event store (relayed to ``crm.events`` like every context's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import ConcurrencyConflict
from crm_shared.eventstore import CrmApplication
from services.analytics.watch.domain import ChurnWatch

# Whose name the warnings are recorded under.
CHURN_WATCH = Caller("service:churn-watch", Role.SYSTEM)


class ChurnWatchApplication(CrmApplication):
    CONTEXT = "analytics"

    def record_crossing(
        self,
        customer_id: str,
        owning_agent_id: str | None,
        raised: bool,
        score: int,
        reasons: list[dict[str, Any]],
        assessed_at: str,
        meta: CommandMeta | None = None,
    ) -> bool:
        """Raise (``raised``) or clear the customer's warning; True if that changed it. Two writers
        seeing the same crossing at once: the later append conflicts, reads the warning again and
        finds nothing left to do."""
        meta = meta or CommandMeta.new(CHURN_WATCH)
        for _attempt in range(3):
            watch = self.find(ChurnWatch, ChurnWatch.id_for(customer_id))
            if watch is None:
                if not raised:
                    return False
                watch = ChurnWatch.first_raise(
                    customer_id, owning_agent_id, score, reasons, assessed_at, meta
                )
                changed = True
            elif raised:
                changed = watch.raise_warning(owning_agent_id, score, reasons, assessed_at, meta)
            else:
                changed = watch.clear(owning_agent_id, score, assessed_at, meta)
            if not changed:
                return False
            try:
                self.save_or_conflict(watch)
                return True
            except ConcurrencyConflict:
                continue
        return False

    def is_at_risk(self, customer_id: str) -> bool:
        watch = self.find(ChurnWatch, ChurnWatch.id_for(customer_id))
        return watch is not None and watch.at_risk


def recorded_by(app: ChurnWatchApplication) -> Any:
    """The recompute's ``on_crossing``: each crossing it sees becomes the customer's warning."""

    def record(features: Any, churn: Any, raised: bool, at: datetime) -> None:
        app.record_crossing(
            features.customer_id,
            features.owning_agent_id,
            raised,
            churn.score,
            [r.as_dict() for r in churn.reasons],
            at.isoformat(),
        )

    return record
