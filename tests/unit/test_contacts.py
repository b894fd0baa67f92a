"""Contact points, preferences and consents on the customer record, and the check made before
contacting a customer. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import ValidationFailed
from services.customer.contacts import consent_state, contact_permission
from services.customer.domain import Customer
from tests.support import registered_customer

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FORM = {"kind": "form", "reference": "F-2026-0042"}


def meta(n: int, role: Role = Role.SERVICE_DESK) -> CommandMeta:
    return CommandMeta(f"corr-{n}", f"command-{n}", Caller(f"user-{n}", role))


def customer() -> Customer:
    registered = registered_customer(meta(0))
    registered.collect_events()
    return registered


def record(channel: str, purpose: str, status: str, given_at: datetime, recorded_at: datetime) -> dict:
    return {
        "channel": channel,
        "purpose": purpose,
        "status": status,
        "given_at": given_at.isoformat(),
        "source": FORM,
        "recorded_by": {"user_id": "u"},
        "recorded_at": recorded_at.isoformat(),
    }


def test_the_consent_in_force_is_the_one_given_last_not_the_one_recorded_last() -> None:
    monday, wednesday, friday = NOW, NOW + timedelta(days=2), NOW + timedelta(days=4)
    history = [
        record("email", "marketing", "withdrawn", given_at=wednesday, recorded_at=wednesday),
        # A paper form signed on Monday, typed in on Friday: the withdrawal stays in force.
        record("email", "marketing", "granted", given_at=monday, recorded_at=friday),
        record("sms", "marketing", "granted", given_at=monday, recorded_at=monday),
    ]
    state = consent_state(history)
    assert state[("email", "marketing")].status == "withdrawn"
    assert state[("sms", "marketing")].status == "granted"
    assert state[("phone", "marketing")].status == "unknown"
    assert len(state) == 10  # five channels, two purposes


def test_granted_withdrawn_and_granted_again() -> None:
    c = customer()
    for n, status in enumerate(("granted", "withdrawn", "granted"), start=1):
        c.record_consent(
            "sms", "marketing", status, FORM, NOW + timedelta(hours=n), NOW + timedelta(days=1), meta(n)
        )
        assert c.current_consents()[("sms", "marketing")].status == status
    events = c.collect_events()
    assert [e.EVENT_TYPE for e in events] == ["customer.consent_recorded"] * 3
    assert [e.in_force["status"] for e in events] == ["granted", "withdrawn", "granted"]
    assert [r["recorded_by"]["user_id"] for r in c.consents] == ["user-1", "user-2", "user-3"]


def test_a_consent_recorded_late_says_which_one_stays_in_force() -> None:
    c = customer()
    c.record_consent("email", "marketing", "withdrawn", FORM, NOW, NOW, meta(1))
    c.record_consent("email", "marketing", "granted", FORM, NOW - timedelta(days=3), NOW, meta(2))
    late = c.collect_events()[-1]
    assert late.status == "granted"
    assert late.in_force == {"status": "withdrawn", "given_at": NOW.isoformat()}


def test_a_consent_cannot_be_given_in_the_future() -> None:
    with pytest.raises(ValidationFailed) as refused:
        customer().record_consent("sms", "service", "granted", FORM, NOW + timedelta(minutes=1), NOW, meta(1))
    assert refused.value.fields[0].rule == "not_in_future"


def test_marketing_needs_a_consent_service_needs_no_withdrawal() -> None:
    c = customer()
    assert c.may_contact("sms", "marketing").reason == "no_consent"
    assert c.may_contact("sms", "service").allowed
    c.record_consent("sms", "marketing", "granted", FORM, NOW, NOW, meta(1))
    assert c.may_contact("sms", "marketing").allowed
    c.record_consent("sms", "service", "withdrawn", FORM, NOW, NOW, meta(2))
    assert c.may_contact("sms", "service").reason == "consent_withdrawn"
    # No email on the record: a consent for email reaches nobody.
    c.record_consent("email", "marketing", "granted", FORM, NOW, NOW, meta(3))
    assert c.may_contact("email", "marketing").reason == "no_contact_point"
    c.add_contact_point("email", "work", "Li.Wei@Example.com", False, meta(4))
    assert c.may_contact("email", "marketing").allowed


def test_do_not_call_stops_marketing_calls_and_erasure_stops_everything() -> None:
    consents = consent_state([record("phone", "marketing", "granted", NOW, NOW)])
    kinds = {"phone"}
    common = {"channel": "phone", "consents": consents, "reachable_kinds": kinds}
    assert contact_permission(purpose="marketing", preferences={"do_not_call": False}, **common).allowed
    refused = contact_permission(purpose="marketing", preferences={"do_not_call": True}, **common)
    assert (refused.allowed, refused.reason) == (False, "do_not_call")
    assert contact_permission(purpose="service", preferences={"do_not_call": True}, **common).allowed
    erased = contact_permission(purpose="service", preferences={}, erased=True, **common)
    assert (erased.allowed, erased.reason) == (False, "erased")


def test_contact_points_one_preferred_per_kind_and_no_value_twice() -> None:
    c = customer()
    home = c.add_contact_point("phone", "home", "010-12345678", True, meta(1))
    work = c.add_contact_point("phone", "work", "+8613912345678", True, meta(2))
    assert c.preferred_contact_points == {"phone": work}
    assert c.contact_points[home]["value"] == "01012345678"
    assert c.contact_points[work]["value"] == "13912345678"
    with pytest.raises(ValidationFailed) as refused:
        c.add_contact_point("phone", "other", "13912345678", False, meta(3))
    assert (refused.value.fields[0].field, refused.value.fields[0].rule) == ("phone", "already_present")
    c.remove_contact_point(work, "number given up", meta(4))
    assert c.preferred_contact_points == {}
    removed = c.collect_events()[-1]
    assert (removed.kind, removed.was_preferred) == ("phone", True)
    with pytest.raises(ValidationFailed):
        c.remove_contact_point(work, "again", meta(5))


def test_contact_preferences_record_only_what_changed() -> None:
    c = customer()
    assert c.set_contact_preferences({"do_not_call": False}, "asked", meta(1)) == []
    changed = c.set_contact_preferences(
        {"do_not_call": True, "best_time_to_call": {"from": "18:00", "to": "20:00"}}, "asked", meta(2)
    )
    assert changed == ["best_time_to_call", "do_not_call"]
    (event,) = c.collect_events()
    assert event.public_payload()["do_not_call"] is True
    assert event.public_payload()["preferred_channel"] is None
