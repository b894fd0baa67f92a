"""The agent's day: activities planned, rescheduled, done or cancelled; follow-ups other parts of
the company ask for; the daily plan and a manager's team day."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, overload

from crm_shared.access import TeamScope, may_act_on
from crm_shared.auth import Caller, Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import FieldError, NotFound, ValidationFailed
from crm_shared.rpc import CustomerDirectory
from services.sales.application.base import SELLERS, SalesBase
from services.sales.application.opportunities import yuan
from services.sales.domain.activity import (
    ACTIVITY_NAMESPACE,
    APPOINTMENTS,
    Activity,
    ActivityKind,
    ActivityState,
    AgentDay,
    Booking,
    PlanStatus,
    clashes,
    day_bounds,
    days_touched,
    follow_up_id,
    plan_status,
)
from services.sales.domain.following import FollowedOwner

# Who may ask for follow-up work in an agent's day: process managers and internal systems.
REQUESTERS = (Role.SYSTEM, Role.OPERATOR, Role.ADMIN)
FOLLOW_UP_STARTS = time(9, 0)
FOLLOW_UP_LASTS = timedelta(minutes=30)


def unknown_activity(activity_id: str) -> NotFound:
    return NotFound(
        f"no activity {activity_id} that you may see",
        fields=[FieldError("activity_id", "unknown_activity", "no such activity in your scope")],
    )


def activity_view(activity: Activity) -> dict[str, Any]:
    return {
        "activity_id": activity.activity_id,
        "agent_id": activity.agent_id,
        "customer_id": activity.customer_id,
        "kind": activity.kind,
        "planned_start": activity.planned_start.isoformat(),
        "planned_end": activity.planned_end.isoformat(),
        "purpose": activity.purpose,
        "source": activity.source,
        "state": activity.state,
        "outcome": activity.outcome,
        "completed_at": activity.completed_at.isoformat() if activity.completed_at else None,
        "version": activity.version,
    }


def plan_entry(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "activity_id": row["activity_id"],
        "kind": row["kind"],
        "customer_id": row["customer_id"],
        "planned_start": row["planned_start"],
        "planned_end": row["planned_end"],
        "purpose": row["purpose"],
        "source": row["source"],
        "state": row["state"],
        "status": plan_status(row["state"], datetime.fromisoformat(row["planned_end"]), now).value,
        "outcome": row["outcome"],
        "completed_at": row["completed_at"],
    }


def with_clashes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Marks the planned visits and meetings that overlap another (an activity handed over with its
    customer lands whatever the new owner's day holds)."""
    appointments = {
        e["activity_id"]: Booking(
            e["activity_id"],
            datetime.fromisoformat(e["planned_start"]),
            datetime.fromisoformat(e["planned_end"]),
        )
        for e in entries
        if e["state"] == ActivityState.PLANNED and ActivityKind(e["kind"]) in APPOINTMENTS
    }
    for entry in entries:
        booked = appointments.get(entry["activity_id"])
        entry["clashes_with"] = (
            []
            if booked is None
            else clashes(appointments.values(), booked.start, booked.end, ignore=booked.activity_id)
        )
    return entries


class AgentDays:
    """The agents' days one command touches, each loaded once: the store keeps no aggregate cache,
    so two loads of one day are two copies of one version, and only one of them could be saved."""

    def __init__(self, app: SalesBase, meta: CommandMeta) -> None:
        self.app = app
        self.meta = meta
        self.loaded: dict[uuid.UUID, AgentDay] = {}

    @overload
    def of(self, agent_id: str, day: date) -> AgentDay: ...

    @overload
    def of(self, agent_id: str, day: date, create: bool) -> AgentDay | None: ...

    def of(self, agent_id: str, day: date, create: bool = True) -> AgentDay | None:
        """The agent's day, started if it has none yet (unless not ``create``)."""
        day_id = AgentDay.id_for(agent_id, day)
        if day_id not in self.loaded:
            found = self.app.find(AgentDay, day_id)
            if found is None and not create:
                return None
            self.loaded[day_id] = found or AgentDay.start(agent_id, day, self.meta)
        return self.loaded[day_id]

    def changed(self) -> list[AgentDay]:
        return [d for d in self.loaded.values() if d.pending_events]


class Planning(SalesBase):
    # Loading ------------------------------------------------------------------------------------

    def activity_in_scope(self, activity_id: str, caller: Caller) -> Activity:
        activity = self.find(Activity, activity_id)
        if activity is None or not may_act_on(caller, activity.agent_id, self):
            raise unknown_activity(activity_id)
        return activity

    def agent_in_scope(self, agent_id: str | None, caller: Caller) -> str:
        """The agent whose day it is: the caller by default; refused, as an unknown agent, outside
        the caller's scope or for one who departed."""
        agent_id = agent_id or caller.agent_id
        if not agent_id:
            raise ValidationFailed.single("agent_id", "required", "name the agent whose day it is")
        if not may_act_on(caller, agent_id, self):
            raise ValidationFailed.single("agent_id", "unknown_agent", f"no agent {agent_id} in your scope")
        self.active_agent(agent_id)
        return agent_id

    def _book(self, activity: Activity, days: AgentDays, *, force: bool = False) -> None:
        """Books an appointment in the agent's days it falls on (refused if it overlaps another,
        unless ``force``)."""
        if activity.is_appointment:
            for day in days_touched(activity.planned_start, activity.planned_end, self.zone):
                days.of(activity.agent_id, day).book(
                    activity.activity_id, activity.planned_start, activity.planned_end, days.meta, force=force
                )

    def _release(self, activity: Activity, days: AgentDays, holder: str | None = None) -> None:
        """Frees an appointment's time in the days of ``holder`` (its agent by default)."""
        if activity.is_appointment:
            for day in days_touched(activity.planned_start, activity.planned_end, self.zone):
                if (booked := days.of(holder or activity.agent_id, day, create=False)) is not None:
                    booked.release(activity.activity_id, days.meta)

    # Commands -----------------------------------------------------------------------------------

    @command
    def plan_activity(
        self, data: dict[str, Any], meta: CommandMeta, customers: CustomerDirectory, scope: TeamScope
    ) -> Decision:
        caller = meta.actor
        caller.require_role(*SELLERS)
        agent_id = self.agent_in_scope(data.get("agent_id"), caller)
        customer_id = str(data["customer_id"]) if data.get("customer_id") else None
        if customer_id is not None:
            self.owner_in_scope(customer_id, meta, customers, scope)
        activity = Activity.plan(
            agent_id=agent_id,
            customer_id=customer_id,
            kind=ActivityKind(data["kind"]),
            planned_start=data["planned_start"],
            planned_end=data["planned_end"],
            purpose=data["purpose"],
            source="agent" if caller.agent_id == agent_id else "manager",
            source_key=None,
            meta=meta,
        )
        days = AgentDays(self, meta)
        self._book(activity, days)
        return Decision(activity_view(activity), (activity, *days.changed()))

    @command
    def plan_follow_up(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """Work another part of the company asks for (a churn warning, a campaign, a call-back):
        planned once per (source, idempotency key), however often it is asked for."""
        meta.actor.require_role(*REQUESTERS)
        agent_id = data["agent_id"]
        if self.owner_status(agent_id) != "active":
            raise ValidationFailed.single(
                "agent_id", "unknown_agent", f"{agent_id} is not an active agent or a team's pool"
            )
        activity_id = follow_up_id(data["source"], data["idempotency_key"])
        start = data.get("planned_start") or datetime.combine(data["due_on"], FOLLOW_UP_STARTS, self.zone)
        activity = Activity.plan(
            agent_id=agent_id,
            customer_id=str(data["customer_id"]),
            kind=ActivityKind(data.get("kind") or ActivityKind.FOLLOW_UP),
            planned_start=start,
            planned_end=start + FOLLOW_UP_LASTS,
            purpose=data["purpose"],
            source=data["source"],
            source_key=data["idempotency_key"],
            meta=meta,
            activity_id=activity_id,
        )
        # A call or a follow-up: not an appointment, so it needs no room in the day.
        return Decision(
            activity_view(activity) | {"already_planned": False},
            (activity,),
            explain_conflict=lambda: self._planned_already(activity_id),
        )

    def follow_up_complaint(self, envelope: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """``envelope``: a ``service_desk.ticket_opened`` of a complaint. The customer's owner (the
        newest this context followed, else the one the ticket names) gets a call to the customer
        in their day, on the day it was opened; once however often the event comes. Nothing for
        an owner no longer active: their book moves, and the ticket is the desk's."""
        payload = envelope["payload"]
        customer_id = str(payload["customer_id"])
        owner = self._owner_now(customer_id, payload["owning_agent_id"])
        opened = datetime.fromisoformat(envelope["occurred_at"])
        request = {
            "agent_id": owner,
            "customer_id": customer_id,
            "source": "service_desk",
            "idempotency_key": f"complaint:{payload['ticket_id']}",
            "due_on": opened.astimezone(self.zone).date(),
            "planned_start": None,
            "kind": ActivityKind.CALL.value,
            "purpose": f"Your customer complained ({payload['category']}, {payload['priority']}, by "
            f"{payload['channel']}): call them. Ticket {payload['ticket_id']}, handled by the service desk.",
        }
        if owner is None or self.owner_status(owner) != "active":
            return {"agent_id": owner, "planned": False}
        return self.plan_follow_up(request, meta)

    def follow_up_churn_risk(self, envelope: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """``envelope``: an ``analytics.churn_risk_raised``. The customer's owner (the newest this
        context followed, else the one the warning names) gets a call to the customer in their day,
        on the day the risk was assessed, with the reasons; once per warning however often the
        event comes (a warning raised again after it cleared is another one)."""
        payload = envelope["payload"]
        customer_id = str(payload["customer_id"])
        owner = self._owner_now(customer_id, payload["owning_agent_id"])
        if owner is None or self.owner_status(owner) != "active":
            return {"agent_id": owner, "planned": False}
        assessed = datetime.fromisoformat(payload["assessed_at"])
        reasons = "; ".join(r["reason"] for r in payload["reasons"])
        request = {
            "agent_id": owner,
            "customer_id": customer_id,
            "source": "churn_warning",
            "idempotency_key": f"churn:{envelope['event_id']}",
            "due_on": assessed.astimezone(self.zone).date(),
            "planned_start": None,
            "kind": ActivityKind.CALL.value,
            "purpose": f"Your customer may be leaving (churn score {payload['score']}): {reasons}. "
            "Call them.",
        }
        return self.plan_follow_up(request, meta)

    def _owner_now(self, customer_id: str, named: str | None) -> str | None:
        """The customer's owner: the newest this context followed, else the one the event names."""
        followed = self.find(FollowedOwner, FollowedOwner.id_for(customer_id))
        return followed.owner if followed is not None and followed.owner else named

    def _planned_already(self, activity_id: uuid.UUID) -> Decision | None:
        existing = self.find(Activity, activity_id)
        if existing is None:
            return None
        return Decision(activity_view(existing) | {"already_planned": True})

    @command
    def reschedule_activity(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*SELLERS)
        activity = self.activity_in_scope(str(data["activity_id"]), meta.actor)
        days = AgentDays(self, meta)
        self._release(activity, days)
        activity.reschedule(data["planned_start"], data["planned_end"], data["reason"], meta)
        self._book(activity, days)
        return Decision(activity_view(activity), (activity, *days.changed()))

    @command
    def complete_activity(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*SELLERS)
        activity = self.activity_in_scope(str(data["activity_id"]), meta.actor)
        activity.complete(
            outcome=data["outcome"],
            notes=data.get("notes"),
            next_step=data.get("next_step"),
            at=self.now(),
            meta=meta,
        )
        changed: list[CrmAggregate] = [activity]
        answer = activity_view(activity) | {"next_activity_id": None}
        follow = data.get("follow_up")
        if follow is not None:
            # The next step, planned with the completion: one command, one append.
            next_activity = Activity.plan(
                agent_id=activity.agent_id,
                customer_id=activity.customer_id,
                kind=ActivityKind(follow["kind"]),
                planned_start=follow["planned_start"],
                planned_end=follow["planned_end"],
                purpose=follow["purpose"],
                source=activity.source if activity.source != "manager" else "agent",
                source_key=None,
                meta=meta,
                activity_id=uuid.uuid5(ACTIVITY_NAMESPACE, f"{meta.causation_id}:next"),
            )
            days = AgentDays(self, meta)
            self._book(next_activity, days)
            changed += [next_activity, *days.changed()]
            answer["next_activity_id"] = next_activity.activity_id
        return Decision(answer, tuple(changed))

    @command
    def cancel_activity(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*SELLERS)
        activity = self.activity_in_scope(str(data["activity_id"]), meta.actor)
        activity.cancel(data["reason"], meta)
        days = AgentDays(self, meta)
        self._release(activity, days)
        return Decision(activity_view(activity), (activity, *days.changed()))

    # Queries ------------------------------------------------------------------------------------

    def get_activity(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        return activity_view(self.activity_in_scope(str(data["activity_id"]), meta.actor))

    def get_daily_plan(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        caller = meta.actor
        caller.require_role(*SELLERS)
        agent_id = self.agent_in_view(data.get("agent_id"), caller)
        day: date = data.get("date") or self.today()
        start, end = day_bounds(day, self.zone)
        now = self.now()
        self.work.catch_up()
        entries = with_clashes([plan_entry(r, now) for r in self.work.activities_of(agent_id, start, end)])
        counts = {s.value: 0 for s in PlanStatus}
        for entry in entries:
            counts[entry["status"]] += 1
        earlier = (
            [plan_entry(r, now) for r in self.work.carried_over(agent_id, start)]
            if day <= self.today()
            else []
        )
        return {
            "agent_id": agent_id,
            "date": day.isoformat(),
            "timezone": str(self.zone),
            "as_of": now.isoformat(),
            "activities": entries,
            "counts": counts,
            # Still planned from earlier days: overdue work the day should also see.
            "carried_over": earlier,
        }

    def get_team_day(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        caller = meta.actor
        caller.require_role(Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        _, agents = self.agents_in_view({"team_id": data["team_id"]}, caller)
        day: date = data.get("date") or self.today()
        start, end = day_bounds(day, self.zone)
        now = self.now()
        self.work.catch_up()
        counts = self.work.day_counts(agents, start, end, now)
        moves = self.work.moves_on(agents, start, end)
        sold = self.work.premium_sold(agents, start, end)
        rows = []
        totals = {
            "planned": 0,
            "done": 0,
            "overdue": 0,
            "cancelled": 0,
            "opportunities_moved": 0,
            "policies_sold": 0,
        }
        premium_total = 0
        for agent_id in agents:
            day_counts = counts.get(agent_id, {"planned": 0, "done": 0, "overdue": 0, "cancelled": 0})
            policies, premium = sold.get(agent_id, (0, 0))
            row: dict[str, Any] = {
                "agent_id": agent_id,
                **day_counts,
                "done_share": None
                if not day_counts["planned"]
                else str((Decimal(day_counts["done"]) / day_counts["planned"]).quantize(Decimal("0.01"))),
                "opportunities_moved": moves.get(agent_id, 0),
                "policies_sold": policies,
                "premium_sold": yuan(premium),
            }
            rows.append(row)
            for name in totals:
                totals[name] += int(row[name])
            premium_total += premium
        return {
            "team_id": data["team_id"],
            "date": day.isoformat(),
            "timezone": str(self.zone),
            "as_of": now.isoformat(),
            "agents": rows,
            "totals": {**totals, "premium_sold": yuan(premium_total)},
        }
