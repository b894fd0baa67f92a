"""The customer 360 projection as a pure function."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import build_envelope
from services.analytics.customer_360 import VersionGap, project, public_view
from services.sales.domain import Policy
from services.service_desk.domain import Complaint
from tests.support import registered_customer

META = CommandMeta("corr", "cmd-1", Caller("op", Role.OPERATOR))


def history() -> tuple[str, list[dict]]:
    customer = registered_customer(META)
    cid = str(customer.id)
    policies = [
        Policy.sell(
            policy_number=f"POL-000000000000000{i}",
            customer_id=cid,
            product="life",
            annual_premium=Decimal(premium),
            start_date=date(2026, 1, 1),
            term_years=5,
            agent_id="A-1",
            meta=META,
        )
        for i, premium in enumerate(["1000.10", "250.90"])
    ]
    complaint = Complaint.open(
        customer_id=cid,
        channel="web",
        category="billing",
        priority="ordinary",
        description="double charge",
        opened_at=datetime(2026, 11, 1, tzinfo=UTC),
        meta=META,
    )
    complaint.close(
        resolution="refunded",
        satisfaction=4,
        closed_at=datetime(2026, 11, 2, tzinfo=UTC),
        meta=META,
    )
    events = [*customer.collect_events()]
    for p in policies:
        events += p.collect_events()
    events += complaint.collect_events()
    messages = [build_envelope("ctx", i + 1, e) for i, e in enumerate(events)]
    return cid, [m for m in messages if m]


def fold(messages: list[dict]) -> dict | None:
    doc = None
    for message in messages:
        doc = project(doc, message) or doc
    return doc


def test_the_360_view_summarises_the_history() -> None:
    cid, messages = history()
    doc = fold(messages)
    assert doc is not None and doc["customer_id"] == cid
    assert doc["profile"]["national_id_masked"] == "**************002X"
    assert doc["owning_agent_id"] == "A-1"
    assert doc["policy_count"] == 2
    assert doc["total_annual_premium_cents"] == 125100
    assert public_view(doc)["total_annual_premium"] == "1251.00"
    assert doc["open_complaint_count"] == 0
    (complaint,) = doc["tickets"]
    assert complaint["status"] == "closed" and complaint["satisfaction"] == 4
    assert complaint["closed_within_sla"] is True
    assert doc["last_event_at"] == max(m["occurred_at"] for m in messages)


def test_redelivered_and_older_events_change_nothing() -> None:
    _, messages = history()
    doc = fold(messages)
    for message in messages:
        assert project(doc, message) is None


def test_events_of_other_contexts_arriving_first_are_kept() -> None:
    _, messages = history()
    reordered = messages[1:] + messages[:1]  # policies and complaint before the registration
    assert fold(reordered)["policy_count"] == 2
    assert fold(reordered)["profile"]["full_name"] == "Li Wei"


def test_a_version_arriving_before_its_predecessor_is_refused_not_recorded() -> None:
    _, messages = history()
    closed = messages[-1]  # complaint version 2
    assert closed["event_type"] == "service_desk.complaint_closed"
    with pytest.raises(VersionGap, match="before version 1"):
        project(None, closed)


def test_an_erased_customers_events_replay_into_an_erased_view() -> None:
    """After erasure the store gives the personal fields as null (their key is gone); a rebuild or a
    lagging relay must still fold them, and end with nothing personal."""
    customer = registered_customer(META)
    customer.update_profile({"mobile_phone": "13700000000"}, "new phone", META)
    customer.add_contact_point("email", "home", "li@example.cn", True, META)
    customer.erase("request", "DSR-1", META)
    messages = [build_envelope("customer", n, e) for n, e in enumerate(customer.collect_events(), start=1)]
    for message in messages[:-1]:  # as read back once the key is gone
        payload = message["payload"]
        for name in (
            "full_name",
            "national_id",
            "mobile_phone",
            "email",
            "date_of_birth",
            "address",
            "changes",
        ):
            if name in payload:
                payload[name] = None
        if message["event_type"] == "customer.contact_point_added":
            payload["label"] = payload["value"] = None
    doc = fold(messages)
    assert doc is not None and doc["erased_at"] and doc["profile"]["erased"] is True
    assert doc["contact_points"] == [] and doc["owning_agent_id"] == "A-1"
    assert "13700000000" not in str(doc) and "Li Wei" not in str(doc)
