"""Business facts: one small document per event that a month's figures count (an activity planned,
done or cancelled; an opportunity opened, moved, won or lost; premium sold or renewed; a ticket
opened, closed, breached; a survey answered), with its month in the business's zone, the agent it
counts for, an amount and the dimensions reports cut by. Agent and team performance, the funnel
and the complaint statistics are aggregates over the facts of one month and one scope, read through
an index (kind, month, agent).

A fact is keyed by its event's id and never changes: a redelivery or a replay inserts nothing new.
Events that do not name their agent or their ticket's category (a renewal, a ticket closed, a
survey) take them from the fact of the event that did (the sale, the opening), found by reference;
within one history those come first."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, IndexModel, InsertOne
from pymongo.collection import Collection

from crm_shared.config import Settings
from services.analytics.catalog import write_idempotent
from services.analytics.changes import Message
from services.analytics.projections import Outcome, Projection
from services.analytics.store import LOOKUP_CHUNK, chunks

BUSINESS_FACTS = "business_facts"
# The business's zone (``CRM_TIMEZONE``), where a month begins.
ZONE = ZoneInfo(os.environ.get("CRM_TIMEZONE", Settings.timezone))
Fact = dict[str, Any]


class ReferenceMissing(LookupError):
    """A fact's event came before the one it takes its agent or dimensions from (a dead letter
    requeued out of order): retried, then set aside with this reason."""


def month_in_zone(moment: str) -> str:
    return datetime.fromisoformat(moment).astimezone(ZONE).strftime("%Y-%m")


def cents(amount: str | None) -> int:
    return 0 if amount is None else int(Decimal(amount) * 100)


def _fact(message: Message, kind: str, *, at: str | None = None, **fields: Any) -> Fact:
    moment = at or message["occurred_at"]
    return {
        "_id": f"{message['event_id']}:{kind}",
        "kind": kind,
        "month": month_in_zone(moment),
        "at": moment,
        "customer_id": None if (c := message["payload"].get("customer_id")) is None else str(c),
        "agent_id": None,
        "amount_cents": 0,
        "ref": None,
        "dims": {},
        **fields,
    }


def _activity(kind: str, at_field: str | None = None) -> Callable[[Message], list[Fact]]:
    def build(message: Message) -> list[Fact]:
        p = message["payload"]
        at = p[at_field] if at_field else None
        return [_fact(message, kind, at=at, agent_id=p["agent_id"], ref=str(p["activity_id"]))]

    return build


def _opportunity_opened(message: Message) -> list[Fact]:
    p = message["payload"]
    dims = {"product": p["product"], "source": p["source"], "stage": p["stage"]}
    opportunity = str(p["opportunity_id"])
    return [
        _fact(
            message,
            "opportunity_opened",
            agent_id=p["agent_id"],
            amount_cents=cents(p["expected_annual_premium"]),
            ref=opportunity,
            dims=dims,
        )
    ]


def _opportunity_moved(message: Message) -> list[Fact]:
    p = message["payload"]
    facts = [
        _fact(
            message,
            "opportunity_moved",
            agent_id=p["agent_id"],
            ref=str(p["opportunity_id"]),
            dims={"from_stage": p["from_stage"], "to_stage": p["to_stage"]},
        )
    ]
    if p["to_stage"] in ("won", "lost"):
        facts.append(
            _fact(
                message,
                f"opportunity_{p['to_stage']}",
                agent_id=p["agent_id"],
                ref=str(p["opportunity_id"]),
                dims={"lost_reason": p["lost_reason"]},
            )
        )
    return facts


def _policy_sold(message: Message) -> list[Fact]:
    p = message["payload"]
    return [
        _fact(
            message,
            "premium_sold",
            agent_id=p["agent_id"],
            amount_cents=cents(p["annual_premium"]),
            ref=p["policy_number"],
            dims={"product": p["product"]},
        )
    ]


def _policy_renewed(message: Message) -> list[Fact]:
    p = message["payload"]
    return [
        _fact(
            message,
            "premium_retained",
            amount_cents=cents(p["annual_premium"]),
            ref=p["policy_number"],
            needs="premium_sold",
        )
    ]


def _policy_ended(kind: str) -> Callable[[Message], list[Fact]]:
    return lambda message: [
        _fact(message, kind, ref=message["payload"]["policy_number"], needs="premium_sold")
    ]


def _ticket_opened(message: Message) -> list[Fact]:
    p = message["payload"]
    dims = {
        "ticket_kind": p["kind"],
        "category": p["category"],
        "channel": p["channel"],
        "priority": p["priority"],
    }
    return [
        _fact(message, "ticket_opened", agent_id=p["owning_agent_id"], ref=str(p["ticket_id"]), dims=dims)
    ]


def _ticket_closed(message: Message) -> list[Fact]:
    p = message["payload"]
    dims = {
        "closed_within_sla": p["closed_within_sla"],
        "reason": p["reason"],
        "satisfaction": p["satisfaction"],
    }
    return [_fact(message, "ticket_closed", ref=str(p["ticket_id"]), dims=dims, needs="ticket_opened")]


def _on_ticket(kind: str, **extra: Callable[[dict[str, Any]], Any]) -> Callable[[Message], list[Fact]]:
    def build(message: Message) -> list[Fact]:
        p = message["payload"]
        dims = {name: value(p) for name, value in extra.items()}
        return [_fact(message, kind, ref=str(p["ticket_id"]), dims=dims, needs="ticket_opened")]

    return build


BUILDERS: dict[str, Callable[[Message], list[Fact]]] = {
    "sales.activity_planned": _activity("activity_planned", "planned_start"),
    "sales.activity_completed": _activity("activity_done", "completed_at"),
    "sales.activity_cancelled": _activity("activity_cancelled"),
    "sales.opportunity_opened": _opportunity_opened,
    "sales.opportunity_moved": _opportunity_moved,
    "sales.policy_sold": _policy_sold,
    "sales.policy_renewed": _policy_renewed,
    "sales.policy_lapsed": _policy_ended("policy_lapsed"),
    "sales.policy_cancelled": _policy_ended("policy_cancelled"),
    "service_desk.ticket_opened": _ticket_opened,
    "service_desk.ticket_closed": _ticket_closed,
    "service_desk.sla_breached": _on_ticket("sla_breached"),
    "service_desk.survey_answered": _on_ticket("survey_answered", score=lambda p: p["average_score"]),
}


def _resolved(collection: Collection, facts: list[Fact]) -> list[Fact | ReferenceMissing]:
    """Each fact with the agent (and a ticket's dimensions) of the fact it refers to, from this
    batch or the collection; a ``ReferenceMissing`` where that is not there."""
    wanted = {(f["needs"], f["ref"]) for f in facts if f.get("needs")}
    known = {(f["kind"], f["ref"]): f for f in facts if not f.get("needs")}
    missing = sorted({ref for kind, ref in wanted if (kind, ref) not in known})
    for chunk in chunks(missing, LOOKUP_CHUNK):
        for found in collection.find(
            {"ref": {"$in": list(chunk)}, "kind": {"$in": ["premium_sold", "ticket_opened"]}}
        ):
            known[(found["kind"], found["ref"])] = found
    out: list[Fact | ReferenceMissing] = []
    for fact in facts:
        needs = fact.pop("needs", None)
        if needs is None:
            out.append(fact)
            continue
        source = known.get((needs, fact["ref"]))
        if source is None:
            out.append(ReferenceMissing(f"{fact['kind']} of {fact['ref']} came before its {needs}"))
            continue
        dims = {**(source["dims"] if needs == "ticket_opened" else {}), **fact["dims"]}
        out.append({**fact, "agent_id": source["agent_id"], "dims": dims})
    return out


def apply_facts(collection: Collection, messages: list[Message], rebuilding: bool) -> list[Outcome]:
    """In a collection being rebuilt, a fact whose reference is not there yet waits for the replay,
    which brings the reference and then the fact again, in store order."""
    built = [(index, fact) for index, m in enumerate(messages) for fact in BUILDERS[m["event_type"]](m)]
    outcomes: list[Outcome] = [None] * len(messages)
    resolved = _resolved(collection, [fact for _, fact in built])
    waiting: set[int] = set()
    for (index, _), fact in zip(built, resolved, strict=True):
        if isinstance(fact, ReferenceMissing):
            waiting.add(index)
            if not rebuilding:
                outcomes[index] = fact
    inserts = [
        InsertOne(fact)
        for (index, _), fact in zip(built, resolved, strict=True)
        if index not in waiting and not isinstance(fact, ReferenceMissing)
    ]
    # A fact there already is this one: inserted by a delivery before.
    write_idempotent(collection, inserts, ordered=False, instead=lambda _i: [])
    return outcomes


FACTS_PROJECTION = Projection(
    name=BUSINESS_FACTS,
    description="one document per event a month's figures count: performance, funnel, complaint statistics",
    event_types=frozenset(BUILDERS),
    indexes=(
        IndexModel([("kind", ASCENDING), ("month", ASCENDING), ("agent_id", ASCENDING)]),
        IndexModel([("ref", ASCENDING), ("kind", ASCENDING)]),
    ),
    apply=apply_facts,
)
