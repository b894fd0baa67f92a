"""The agent's day: activities planned, done, moved or dropped, and the rules of a daily plan.

Visits and meetings need the agent in person, so two of them may not overlap (``APPOINTMENTS``);
calls, follow-ups and paperwork fit around them. Which appointments an agent has on a day is kept
by an ``AgentDay`` of its own (internal), changed atomically with the activity, so two plans made at
once for the same hour cannot both pass. Times are kept in UTC; a day is a calendar day in the
business's time zone."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from contracts import fields
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed
from services.sales.domain.following import FollowsItsCustomer

ACTIVITY_NAMESPACE = uuid.UUID("f1c83b26-7e4d-4a09-b5d2-6c0a9e3f7b18")
FOLLOW_UP_NAMESPACE = uuid.UUID("0c6e2a9f-3b71-4d58-8e04-a2f9d1b7c365")
AGENT_DAY_NAMESPACE = uuid.UUID("8b5d0f3e-1a62-4c97-9f4b-e7c2a0d6b913")
LONGEST_ACTIVITY = timedelta(hours=12)


class ActivityKind(StrEnum):
    CALL = "call"
    VISIT = "visit"
    MEETING = "meeting"
    FOLLOW_UP = "follow_up"
    PAPERWORK = "paperwork"


APPOINTMENTS = frozenset({ActivityKind.VISIT, ActivityKind.MEETING})


class ActivityState(StrEnum):
    PLANNED = "planned"
    DONE = "done"
    CANCELLED = "cancelled"


OUTCOMES = fields.ACTIVITY_OUTCOMES
SOURCES = fields.ACTIVITY_SOURCES


class PlanStatus(StrEnum):
    """What a daily plan says of an activity, at a moment."""

    DONE = "done"
    CANCELLED = "cancelled"
    OVERDUE = "overdue"  # planned, and its planned end has passed
    TO_COME = "to_come"  # planned, and not over yet (under way, or later)


def utc(moment: datetime) -> datetime:
    """To the second, in UTC (times are compared as text in the plan tables)."""
    if moment.tzinfo is None:
        raise ValidationFailed.single("planned_start", "timezone", "give times with their UTC offset")
    return moment.astimezone(UTC).replace(microsecond=0)


def require_window(start: datetime, end: datetime, field: str = "planned_end") -> None:
    if end <= start:
        raise ValidationFailed.single(field, "after_start", "an activity ends after it starts")
    if end - start > LONGEST_ACTIVITY:
        raise ValidationFailed.single(
            field, "too_long", f"an activity lasts at most {LONGEST_ACTIVITY.seconds // 3600} hours; split it"
        )


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants a business day starts and ends."""
    start = datetime.combine(day, time.min, zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def days_touched(start: datetime, end: datetime, zone: tzinfo) -> list[date]:
    """The business days an activity's time falls on (one, or two across midnight)."""
    first, last = start.astimezone(zone).date(), (end - timedelta(seconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def plan_status(state: str, planned_end: datetime, now: datetime) -> PlanStatus:
    if state == ActivityState.DONE:
        return PlanStatus.DONE
    if state == ActivityState.CANCELLED:
        return PlanStatus.CANCELLED
    return PlanStatus.OVERDUE if planned_end <= now else PlanStatus.TO_COME


@dataclass(frozen=True)
class Booking:
    activity_id: str
    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def clashes(
    bookings: Iterable[Booking], start: datetime, end: datetime, *, ignore: str | None = None
) -> list[str]:
    """The appointments that overlap ``[start, end)`` (half open: one may start as another ends)."""
    return sorted(b.activity_id for b in bookings if b.activity_id != ignore and b.overlaps(start, end))


def follow_up_id(source: str, key: str) -> uuid.UUID:
    """The activity a follow-up request becomes: the same (source, idempotency key) always names the
    same activity, so a request sent twice (a redelivered event) plans it once."""
    return uuid.uuid5(FOLLOW_UP_NAMESPACE, f"{source}:{key}")


class Activity(FollowsItsCustomer, CrmAggregate):
    WORK_ID = "activity_id"

    class Planned(CrmAggregate.Created):
        EVENT_TYPE = "sales.activity_planned"
        activity_id: str
        agent_id: str
        customer_id: str | None
        kind: str
        planned_start: datetime
        planned_end: datetime
        purpose: str
        source: str
        source_key: str | None

    class Rescheduled(CrmAggregate.Event):
        EVENT_TYPE = "sales.activity_rescheduled"
        activity_id: str
        agent_id: str
        customer_id: str | None
        previous_start: datetime
        previous_end: datetime
        planned_start: datetime
        planned_end: datetime
        reason: str

        def apply(self, activity: Activity) -> None:
            activity.planned_start = self.planned_start
            activity.planned_end = self.planned_end

    class Completed(CrmAggregate.Event):
        EVENT_TYPE = "sales.activity_completed"
        activity_id: str
        agent_id: str
        customer_id: str | None
        kind: str
        outcome: str
        notes: str | None
        next_step: str | None
        completed_at: datetime

        def apply(self, activity: Activity) -> None:
            activity.state = ActivityState.DONE.value
            activity.outcome = self.outcome
            activity.completed_at = self.completed_at

    class Cancelled(CrmAggregate.Event):
        EVENT_TYPE = "sales.activity_cancelled"
        activity_id: str
        agent_id: str
        customer_id: str | None
        reason: str

        def apply(self, activity: Activity) -> None:
            activity.state = ActivityState.CANCELLED.value

    class Reassigned(CrmAggregate.Event):
        EVENT_TYPE = "sales.activity_reassigned"
        activity_id: str
        customer_id: str | None
        from_agent_id: str
        to_agent_id: str
        reason: str
        owner_version: int  # the customer's version whose owner change this follows

        def apply(self, activity: Activity) -> None:
            activity.agent_id = self.to_agent_id

    activity_id: str
    agent_id: str
    customer_id: str | None
    kind: str
    planned_start: datetime
    planned_end: datetime
    purpose: str
    source: str
    source_key: str | None
    state: str = ActivityState.PLANNED.value
    outcome: str | None = None
    completed_at: datetime | None = None

    @classmethod
    def plan(
        cls,
        *,
        agent_id: str,
        customer_id: str | None,
        kind: ActivityKind,
        planned_start: datetime,
        planned_end: datetime,
        purpose: str,
        source: str,
        source_key: str | None,
        meta: CommandMeta,
        activity_id: uuid.UUID | None = None,
    ) -> Activity:
        """``activity_id``: given for a follow-up (see ``follow_up_id``); derived from the command
        otherwise."""
        start, end = utc(planned_start), utc(planned_end)
        require_window(start, end)
        if source not in SOURCES:
            raise ValidationFailed.single("source", "one_of", f"must be one of {', '.join(SOURCES)}")
        if kind == ActivityKind.VISIT and customer_id is None:
            raise ValidationFailed.single("customer_id", "required", "a visit is to a customer: name them")
        the_id = activity_id or meta.derived_id(ACTIVITY_NAMESPACE)
        return cls._create(
            cls.Planned,
            id=the_id,
            meta=meta.as_event_meta(),
            activity_id=str(the_id),
            agent_id=agent_id,
            customer_id=customer_id,
            kind=kind.value,
            planned_start=start,
            planned_end=end,
            purpose=purpose,
            source=source,
            source_key=source_key,
        )

    @property
    def is_appointment(self) -> bool:
        return ActivityKind(self.kind) in APPOINTMENTS

    @property
    def is_open(self) -> bool:
        return self.state == ActivityState.PLANNED

    def _require_planned(self, doing: str) -> None:
        if not self.is_open:
            raise InvalidState(f"activity {self.activity_id} is {self.state}: it cannot be {doing}")

    def _event(self, event_class: type[CrmAggregate.Event], meta: CommandMeta, **fields: Any) -> None:
        self.trigger_event(
            event_class,
            meta=meta.as_event_meta(),
            activity_id=self.activity_id,
            customer_id=self.customer_id,
            **fields,
        )

    def reschedule(self, start: datetime, end: datetime, reason: str, meta: CommandMeta) -> None:
        self._require_planned("rescheduled")
        start, end = utc(start), utc(end)
        require_window(start, end)
        if (start, end) == (self.planned_start, self.planned_end):
            raise ValidationFailed.single(
                "planned_start", "unchanged", "the activity is planned for that time"
            )
        self._event(
            self.Rescheduled,
            meta,
            agent_id=self.agent_id,
            previous_start=self.planned_start,
            previous_end=self.planned_end,
            planned_start=start,
            planned_end=end,
            reason=reason,
        )

    def complete(
        self, *, outcome: str, notes: str | None, next_step: str | None, at: datetime, meta: CommandMeta
    ) -> None:
        self._require_planned("completed")
        if outcome not in OUTCOMES:
            raise ValidationFailed.single("outcome", "one_of", f"must be one of {', '.join(OUTCOMES)}")
        self._event(
            self.Completed,
            meta,
            agent_id=self.agent_id,
            kind=self.kind,
            outcome=outcome,
            notes=notes,
            next_step=next_step,
            completed_at=utc(at),
        )

    def cancel(self, reason: str, meta: CommandMeta) -> None:
        self._require_planned("cancelled")
        self._event(self.Cancelled, meta, agent_id=self.agent_id, reason=reason)


class AgentDay(CrmAggregate):
    """The appointments (visits, meetings) one agent has on one business day. Internal."""

    class Started(CrmAggregate.Created):
        agent_id: str
        day: date

    class Booked(CrmAggregate.Event):
        activity_id: str
        start: datetime
        end: datetime

        def apply(self, day: AgentDay) -> None:
            day.bookings = {**day.bookings, self.activity_id: (self.start, self.end)}

    class Released(CrmAggregate.Event):
        activity_id: str

        def apply(self, day: AgentDay) -> None:
            day.bookings = {k: v for k, v in day.bookings.items() if k != self.activity_id}

    def __init__(self, agent_id: str, day: date) -> None:
        self.agent_id = agent_id
        self.day = day
        self.bookings: dict[str, tuple[datetime, datetime]] = {}

    @staticmethod
    def id_for(agent_id: str, day: date) -> uuid.UUID:
        return uuid.uuid5(AGENT_DAY_NAMESPACE, f"{agent_id}:{day.isoformat()}")

    @classmethod
    def start(cls, agent_id: str, day: date, meta: CommandMeta) -> AgentDay:
        return cls._create(
            cls.Started, id=cls.id_for(agent_id, day), meta=meta.as_event_meta(), agent_id=agent_id, day=day
        )

    def booked(self) -> list[Booking]:
        return [Booking(a, s, e) for a, (s, e) in self.bookings.items()]

    def book(
        self, activity_id: str, start: datetime, end: datetime, meta: CommandMeta, *, force: bool = False
    ) -> None:
        """Refuses an appointment that overlaps another of the day, unless ``force`` (an activity
        handed over with its customer lands whatever the new owner's day holds; the plan shows the
        clash)."""
        clashing = clashes(self.booked(), start, end, ignore=activity_id)
        if clashing and not force:
            raise ValidationFailed.single(
                "planned_start",
                "overlaps",
                f"agent {self.agent_id} has another visit or meeting then ({', '.join(clashing)}); "
                "pick another time",
            )
        self.trigger_event(
            self.Booked, meta=meta.as_event_meta(), activity_id=activity_id, start=start, end=end
        )

    def release(self, activity_id: str, meta: CommandMeta) -> None:
        if activity_id in self.bookings:
            self.trigger_event(self.Released, meta=meta.as_event_meta(), activity_id=activity_id)
