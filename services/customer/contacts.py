"""How a customer may be reached, and what they agreed to: contact point values as the record keeps
them, the state of consents from their history, and the one check made before contacting a
customer. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.fields import CONSENT_PURPOSES, CONTACT_CHANNELS

# What each channel reaches the customer through.
CHANNEL_NEEDS = {
    "phone": "phone",
    "sms": "phone",
    "email": "email",
    "post": "postal_address",
    "messaging": "messaging",
}

NO_PREFERENCES: dict[str, Any] = {"preferred_channel": None, "best_time_to_call": None, "do_not_call": False}


def contact_value(kind: str, given: Any) -> Any:
    """The value as the record keeps it: phones without the PRC prefix and separators, emails in
    lower case, messaging handles as given (they are case sensitive on some services)."""
    if kind == "phone":
        international = given.startswith("+") and not given.startswith("+86")
        return given if international else given.removeprefix("+86").replace("-", "")
    if kind == "email":
        return given.lower()
    if kind == "postal_address":
        return {k: v for k, v in given.items() if v is not None}
    return dict(given)


def same_value_key(kind: str, value: Any) -> str:
    """Two contact points of one kind with the same key are the same way to reach the person."""
    if isinstance(value, dict):
        return f"{kind}:{json.dumps(value, sort_keys=True, ensure_ascii=False).lower()}"
    return f"{kind}:{value}"


@dataclass(frozen=True)
class ConsentState:
    channel: str
    purpose: str
    status: str  # granted, withdrawn, or unknown when nothing was ever recorded
    given_at: str | None = None
    source: Mapping[str, str] | None = None
    recorded_by: Mapping[str, Any] | None = None
    recorded_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "purpose": self.purpose,
            "status": self.status,
            "given_at": self.given_at,
            "source": dict(self.source) if self.source else None,
            "recorded_by": dict(self.recorded_by) if self.recorded_by else None,
            "recorded_at": self.recorded_at,
        }


def consent_state(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], ConsentState]:
    """The consent in force for every channel and purpose. The one given last counts, by when the
    customer gave it, not when it was recorded: a form signed on Monday and typed in on Friday does
    not override a withdrawal made on the web on Wednesday. Of two given at the same moment, the
    one recorded later counts."""
    state = {(c, p): ConsentState(c, p, "unknown") for c in CONTACT_CHANNELS for p in CONSENT_PURPOSES}
    for record in history:
        key = (record["channel"], record["purpose"])
        current = state[key]
        if current.given_at is None or record["given_at"] >= current.given_at:
            state[key] = ConsentState(
                record["channel"],
                record["purpose"],
                record["status"],
                record["given_at"],
                record["source"],
                record["recorded_by"],
                record["recorded_at"],
            )
    return state


@dataclass(frozen=True)
class Permission:
    allowed: bool
    # granted, service_contact, no_consent, consent_withdrawn, do_not_call, no_contact_point, erased
    reason: str
    explanation: str

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "explanation": self.explanation}


def contact_permission(
    *,
    channel: str,
    purpose: str,
    consents: Mapping[tuple[str, str], ConsentState],
    preferences: Mapping[str, Any],
    reachable_kinds: Iterable[str],
    erased: bool = False,
) -> Permission:
    """Whether the customer may be contacted on ``channel`` for ``purpose``. Marketing needs a
    consent granted for that channel and, by phone, no do-not-call; service contact (about the
    customer's own policies and tickets) is allowed unless the customer withdrew it for the channel.
    Either needs a way to reach them on the channel. An erased customer is contacted never."""
    if erased:
        return Permission(False, "erased", "the customer's personal data was erased")
    consent = consents[(channel, purpose)]
    if purpose == "marketing":
        if consent.status == "withdrawn":
            return Permission(False, "consent_withdrawn", f"marketing consent for {channel} was withdrawn")
        if consent.status != "granted":
            return Permission(False, "no_consent", f"no marketing consent for {channel} was ever recorded")
        if channel == "phone" and preferences.get("do_not_call"):
            return Permission(False, "do_not_call", "the customer asked not to be called")
    elif consent.status == "withdrawn":
        return Permission(False, "consent_withdrawn", f"service contact by {channel} was withdrawn")
    if CHANNEL_NEEDS[channel] not in set(reachable_kinds):
        return Permission(
            False, "no_contact_point", f"the record holds no {CHANNEL_NEEDS[channel].replace('_', ' ')}"
        )
    if purpose == "marketing":
        return Permission(True, "granted", f"marketing consent for {channel} is granted")
    return Permission(True, "service_contact", f"service contact by {channel} is allowed")
