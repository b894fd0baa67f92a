"""Work follows the customer: when a customer's owner changes (one reassignment, a page of a book
transfer, or the undoing of one), the customer's open opportunities and planned activities held by
the previous owner move to the new owner, in one append per owner change.

The reaction runs once per owner change however often the event comes: its command id derives from
the event, and each opportunity and activity keeps the customer version it last followed, so a
change seen again, or an older one arriving after a newer one (a dead letter requeued), moves
nothing. An undone transfer's owner changes move the work back the same way."""

from __future__ import annotations

from typing import Any

from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from services.sales.application.planning import Planning
from services.sales.domain.activity import Activity
from services.sales.domain.opportunity import Opportunity


class HandingOver(Planning):
    @command
    def follow_customer_owner(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """``data``: a ``customer.owner_changed`` envelope."""
        payload = data["payload"]
        customer_id = str(payload["customer_id"])
        previous, new = payload["previous_agent_id"], payload["new_agent_id"]
        version = int(data["aggregate_version"])
        reason = "customer moved to a new owner" + (
            f" by book transfer {payload['transfer_id']}" if payload.get("transfer_id") else ""
        )
        self.work.catch_up()
        opportunity_ids, activity_ids = self.work.open_work_of(customer_id)
        changed: dict[Any, CrmAggregate] = {}
        moved = {"opportunities": 0, "activities": 0}
        for opportunity_id in opportunity_ids:
            opportunity = self.find(Opportunity, opportunity_id)
            if opportunity is not None and opportunity.follow_owner(previous, new, version, reason, meta):
                changed[opportunity.id] = opportunity
                moved["opportunities"] += 1
        for activity_id in activity_ids:
            activity = self.find(Activity, activity_id)
            if activity is None:
                continue
            released = self._release(activity, meta)
            if not activity.follow_owner(previous, new, version, reason, meta):
                continue
            for day in (*released, *self._book(activity, meta, force=True)):
                changed[day.id] = day
            changed[activity.id] = activity
            moved["activities"] += 1
        answer = {"customer_id": customer_id, "to_agent_id": new, **moved}
        return Decision(answer, tuple(changed.values()))
