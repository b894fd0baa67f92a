"""Work follows the customer: when a customer's owner changes (one reassignment, a page of a book
transfer, or the undoing of one), the customer's open opportunities and planned activities held by
a former owner move to the owner now, in one append per owner change.

The reaction runs once per owner change however often the event comes: its command id derives from
the event. Sales keeps the newest owner change it followed per customer (``FollowedOwner``), so an
older change arriving after a newer one (a dead letter requeued) cannot move work backwards: it
only moves what a former owner still holds to the owner now. An undone transfer's owner changes
move the work back the same way."""

from __future__ import annotations

from typing import Any

from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from services.sales.application.planning import AgentDays, Planning
from services.sales.domain.activity import Activity
from services.sales.domain.following import FollowedOwner
from services.sales.domain.opportunity import Opportunity


class HandingOver(Planning):
    @command
    def follow_customer_owner(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """``data``: a ``customer.owner_changed`` envelope."""
        payload = data["payload"]
        customer_id = str(payload["customer_id"])
        followed = self.find(FollowedOwner, FollowedOwner.id_for(customer_id)) or FollowedOwner.start(
            customer_id, meta
        )
        version = int(data["aggregate_version"])
        owner, former = followed.learn(version, payload["previous_agent_id"], payload["new_agent_id"], meta)
        reason = "customer moved to a new owner" + (
            f" by book transfer {payload['transfer_id']}" if payload.get("transfer_id") else ""
        )
        self.work.catch_up()
        opportunity_ids, activity_ids = self.work.open_work_of(customer_id)
        changed: list[CrmAggregate] = [followed] if followed.pending_events else []
        moved = {"opportunities": 0, "activities": 0}
        for opportunity_id in opportunity_ids:
            opportunity = self.find(Opportunity, opportunity_id)
            if opportunity is not None and opportunity.follow_owner(former, owner, version, reason, meta):
                changed.append(opportunity)
                moved["opportunities"] += 1
        days = AgentDays(self, meta)
        for activity_id in activity_ids:
            activity = self.find(Activity, activity_id)
            holder = activity.agent_id if activity is not None else None
            if activity is None or not activity.follow_owner(former, owner, version, reason, meta):
                continue
            # Out of the former owner's days, into the new owner's whatever they hold (the plan
            # shows a clash, for the new owner to reschedule).
            self._release(activity, days, holder=holder)
            self._book(activity, days, force=True)
            changed.append(activity)
            moved["activities"] += 1
        answer = {"customer_id": customer_id, "to_agent_id": owner, **moved}
        return Decision(answer, (*changed, *days.changed()))
