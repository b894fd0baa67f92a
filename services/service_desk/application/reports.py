"""What the desk looks at: a queue's (or a person's) open tickets nearest to breach first, the SLA
board, and the desk's day or month."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from typing import Any

from contracts.fields import SLA_STATES
from crm_shared.domain import CommandMeta
from crm_shared.errors import ValidationFailed
from services.service_desk.application.aftercare import Aftercare
from services.service_desk.application.base import DESK

SUMMARY = (
    "call_backs_made",
    "call_backs_satisfied",
    "call_backs_not_reached",
    "complaints_recorded",
    "suggestions_recorded",
    "praise_recorded",
    "surveys_answered",
    "tickets_opened",
    "resolved",
    "closed_within_sla",
    "closed_late",
    "warned",
    "breached",
)


def utc(seconds: int | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def _cursor(text: str | None) -> tuple[int, int, str] | None:
    """A page's end: (the first page's moment, time to breach, ticket id). Every page of a queue
    is ranked at its first page's moment, so that tickets nearing their deadline while someone
    pages do not slip past the cursor unseen."""
    if text is None:
        return None
    at, _, rest = text.partition("/")
    to_breach, _, ticket_id = rest.partition("/")
    try:
        return int(at), int(to_breach), ticket_id
    except ValueError:
        raise ValidationFailed.single(
            "after", "format", "pass the 'next' of the previous page as it was"
        ) from None


class Reports(Aftercare):
    def get_queue(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*DESK)
        if data.get("queue_id") is not None:
            self.rules.queue(data["queue_id"])
        self.tables.catch_up()
        cursor = _cursor(data.get("after"))
        now = datetime.fromtimestamp(cursor[0], UTC) if cursor else self.now().replace(microsecond=0)
        rows = self.tables.queue(
            queue_id=data.get("queue_id"),
            assignee=data.get("assignee_user_id"),
            now=now,
            limit=data["limit"] + 1,
            after=cursor[1:] if cursor else None,
        )
        more, rows = len(rows) > data["limit"], rows[: data["limit"]]
        tickets = [
            {
                "ticket_id": r["ticket_id"],
                "customer_id": r["customer_id"],
                "kind": r["kind"],
                "category": r["category"],
                "priority": r["priority"],
                "subject": r["subject"],
                "queue_id": r["queue_id"],
                "assignee_user_id": r["assignee"],
                "state": r["state"],
                "sla_state": r["sla_state"],
                "seconds_to_breach": int(r["to_breach_s"]),
                "sla_deadline": utc(r["deadline_s"]),
                "escalation_level": r["escalation_level"],
                "opened_at": utc(r["opened_s"]),
            }
            for r in rows
        ]
        last = rows[-1] if more else None
        call_backs = self.tables.call_backs_due(
            queue_id=data.get("queue_id"), assignee=data.get("assignee_user_id"), now=now
        )
        return {
            "queue_id": data.get("queue_id"),
            "assignee_user_id": data.get("assignee_user_id"),
            "at": now.isoformat(),
            "tickets": tickets,
            "next": f"{int(now.timestamp())}/{int(last['to_breach_s'])}/{last['ticket_id']}"
            if last
            else None,
            "call_backs_due": [
                {
                    "call_back_id": c["call_back_id"],
                    "ticket_id": c["ticket_id"],
                    "customer_id": c["customer_id"],
                    "due_at": utc(c["due_s"]),
                }
                for c in call_backs
            ],
        }

    def get_sla_board(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*DESK)
        if data.get("queue_id") is not None:
            self.rules.queue(data["queue_id"])
        self.tables.catch_up()
        now = self.now()
        queues: dict[str, dict[str, int]] = {}
        priorities: dict[str, dict[str, int]] = {}
        totals = dict.fromkeys(SLA_STATES, 0)
        for row in self.tables.board(now, data.get("queue_id")):
            state, n = row["sla_state"], int(row["n"])
            queues.setdefault(row["queue_id"], dict.fromkeys(SLA_STATES, 0))[state] += n
            priorities.setdefault(row["priority"], dict.fromkeys(SLA_STATES, 0))[state] += n
            totals[state] += n
        return {
            "at": now.isoformat(),
            "by_queue": [{"queue_id": q, **counts} for q, counts in sorted(queues.items())],
            "by_priority": [{"priority": p, **counts} for p, counts in sorted(priorities.items())],
            "total": totals,
        }

    def get_desk_summary(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*DESK)
        if data.get("queue_id") is not None:
            self.rules.queue(data["queue_id"])
        first, last, period = self._period(data)
        self.tables.catch_up()
        counts = self.tables.counts(
            user_id=data.get("user_id"), queue_id=data.get("queue_id"), first=first, last=last
        )
        summary = {name: counts.get(name, 0) for name in SUMMARY}
        closed = summary["closed_within_sla"] + summary["closed_late"]
        made = summary["call_backs_made"]
        return {
            "user_id": data.get("user_id"),
            "queue_id": data.get("queue_id"),
            "period": period,
            "from": first.isoformat(),
            "to": last.isoformat(),
            **summary,
            "satisfied_share": round(summary["call_backs_satisfied"] / made, 3) if made else None,
            "within_sla_share": round(summary["closed_within_sla"] / closed, 3) if closed else None,
        }

    def _period(self, data: dict[str, Any]) -> tuple[date, date, str]:
        if data.get("month"):
            year, month = (int(part) for part in data["month"].split("-"))
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), data["month"]
        day: date = data.get("date") or self.today()
        return day, day, day.isoformat()
