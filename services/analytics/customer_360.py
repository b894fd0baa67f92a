"""The customer 360 read model as a pure function of the event history.

Each event type says what it does to its customer's document as a ``Change``: fields to set, items
to append to a list, counters to add to. ``project(doc, message)`` applies a change in Python and
returns the next document, or None when the message changes nothing because its aggregate version
was already applied (a redelivery, or an older event arriving after a newer one). The store applies
the very same change inside the database as one guarded update (see ``store.guarded_update``), so
writing an event needs no read first; ``project`` serves the checks, repairs and tests."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.analytics.changes import Change, Document, Element, Message
from services.analytics.desk_changes import DESK_CHANGES, DESK_COUNTERS, DESK_LISTS, sla_state


def empty_document(customer_id: str) -> Document:
    return {
        "_id": customer_id,
        "customer_id": customer_id,
        "profile": None,
        "registered_at": None,
        "owning_agent_id": None,
        "ownership_history": [],
        "policies": [],
        # Every ticket (inquiries, service requests, complaints) with its SLA clock; the call-backs
        # after complaints; survey scores and call-back answers; praise and suggestions.
        "tickets": [],
        "call_backs": [],
        "satisfaction_history": [],
        "feedback": [],
        # Each policy's changes of status (sold, renewed, lapsed, reinstated, cancelled), and the
        # claims made on the customer's policies.
        "policy_status_history": [],
        "claims": [],
        "opportunities": [],
        # Activities with the customer in any agent's day (the view shows the last and the next).
        "activities": [],
        # The churn warning analytics raised (and maybe cleared) for the customer: at most one.
        "churn_warnings": [],
        # The campaigns the customer was in (contacted, or held back in a control group), what
        # went out to them and how they answered.
        "campaigns": [],
        "contact_points": [],
        "preferred_contact_points": {},
        "contact_preferences": {"preferred_channel": None, "best_time_to_call": None, "do_not_call": False},
        # "<channel>_<purpose>" -> the consent in force.
        "consents": {},
        # Merges: the survivor this duplicate was merged into; the duplicates merged into this one.
        "merged_into": None,
        "merged_from": [],
        "erased_at": None,
        "policy_count": 0,
        "claim_count": 0,
        "late_payment_count": 0,
        # Cents, so that the database can add to it in place; the view shows yuan.
        "total_annual_premium_cents": 0,
        "open_complaint_count": 0,
        "open_ticket_count": 0,
        "last_event_at": None,
        # How many events the document holds. The version of each aggregate applied is kept with
        # what it versions (``Change.holder``): ``record_version`` (absent until the customer's
        # own record's first event) and ``v`` on each item of HOLDER_LISTS.
        "revision": 0,
    }


# Lists are kept sorted by these keys, so a document depends on which events it holds, never on
# the order they arrived in (a replay reads each store in turn; live events interleave).
LIST_ORDER: dict[str, tuple[str, ...]] = {
    "policies": ("start_date", "policy_number"),
    "ownership_history": ("changed_at", "to_agent_id"),
    "contact_points": ("added_at", "contact_point_id"),
    "merged_from": ("merged_at", "customer_id"),
    "policy_status_history": ("at", "policy_number", "status"),
    "claims": ("loss_date", "claim_key"),
    "opportunities": ("opened_at", "opportunity_id"),
    "activities": ("planned_at", "activity_id"),
    "churn_warnings": ("customer_id",),
    "campaigns": ("selected_at", "campaign_id"),
    **DESK_LISTS,
}
COUNTERS = ("claim_count", "late_payment_count")
# The lists whose items stand for an aggregate and keep its version (``v``, ``aggregate_id``).
HOLDER_LISTS = (
    "policies",
    "opportunities",
    "activities",
    "tickets",
    "call_backs",
    "feedback",
    "churn_warnings",
    "campaigns",
)
RECORD_VERSION = "record_version"
# What the view leaves out of a document (``applied_versions``: what documents written before item
# versions kept; a rebuild drops it) and of each holder item.
BOOKKEEPING = (
    "_id",
    RECORD_VERSION,
    "applied_versions",
    "revision",
    "write_id",
    "total_annual_premium_cents",
)
ITEM_BOOKKEEPING = ("v", "aggregate_id")
# The lists a survivor's view takes from its duplicates (see ``with_duplicates``).
COMBINED_LISTS = ("policies", "policy_status_history", "claims", "opportunities", "activities", *DESK_LISTS)


def mask_national_id(national_id: str | None) -> str | None:
    # Only the last four: the rest would give away the region and, with date_of_birth beside it
    # in the profile, all but the serial.
    return None if national_id is None else "*" * (len(national_id) - 4) + national_id[-4:]


# What the 360 view holds of a person once they are erased.
ERASED_PROFILE = {
    "erased": True,
    "full_name": None,
    "national_id_masked": None,
    "mobile_phone": None,
    "email": None,
    "date_of_birth": None,
    "address": None,
}


def cents(amount: str) -> int:
    # Contract amounts have at most two decimals, so this is exact.
    return int(Decimal(amount) * 100)


def _customer_registered(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={
            "registered_at": message["occurred_at"],
            "profile": {
                "full_name": payload["full_name"],
                "national_id_masked": mask_national_id(payload["national_id"]),
                "mobile_phone": payload["mobile_phone"],
                "email": payload["email"],
                "date_of_birth": payload["date_of_birth"],
                "address": payload["address"],
            },
            "owning_agent_id": payload["owning_agent_id"],
        }
    )


PROFILE_VIEW = {"full_name", "mobile_phone", "email", "date_of_birth", "address"}


def _profile_updated(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={
            f"profile.{name}": value
            for name, value in (payload["changes"] or {}).items()  # None when replayed after erasure
            if name in PROFILE_VIEW
        }
    )


def _owner_changed(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={"owning_agent_id": payload["new_agent_id"]},
        push={
            "ownership_history": {
                "from_agent_id": payload["previous_agent_id"],
                "to_agent_id": payload["new_agent_id"],
                "reason": payload["reason"],
                "transfer_id": payload["transfer_id"],
                "changed_at": message["occurred_at"],
                "changed_by": message["actor"],
            }
        },
    )


def _contact_point_added(payload: dict[str, Any], message: Message) -> Change:
    kind, point_id = payload["kind"], payload["contact_point_id"]
    return Change(
        set={f"preferred_contact_points.{kind}": point_id} if payload["preferred"] else {},
        push={
            "contact_points": {
                "contact_point_id": point_id,
                "kind": kind,
                "label": payload["label"],
                "value": payload["value"],
                "added_at": message["occurred_at"],
                "removed_at": None,
            }
        },
    )


def _contact_point_removed(payload: dict[str, Any], message: Message) -> Change:
    sets: dict[str, Any] = {"contact_points.$.removed_at": message["occurred_at"]}
    if payload["was_preferred"]:
        sets[f"preferred_contact_points.{payload['kind']}"] = None
    return Change(
        set=sets, element=Element("contact_points", "contact_point_id", payload["contact_point_id"])
    )


def _contact_preferences_set(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={
            "contact_preferences": {
                "preferred_channel": payload["preferred_channel"],
                "best_time_to_call": payload["best_time_to_call"],
                "do_not_call": payload["do_not_call"],
            }
        }
    )


def _consent_recorded(payload: dict[str, Any], _: Message) -> Change:
    return Change(set={f"consents.{payload['channel']}_{payload['purpose']}": payload["in_force"]})


def _merged(payload: dict[str, Any], _: Message) -> Change:
    return Change(set={"merged_into": payload["survivor_id"]})


def _duplicate_merged(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "merged_from": {
                "customer_id": payload["duplicate_id"],
                "merged_at": message["occurred_at"],
                "reason": payload["reason"],
            }
        }
    )


def _erased(_: dict[str, Any], message: Message) -> Change:
    """Personal data goes; the facts (policies, premiums, tickets, ownership) stay."""
    return Change(
        set={
            "profile": ERASED_PROFILE,
            "contact_points": [],
            "preferred_contact_points": {},
            "erased_at": message["occurred_at"],
        }
    )


def _policy_sold(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "policies": {
                "policy_number": payload["policy_number"],
                "product": payload["product"],
                "annual_premium": payload["annual_premium"],
                "start_date": payload["start_date"],
                "end_date": payload["end_date"],
                "agent_id": payload["agent_id"],
                "status": "active",
                "paid_through": None,
            },
            "policy_status_history": _status_entry(payload, message, "active", "sold"),
        },
        inc={"policy_count": 1, "total_annual_premium_cents": cents(payload["annual_premium"])},
        holder=_policy(payload),
    )


def _status_entry(payload: dict[str, Any], message: Message, status: str, reason: str) -> dict[str, Any]:
    return {
        "policy_number": payload["policy_number"],
        "status": status,
        "reason": reason,
        "at": message["occurred_at"],
    }


def _policy(payload: dict[str, Any]) -> Element:
    return Element("policies", "policy_number", payload["policy_number"])


def _policy_status(
    status: str, reason: Callable[[dict[str, Any]], str]
) -> Callable[[dict[str, Any], Message], Change]:
    def change(payload: dict[str, Any], message: Message) -> Change:
        return Change(
            set={"policies.$.status": status},
            push={"policy_status_history": _status_entry(payload, message, status, reason(payload))},
            element=_policy(payload),
            holder=_policy(payload),
        )

    return change


def _policy_renewed(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={
            "policies.$.end_date": payload["end_date"],
            "policies.$.annual_premium": payload["annual_premium"],
            "policies.$.term_years": payload["term_years"],
        },
        push={
            "policy_status_history": _status_entry(
                payload, message, "active", f"renewed to {payload['end_date']}"
            )
        },
        element=_policy(payload),
        holder=_policy(payload),
    )


def _premium_paid(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={"policies.$.paid_through": payload["due_date"], "policies.$.last_paid_on": payload["paid_on"]},
        inc={"late_payment_count": 1 if payload["days_late"] > 0 else 0},
        element=_policy(payload),
        holder=_policy(payload),
    )


def claim_key(payload: dict[str, Any]) -> str:
    """A claim's id is the claims system's, unique within its policy."""
    return f"{payload['policy_number']}/{payload['claim_id']}"


def _claim_recorded(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        push={
            "claims": {
                "claim_key": claim_key(payload),
                "claim_id": payload["claim_id"],
                "policy_number": payload["policy_number"],
                "loss_date": payload["loss_date"],
                "amount_claimed": payload["amount_claimed"],
                "status": payload["status"],
                "amount_paid": payload["amount_paid"],
            }
        },
        inc={"claim_count": 1},
        holder=_policy(payload),  # claims are events of their policy
    )


def _claim_updated(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={"claims.$.status": payload["status"], "claims.$.amount_paid": payload["amount_paid"]},
        element=Element("claims", "claim_key", claim_key(payload)),
        holder=_policy(payload),
    )


def _opportunity(payload: dict[str, Any]) -> Element:
    return Element("opportunities", "opportunity_id", payload["opportunity_id"])


def _opportunity_opened(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "opportunities": {
                "opportunity_id": payload["opportunity_id"],
                "product": payload["product"],
                "source": payload["source"],
                "stage": payload["stage"],
                "probability": payload["probability"],
                "expected_annual_premium": payload["expected_annual_premium"],
                "agent_id": payload["agent_id"],
                "opened_at": message["occurred_at"],
                "closed_at": None,
                "lost_reason": None,
                "policy_number": None,
            }
        },
        holder=_opportunity(payload),
    )


def _opportunity_moved(payload: dict[str, Any], message: Message) -> Change:
    closed = payload["to_stage"] in ("won", "lost")
    return Change(
        set={
            "opportunities.$.stage": payload["to_stage"],
            "opportunities.$.probability": payload["probability"],
            "opportunities.$.lost_reason": payload["lost_reason"],
            "opportunities.$.policy_number": payload["policy_number"],
            "opportunities.$.closed_at": message["occurred_at"] if closed else None,
        },
        element=_opportunity(payload),
        holder=_opportunity(payload),
    )


def _opportunity_reassigned(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={"opportunities.$.agent_id": payload["to_agent_id"]},
        element=_opportunity(payload),
        holder=_opportunity(payload),
    )


def _activity(payload: dict[str, Any]) -> Element:
    return Element("activities", "activity_id", payload["activity_id"])


def _activity_planned(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "activities": {
                "activity_id": payload["activity_id"],
                "kind": payload["kind"],
                "agent_id": payload["agent_id"],
                # Not the purpose: free text may say what the customer told, and it stays in the
                # daily plan of the agent who holds it.
                "source": payload["source"],
                "planned_start": payload["planned_start"],
                "planned_end": payload["planned_end"],
                "planned_at": message["occurred_at"],
                "state": "planned",
                "outcome": None,
                "completed_at": None,
            }
        },
        holder=_activity(payload),
    )


def _activity_rescheduled(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={
            "activities.$.planned_start": payload["planned_start"],
            "activities.$.planned_end": payload["planned_end"],
        },
        element=_activity(payload),
        holder=_activity(payload),
    )


def _activity_completed(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={
            "activities.$.state": "done",
            "activities.$.outcome": payload["outcome"],
            "activities.$.completed_at": payload["completed_at"],
        },
        element=_activity(payload),
        holder=_activity(payload),
    )


def _activity_cancelled(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={"activities.$.state": "cancelled"}, element=_activity(payload), holder=_activity(payload)
    )


def _activity_reassigned(payload: dict[str, Any], _: Message) -> Change:
    return Change(
        set={"activities.$.agent_id": payload["to_agent_id"]},
        element=_activity(payload),
        holder=_activity(payload),
    )


def _churn_watch(payload: dict[str, Any]) -> Element:
    return Element("churn_warnings", "customer_id", str(payload["customer_id"]))


def _churn_risk(raised: bool) -> Callable[[dict[str, Any], Message], Change]:
    """The customer's churn warning (analytics' churn watch, one per customer): its first raise
    creates the item, later raises and clears change it."""

    def change(payload: dict[str, Any], message: Message) -> Change:
        state = {
            "state": "raised" if raised else "cleared",
            "score": payload["score"],
            "reasons": payload.get("reasons", []) if raised else [],
            "assessed_at": payload["assessed_at"],
            ("raised_at" if raised else "cleared_at"): message["occurred_at"],
        }
        if raised and message["aggregate_version"] == 1:
            item = {"customer_id": str(payload["customer_id"]), "cleared_at": None, **state}
            return Change(push={"churn_warnings": item}, holder=_churn_watch(payload))
        return Change(
            set={f"churn_warnings.$.{name}": value for name, value in state.items()},
            element=_churn_watch(payload),
            holder=_churn_watch(payload),
        )

    return change


def _campaign(payload: dict[str, Any]) -> Element:
    return Element("campaigns", "campaign_id", str(payload["campaign_id"]))


def _campaign_member_selected(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        push={
            "campaigns": {
                "campaign_id": str(payload["campaign_id"]),
                "name": payload["campaign_name"],
                "purpose": payload["purpose"],
                "group": payload["group"],
                "channels": payload["channels"],
                "agent_id": payload["owning_agent_id"],
                "selected_at": message["occurred_at"],
                "last_response": None,
                "last_response_channel": None,
                "last_response_at": None,
            }
        },
        holder=_campaign(payload),
    )


def _campaign_message_requested(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={f"campaigns.$.{payload['channel']}_requested_at": message["occurred_at"]},
        element=_campaign(payload),
        holder=_campaign(payload),
    )


def _campaign_response_recorded(payload: dict[str, Any], message: Message) -> Change:
    return Change(
        set={
            "campaigns.$.last_response": payload["response"],
            "campaigns.$.last_response_channel": payload["channel"],
            "campaigns.$.last_response_at": message["occurred_at"],
            # When each kind of answer last came (delivered, replied, opted out, clicked, converted).
            f"campaigns.$.{payload['response']}_at": message["occurred_at"],
        },
        element=_campaign(payload),
        holder=_campaign(payload),
    )


CHANGES: dict[str, Callable[[dict[str, Any], Message], Change]] = {
    "customer.registered": _customer_registered,
    "customer.owner_changed": _owner_changed,
    "customer.profile_updated": _profile_updated,
    "customer.contact_point_added": _contact_point_added,
    "customer.contact_point_removed": _contact_point_removed,
    "customer.contact_preferences_set": _contact_preferences_set,
    "customer.consent_recorded": _consent_recorded,
    "customer.merged": _merged,
    "customer.duplicate_merged": _duplicate_merged,
    "customer.erased": _erased,
    "sales.policy_sold": _policy_sold,
    "sales.policy_renewed": _policy_renewed,
    "sales.premium_paid": _premium_paid,
    "sales.policy_lapsed": _policy_status("lapsed", lambda p: f"premium due {p['missed_due_date']} missed"),
    "sales.policy_reinstated": _policy_status("active", lambda p: f"reinstated: {p['reason']}"),
    "sales.policy_cancelled": _policy_status("cancelled", lambda p: p["reason"]),
    "sales.claim_recorded": _claim_recorded,
    "sales.claim_updated": _claim_updated,
    "sales.opportunity_opened": _opportunity_opened,
    "sales.opportunity_moved": _opportunity_moved,
    "sales.opportunity_reassigned": _opportunity_reassigned,
    "sales.activity_planned": _activity_planned,
    "sales.activity_rescheduled": _activity_rescheduled,
    "sales.activity_completed": _activity_completed,
    "sales.activity_cancelled": _activity_cancelled,
    "sales.activity_reassigned": _activity_reassigned,
    "sales.campaign_member_selected": _campaign_member_selected,
    "sales.campaign_message_requested": _campaign_message_requested,
    "sales.campaign_response_recorded": _campaign_response_recorded,
    **DESK_CHANGES,
    "analytics.churn_risk_raised": _churn_risk(True),
    "analytics.churn_risk_cleared": _churn_risk(False),
}


def customer_of(message: Message) -> str | None:
    """Which customer's 360 view a message belongs to, or None when it belongs to none."""
    if message["event_type"] not in CHANGES:
        return None
    customer_id = message["payload"]["customer_id"]
    return None if customer_id is None else str(customer_id)  # an activity about no customer


def change_of(message: Message) -> Change | None:
    """The change a message makes to its customer's document, or None when it belongs to none.
    The item an event creates for its aggregate carries the aggregate's id and version 1."""
    build = CHANGES.get(message["event_type"])
    if build is None:
        return None
    change = build(message["payload"], message)
    if change.holder is None and str(message["aggregate_id"]) != customer_of(message):
        raise ValueError(f"{message['event_type']} of {message['aggregate_id']} names no item to version")
    if not change.creates_holder:
        return change
    assert change.holder is not None
    if message["aggregate_version"] != 1:
        raise ValueError(f"{message['event_type']} creates its item, so it is version 1 of its aggregate")
    created = {**change.push[change.holder.array], "v": 1, "aggregate_id": str(message["aggregate_id"])}
    return dataclasses.replace(change, push={**change.push, change.holder.array: created})


def find_item(doc: Document, element: Element) -> dict[str, Any] | None:
    return next((i for i in doc.get(element.array, []) if i.get(element.key) == element.value), None)


def applied_version(doc: Document, change: Change) -> int:
    """The version of the change's aggregate the document holds (0: none yet)."""
    if change.holder is None:
        return int(doc.get(RECORD_VERSION, 0))
    item = find_item(doc, change.holder)
    return 0 if item is None else int(item.get("v", 0))


def applied_versions(doc: Document) -> dict[str, int]:
    """aggregate id -> the version applied, for every aggregate the document holds."""
    versions = {str(doc["_id"]): doc[RECORD_VERSION]} if RECORD_VERSION in doc else {}
    for name in HOLDER_LISTS:
        for item in doc.get(name) or []:
            if isinstance(item, dict) and "aggregate_id" in item:
                versions[str(item["aggregate_id"])] = item.get("v")
    # A version that is not a number (a document damaged by hand) is left for ``crm verify`` to
    # report, never trusted.
    return {
        aggregate: v for aggregate, v in versions.items() if isinstance(v, int) and not isinstance(v, bool)
    }


class VersionGap(Exception):
    """An event arrived before an earlier version of its aggregate was applied."""


class MissingElement(Exception):
    """A change refers to a list item the document does not hold (its earlier event is missing)."""


def project(doc: Document | None, message: Message) -> Document | None:
    """Events of one aggregate apply in version order, each once: an already applied version
    changes nothing (None); a version beyond the next one raises ``VersionGap`` rather than
    letting the missing one be skipped for good. (Every version of a published aggregate is public;
    internal events live on aggregates of their own.)"""
    change = change_of(message)
    customer_id = customer_of(message)
    if change is None or customer_id is None:
        return None
    current = doc if doc is not None else empty_document(customer_id)
    _check_next(current, change, message)
    if int(message["aggregate_version"]) <= applied_version(current, change):
        return None
    new = copy.deepcopy(current)
    _advance(new, change, message)
    return new


def fold(history: Iterable[Message]) -> Document | None:
    """A customer's document from their events in order: ``project`` one by one, changing one
    document in place (a long history is not copied once per event)."""
    doc: Document | None = None
    for message in history:
        doc = fold_into(doc, message)
    return doc


def fold_into(doc: Document | None, message: Message) -> Document | None:
    """``doc`` (None: none yet) with ``message`` applied in place, as ``fold`` applies each."""
    change, customer_id = change_of(message), customer_of(message)
    if change is None or customer_id is None:
        return doc
    doc = doc if doc is not None else empty_document(customer_id)
    _check_next(doc, change, message)
    if int(message["aggregate_version"]) > applied_version(doc, change):
        _advance(doc, change, message)
    return doc


def _check_next(doc: Document, change: Change, message: Message) -> None:
    """Raises ``VersionGap`` if ``message`` is beyond the next version of its aggregate."""
    version, last_applied = int(message["aggregate_version"]), applied_version(doc, change)
    if version > last_applied + 1:
        raise VersionGap(
            f"{message['event_type']} version {version} of "
            f"{message['aggregate_id']} arrived before version {last_applied + 1}"
        )


def _advance(doc: Document, change: Change, message: Message) -> None:
    """Apply the next event of its aggregate to ``doc`` in place, with its bookkeeping."""
    version = int(message["aggregate_version"])
    apply_change(doc, change)
    if change.holder is None:
        doc[RECORD_VERSION] = version
    else:
        holder = find_item(doc, change.holder)
        assert holder is not None  # it was there, or the change pushed it
        holder["v"] = version
    doc["revision"] = doc["revision"] + 1
    if doc["last_event_at"] is None or message["occurred_at"] > doc["last_event_at"]:
        doc["last_event_at"] = message["occurred_at"]


def apply_change(doc: Document, change: Change) -> None:
    """Apply ``change`` to ``doc`` in place, as the database applies its guarded update."""
    item: dict[str, Any] | None = None
    if change.element is not None:
        element = change.element
        item = find_item(doc, element)
        if item is None:
            raise MissingElement(f"no {element.array} item with {element.key} {element.value!r}")
    for path, value in change.set.items():
        head, _, rest = path.partition(".")
        if rest.startswith("$."):
            if item is None:
                raise MissingElement(f"{path} names no element")
            item[rest[2:]] = copy.deepcopy(value)
        elif rest:
            doc.setdefault(head, {})[rest] = copy.deepcopy(value)
        else:
            doc[head] = copy.deepcopy(value)
    for name, value in change.push.items():
        items = doc.setdefault(name, [])
        items.append(copy.deepcopy(value))
        items.sort(key=lambda item: tuple(item[key] for key in LIST_ORDER[name]))
    for name, amount in change.inc.items():
        doc[name] = doc.get(name, 0) + amount


def with_duplicates(survivor: Document, duplicates: list[Document]) -> Document:
    """The survivor's document holding what the duplicates merged into it hold: their policies and
    tickets beside its own, and their totals added in (each duplicate keeps its own document, so
    that a replay of either customer's events needs no merging)."""
    combined = copy.deepcopy(survivor)
    for duplicate in duplicates:
        for name in COMBINED_LISTS:
            combined[name] = combined.get(name, []) + duplicate.get(name, [])
        for name in ("policy_count", "total_annual_premium_cents", *DESK_COUNTERS, *COUNTERS):
            combined[name] = combined.get(name, 0) + duplicate.get(name, 0)
    for name in COMBINED_LISTS:
        combined[name].sort(key=lambda item, n=name: tuple(item[key] for key in LIST_ORDER[n]))
    return combined


def utc_text(moment: str) -> str:
    """An ISO time in UTC, comparable as text with ``datetime.now(UTC).isoformat()``."""
    return datetime.fromisoformat(moment).astimezone(UTC).isoformat()


def public_view(doc: Document, now: datetime | None = None) -> dict[str, Any]:
    """The document as RPC callers see it at ``now``: without bookkeeping fields (``write_id`` is
    the store's compare-and-set token), the premium total in yuan, the open opportunities, the last
    activity done with the customer, the next one to come, and how many planned are overdue."""
    at = now or datetime.now(UTC)
    moment = at.isoformat()
    view = {k: v for k, v in doc.items() if k not in BOOKKEEPING}
    for name in HOLDER_LISTS:
        view[name] = [
            {k: v for k, v in item.items() if k not in ITEM_BOOKKEEPING} for item in doc.get(name, [])
        ]
    view["total_annual_premium"] = str(Decimal(doc.get("total_annual_premium_cents", 0)).scaleb(-2))
    opportunities = view["opportunities"]
    view["open_opportunities"] = [o for o in opportunities if o["stage"] not in ("won", "lost")]
    activities = view["activities"]
    done = [a for a in activities if a["state"] == "done"]
    planned = [a for a in activities if a["state"] == "planned"]
    coming = [a for a in planned if utc_text(a["planned_end"]) > moment]
    view["last_activity"] = max(done, key=lambda a: (a["completed_at"], a["activity_id"]), default=None)
    view["next_activity"] = min(coming, key=lambda a: (a["planned_start"], a["activity_id"]), default=None)
    view["overdue_activity_count"] = len(planned) - len(coming)
    # The churn warning, and the follow-up it put in the owner's day while that is still to do.
    view["churn_risk"] = next(iter(view.pop("churn_warnings", [])), None)
    view["churn_follow_up"] = next((a for a in planned if a.get("source") == "churn_warning"), None)
    view["tickets"] = [{**t, "sla_state": sla_state(t, at)} for t in view["tickets"]]
    # Version 1 of the view listed complaints only, under this name.
    view["complaints"] = [t for t in view["tickets"] if t["kind"] == "complaint"]
    return view
