"""The customer 360 read model as a pure function of the event history: ``project(doc, message)``
returns the next document, or None when the message changes nothing because its aggregate version
was already applied (a redelivery, or an older event arriving after a newer one)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Document = dict[str, Any]
Message = dict[str, Any]


def empty_document(customer_id: str) -> Document:
    return {
        "_id": customer_id,
        "customer_id": customer_id,
        "profile": None,
        "owning_agent_id": None,
        "policies": [],
        "complaints": [],
        "policy_count": 0,
        "total_annual_premium": "0.00",
        "open_complaint_count": 0,
        "last_event_at": None,
        # aggregate id -> last applied version: what makes every apply idempotent.
        "applied_versions": {},
        "revision": 0,
    }


def mask_national_id(national_id: str) -> str:
    # Only the last four: the rest would give away the region and, with date_of_birth beside it
    # in the profile, all but the serial.
    return "*" * (len(national_id) - 4) + national_id[-4:]


def _customer_registered(doc: Document, payload: dict[str, Any], _: Message) -> None:
    doc["profile"] = {
        "full_name": payload["full_name"],
        "national_id_masked": mask_national_id(payload["national_id"]),
        "mobile_phone": payload["mobile_phone"],
        "email": payload["email"],
        "date_of_birth": payload["date_of_birth"],
        "address": payload["address"],
    }
    doc["owning_agent_id"] = payload["owning_agent_id"]


def _policy_sold(doc: Document, payload: dict[str, Any], _: Message) -> None:
    doc["policies"].append(
        {
            "policy_number": payload["policy_number"],
            "product": payload["product"],
            "annual_premium": payload["annual_premium"],
            "start_date": payload["start_date"],
            "end_date": payload["end_date"],
            "agent_id": payload["agent_id"],
            "status": "active",
        }
    )


def _complaint_opened(doc: Document, payload: dict[str, Any], message: Message) -> None:
    doc["complaints"].append(
        {
            "ticket_id": payload["ticket_id"],
            "channel": payload["channel"],
            "category": payload["category"],
            "priority": payload["priority"],
            "status": "open",
            "opened_at": message["occurred_at"],
            "sla_deadline": payload["sla_deadline"],
            "closed_at": None,
            "closed_within_sla": None,
            "satisfaction": None,
        }
    )


def _complaint_closed(doc: Document, payload: dict[str, Any], message: Message) -> None:
    for complaint in doc["complaints"]:
        if complaint["ticket_id"] == payload["ticket_id"]:
            complaint.update(
                status="closed",
                closed_at=message["occurred_at"],
                closed_within_sla=payload["closed_within_sla"],
                satisfaction=payload["satisfaction"],
            )


APPLIERS: dict[str, Callable[[Document, dict[str, Any], Message], None]] = {
    "customer.registered": _customer_registered,
    "sales.policy_sold": _policy_sold,
    "service_desk.complaint_opened": _complaint_opened,
    "service_desk.complaint_closed": _complaint_closed,
}


def customer_of(message: Message) -> str | None:
    """Which customer's 360 view a message belongs to, or None when it belongs to none."""
    if message["event_type"] not in APPLIERS:
        return None
    return str(message["payload"]["customer_id"])


class VersionGap(Exception):
    """An event arrived before an earlier version of its aggregate was applied."""


def project(doc: Document | None, message: Message) -> Document | None:
    """Events of one aggregate apply in version order, each once: an already applied version
    changes nothing (None); a version beyond the next one raises ``VersionGap`` rather than
    letting the missing one be skipped for good. (Every version of a published aggregate is public;
    internal events live on aggregates of their own.)"""
    applier = APPLIERS.get(message["event_type"])
    if applier is None:
        return None
    customer_id = str(message["payload"]["customer_id"])
    current = doc if doc is not None else empty_document(customer_id)
    aggregate_id = str(message["aggregate_id"])
    last_applied = current["applied_versions"].get(aggregate_id, 0)
    if message["aggregate_version"] <= last_applied:
        return None
    if message["aggregate_version"] != last_applied + 1:
        raise VersionGap(
            f"{message['event_type']} version {message['aggregate_version']} of "
            f"{aggregate_id} arrived before version {last_applied + 1}"
        )
    new = copy.deepcopy(current)
    applier(new, message["payload"], message)
    new["applied_versions"][aggregate_id] = message["aggregate_version"]
    _recompute_totals(new)
    if new["last_event_at"] is None or message["occurred_at"] > new["last_event_at"]:
        new["last_event_at"] = message["occurred_at"]
    new["revision"] = current["revision"] + 1
    return new


def _recompute_totals(doc: Document) -> None:
    active = [p for p in doc["policies"] if p["status"] == "active"]
    doc["policy_count"] = len(doc["policies"])
    doc["total_annual_premium"] = str(sum((Decimal(p["annual_premium"]) for p in active), Decimal("0.00")))
    doc["open_complaint_count"] = sum(1 for c in doc["complaints"] if c["status"] == "open")


def public_view(doc: Document) -> dict[str, Any]:
    """The document as RPC callers see it: without bookkeeping fields (``write_id`` is the store's
    compare-and-set token)."""
    return {k: v for k, v in doc.items() if k not in ("_id", "applied_versions", "revision", "write_id")}
