"""The service desk's tables beside its store, derived from its own log
(``crm_shared.local_tables``): every ticket's place in its queue and on its SLA clock (what falls due
next and when: the timers' index), the call-backs to make, and per business day, queue and person
the counts the desk's day reports. Times are seconds since the epoch, so that "time to breach" is
arithmetic in either SQL dialect. Read after catching up with the store."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from eventsourcing.utils import get_topic

from contracts import fields
from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables, by_event_name, placeholders
from services.service_desk.domain.call_back import CallBack
from services.service_desk.domain.feedback import Feedback
from services.service_desk.domain.ticket import Ticket

TICKETS = "desk_tickets"
CALL_BACKS = "desk_call_backs"
COUNTS = "desk_day_counts"
POSITIONS = "desk_local_positions"
UNRESOLVED = fields.UNRESOLVED_TICKET_STATES
# The SLA board's state of an unresolved ticket at :now (the first match wins), from its row.
TO_BREACH = "COALESCE(deadline_s - ?, remaining_s)"
SLA_STATE = (
    f"CASE WHEN breached = 1 OR {TO_BREACH} <= 0 THEN 'breached' "
    "WHEN deadline_s IS NULL THEN 'paused' "
    "WHEN warned = 1 OR (warn_s IS NOT NULL AND warn_s <= ?) THEN 'warned' ELSE 'on_track' END"
)
COLUMNS = (
    "ticket_id", "customer_id", "kind", "channel", "category", "priority", "queue_id", "assignee",
    "state", "subject", "escalation_level", "opened_s", "deadline_s", "remaining_s", "warn_s",
    "warned", "breached", "auto_close_s", "closed_s", "next_due_s",
)  # fmt: skip


def seconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def next_due(row: dict[str, Any]) -> int | None:
    """When the row's ticket needs the timers next: its warning, its breach, or (resolved) its
    closing by itself; None when nothing is pending (waiting on the customer, closed)."""
    if row["state"] == "resolved":
        return row["auto_close_s"]
    if row["state"] not in UNRESOLVED or row["deadline_s"] is None:
        return None
    if row["warn_s"] is not None and not row["warned"]:
        return int(row["warn_s"])
    return None if row["breached"] else int(row["deadline_s"])


class DeskTables:
    def __init__(self, app: CrmApplication) -> None:
        self.tables = LocalTables(app)
        self.zone = app.zone
        events = [
            Ticket.Opened, Ticket.Assigned, Ticket.AwaitingCustomer, Ticket.CustomerReplied,
            Ticket.Escalated, Ticket.Resolved, Ticket.Closed, Ticket.Reopened, Ticket.SlaWarning,
            Ticket.SlaBreached, CallBack.Scheduled, CallBack.Made, CallBack.SurveyAnswered,
            Feedback.PraiseRecorded, Feedback.SuggestionRecorded,
        ]  # fmt: skip
        self.projection = LocalProjection(
            self.tables, "desk", [get_topic(e) for e in events], by_event_name(self), POSITIONS
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {TICKETS} ("
            "ticket_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, kind TEXT NOT NULL, "
            "channel TEXT NOT NULL, "
            "category TEXT NOT NULL, priority TEXT NOT NULL, queue_id TEXT NOT NULL, assignee TEXT, "
            "state TEXT NOT NULL, subject TEXT NOT NULL, escalation_level INTEGER NOT NULL, "
            "opened_s BIGINT NOT NULL, deadline_s BIGINT, remaining_s BIGINT, warn_s BIGINT, "
            "warned INTEGER NOT NULL, breached INTEGER NOT NULL, auto_close_s BIGINT, closed_s BIGINT, "
            "next_due_s BIGINT)",
            f"CREATE INDEX IF NOT EXISTS {TICKETS}_due ON {TICKETS} (next_due_s)",
            f"CREATE INDEX IF NOT EXISTS {TICKETS}_by_queue ON {TICKETS} (queue_id, state)",
            f"CREATE INDEX IF NOT EXISTS {TICKETS}_by_assignee ON {TICKETS} (assignee, state)",
            f"CREATE INDEX IF NOT EXISTS {TICKETS}_by_state ON {TICKETS} (state, queue_id, priority)",
            f"CREATE TABLE IF NOT EXISTS {CALL_BACKS} ("
            "call_back_id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, customer_id TEXT NOT NULL, "
            "queue_id TEXT NOT NULL, assignee TEXT, due_s BIGINT NOT NULL, state TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {CALL_BACKS}_by_queue ON {CALL_BACKS} (queue_id, state, due_s)",
            f"CREATE INDEX IF NOT EXISTS {CALL_BACKS}_by_assignee ON {CALL_BACKS} (assignee, state, due_s)",
            f"CREATE TABLE IF NOT EXISTS {COUNTS} ("
            "day TEXT NOT NULL, queue_id TEXT NOT NULL, user_id TEXT NOT NULL, metric TEXT NOT NULL, "
            "n BIGINT NOT NULL, PRIMARY KEY (day, queue_id, user_id, metric))",
            f"CREATE INDEX IF NOT EXISTS {COUNTS}_by_user ON {COUNTS} (user_id, day)",
            f"CREATE INDEX IF NOT EXISTS {COUNTS}_by_queue ON {COUNTS} (queue_id, day)",
        )
        self.projection.create()

    def catch_up(self) -> int:
        return self.projection.catch_up()

    # Writing ------------------------------------------------------------------------------------

    def _day(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()

    def _count(
        self, cursor: Cursor, event: Any, metric: str, queue_id: str | None, user_id: str | None
    ) -> None:
        cursor.execute(
            f"INSERT INTO {COUNTS} (day, queue_id, user_id, metric, n) VALUES (?, ?, ?, ?, 1) "
            f"ON CONFLICT (day, queue_id, user_id, metric) DO UPDATE SET n = {COUNTS}.n + 1",
            (self._day(event.timestamp), queue_id or "", user_id or "", metric),
        )

    @staticmethod
    def _actor(event: Any) -> str:
        return str(event.meta["actor"]["user_id"])

    def _row(self, cursor: Cursor, ticket_id: str) -> dict[str, Any] | None:
        cursor.execute(f"SELECT * FROM {TICKETS} WHERE ticket_id = ?", (ticket_id,))
        rows = cursor.fetchall()
        return rows[0] if rows else None

    def _update(
        self, cursor: Cursor, ticket_id: str, stop_at: datetime | None = None, **changes: Any
    ) -> dict[str, Any] | None:
        """Changes a ticket's row; ``stop_at``: its clock stops then, keeping the time it had left."""
        row = self._row(cursor, ticket_id)
        if row is None:  # a ticket of an older version of the desk
            return None
        if stop_at is not None and row["deadline_s"] is not None:
            row.update(deadline_s=None, remaining_s=row["deadline_s"] - seconds(stop_at), warn_s=None)
        row.update(changes)
        row["next_due_s"] = next_due(row)
        names = [c for c in COLUMNS if c != "ticket_id"]
        cursor.execute(
            f"UPDATE {TICKETS} SET {', '.join(f'{c} = ?' for c in names)} WHERE ticket_id = ?",
            (*(row[c] for c in names), ticket_id),
        )
        return row

    def _ticket_opened(self, cursor: Cursor, e: Ticket.Opened) -> None:
        row: dict[str, Any] = {
            "ticket_id": e.ticket_id, "customer_id": e.customer_id, "kind": e.kind, "channel": e.channel,
            "category": e.category, "priority": e.priority, "queue_id": e.queue_id, "assignee": None,
            "state": "open", "subject": e.subject, "escalation_level": 0, "opened_s": seconds(e.timestamp),
            "deadline_s": seconds(e.sla_deadline), "remaining_s": None, "warn_s": seconds(e.sla_warning_at),
            "warned": 0, "breached": 0, "auto_close_s": None, "closed_s": None,
        }  # fmt: skip
        row["next_due_s"] = next_due(row)
        cursor.execute(
            f"INSERT INTO {TICKETS} ({', '.join(COLUMNS)}) VALUES ({placeholders(COLUMNS)}) "
            "ON CONFLICT (ticket_id) DO NOTHING",
            tuple(row[c] for c in COLUMNS),
        )
        self._count(cursor, e, "tickets_opened", e.queue_id, self._actor(e))
        if e.kind == "complaint":
            self._count(cursor, e, "complaints_recorded", e.queue_id, self._actor(e))

    def _ticket_assigned(self, cursor: Cursor, e: Ticket.Assigned) -> None:
        self._update(cursor, e.ticket_id, queue_id=e.queue_id, assignee=e.assignee_user_id, state=e.state)

    def _ticket_awaitingcustomer(self, cursor: Cursor, e: Ticket.AwaitingCustomer) -> None:
        self._update(
            cursor, e.ticket_id, state="awaiting_customer", deadline_s=None,
            remaining_s=e.sla_remaining_seconds, warn_s=None,
        )  # fmt: skip

    def _running(self, cursor: Cursor, e: Ticket.CustomerReplied | Ticket.Reopened) -> None:
        self._update(
            cursor, e.ticket_id, state=e.state, deadline_s=seconds(e.sla_deadline), remaining_s=None,
            warn_s=seconds(e.sla_warning_at), auto_close_s=None, closed_s=None,
        )  # fmt: skip

    _ticket_customerreplied = _running
    _ticket_reopened = _running

    def _ticket_escalated(self, cursor: Cursor, e: Ticket.Escalated) -> None:
        self._update(cursor, e.ticket_id, escalation_level=e.level)

    def _ticket_resolved(self, cursor: Cursor, e: Ticket.Resolved) -> None:
        self._update(
            cursor, e.ticket_id, stop_at=e.timestamp, state="resolved", auto_close_s=seconds(e.auto_close_at)
        )
        self._count(cursor, e, "resolved", e.queue_id, e.assignee_user_id)

    def _ticket_closed(self, cursor: Cursor, e: Ticket.Closed) -> None:
        self._update(cursor, e.ticket_id, stop_at=e.timestamp, state="closed", closed_s=seconds(e.timestamp))
        if e.reason not in ("withdrawn", "duplicate"):
            metric = "closed_within_sla" if e.closed_within_sla else "closed_late"
            self._count(cursor, e, metric, e.queue_id, e.assignee_user_id)

    def _ticket_slawarning(self, cursor: Cursor, e: Ticket.SlaWarning) -> None:
        self._update(cursor, e.ticket_id, warned=1)
        self._count(cursor, e, "warned", e.queue_id, e.assignee_user_id)

    def _ticket_slabreached(self, cursor: Cursor, e: Ticket.SlaBreached) -> None:
        self._update(cursor, e.ticket_id, breached=1)
        self._count(cursor, e, "breached", e.queue_id, e.assignee_user_id)

    def _callback_scheduled(self, cursor: Cursor, e: CallBack.Scheduled) -> None:
        cursor.execute(
            f"INSERT INTO {CALL_BACKS} "
            "(call_back_id, ticket_id, customer_id, queue_id, assignee, due_s, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'scheduled') ON CONFLICT (call_back_id) DO NOTHING",
            (e.call_back_id, e.ticket_id, e.customer_id, e.queue_id, e.assignee_user_id, seconds(e.due_at)),
        )

    def _callback_made(self, cursor: Cursor, e: CallBack.Made) -> None:
        state = "made" if e.reached else "not_reached"
        cursor.execute(f"UPDATE {CALL_BACKS} SET state = ? WHERE call_back_id = ?", (state, e.call_back_id))
        self._count(
            cursor,
            e,
            "call_backs_made" if e.reached else "call_backs_not_reached",
            e.queue_id,
            e.made_by_user_id,
        )
        if e.satisfied:
            self._count(cursor, e, "call_backs_satisfied", e.queue_id, e.made_by_user_id)

    def _callback_surveyanswered(self, cursor: Cursor, e: CallBack.SurveyAnswered) -> None:
        self._count(cursor, e, "surveys_answered", e.queue_id, e.recorded_by_user_id)

    def _feedback_praiserecorded(self, cursor: Cursor, e: Feedback.PraiseRecorded) -> None:
        self._count(cursor, e, "praise_recorded", e.queue_id, e.recorded_by_user_id)

    def _feedback_suggestionrecorded(self, cursor: Cursor, e: Feedback.SuggestionRecorded) -> None:
        self._count(cursor, e, "suggestions_recorded", e.queue_id, e.recorded_by_user_id)

    # Reading ------------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Tickets whose next timer event is due at ``now``, the longest due first."""
        return self.tables.query(
            f"SELECT ticket_id, next_due_s FROM {TICKETS} WHERE next_due_s <= ? ORDER BY next_due_s LIMIT ?",
            (seconds(now), limit),
        )

    def queue(
        self, *, queue_id: str | None, assignee: str | None, now: datetime, limit: int,
        after: tuple[int, str] | None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Unresolved tickets of a queue or a person, the nearest to breach first, with their SLA
        state; ``after``: the (time to breach, ticket id) the previous page ended with."""
        now_s = seconds(now)
        column, value = ("queue_id", queue_id) if queue_id is not None else ("assignee", assignee)
        page = ""
        params: list[Any] = [now_s, now_s, now_s, value, *UNRESOLVED]
        if after is not None:
            page = f"AND ({TO_BREACH} > ? OR ({TO_BREACH} = ? AND ticket_id > ?))"
            params += [now_s, after[0], now_s, after[0], after[1]]
        return self.tables.query(
            f"SELECT *, {TO_BREACH} AS to_breach_s, {SLA_STATE} AS sla_state FROM {TICKETS} "
            f"WHERE {column} = ? AND state IN ({placeholders(UNRESOLVED)}) {page} "
            "ORDER BY to_breach_s, ticket_id LIMIT ?",
            (*params, limit),
        )

    def board(self, now: datetime, queue_id: str | None) -> list[dict[str, Any]]:
        now_s = seconds(now)
        where = f"state IN ({placeholders(UNRESOLVED)})" + (" AND queue_id = ?" if queue_id else "")
        return self.tables.query(
            f"SELECT queue_id, priority, {SLA_STATE} AS sla_state, COUNT(*) AS n FROM {TICKETS} "
            f"WHERE {where} GROUP BY queue_id, priority, sla_state",
            (now_s, now_s, *UNRESOLVED, *([queue_id] if queue_id else [])),
        )

    def call_backs_due(
        self, *, queue_id: str | None, assignee: str | None, now: datetime, limit: int = 50
    ) -> list[dict[str, Any]]:
        column, value = ("queue_id", queue_id) if queue_id is not None else ("assignee", assignee)
        return self.tables.query(
            f"SELECT * FROM {CALL_BACKS} WHERE {column} = ? AND state IN ('scheduled', 'not_reached') "
            "AND due_s <= ? "
            "ORDER BY due_s, call_back_id LIMIT ?",
            (value, seconds(now), limit),
        )

    def counts(self, *, user_id: str | None, queue_id: str | None, first: date, last: date) -> dict[str, int]:
        """The desk's counts from day ``first`` to ``last`` (inclusive), of one person, one queue
        or everyone."""
        where, params = "day >= ? AND day <= ?", [first.isoformat(), last.isoformat()]
        if user_id is not None:
            where, params = f"user_id = ? AND {where}", [user_id, *params]
        elif queue_id is not None:
            where, params = f"queue_id = ? AND {where}", [queue_id, *params]
        rows = self.tables.query(
            f"SELECT metric, SUM(n) AS n FROM {COUNTS} WHERE {where} GROUP BY metric", params
        )
        return {r["metric"]: int(r["n"]) for r in rows}
