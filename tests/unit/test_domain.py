"""The write-side domains, with no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState, ValidationFailed
from services.customer.domain import NationalIdClaim
from services.sales.domain import Policy, add_years
from services.service_desk.domain import Complaint
from tests.support import registered_customer

META = CommandMeta("corr-1", "call-1", Caller("op", Role.OPERATOR))
OPENED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def open_complaint(priority: str) -> Complaint:
    return Complaint.open(
        customer_id="c-1",
        channel="phone",
        category="claims",
        priority=priority,
        description="claim unpaid",
        opened_at=OPENED,
        meta=META,
    )


def test_registering_a_customer_records_who_and_why() -> None:
    customer = registered_customer(
        META, full_name=" Li Wei ", mobile_phone="+8613800138000", email="LI@Example.com"
    )
    (event,) = customer.collect_events()
    assert event.EVENT_TYPE == "customer.registered"
    assert event.meta["actor"] == {"user_id": "op", "role": "operator", "agent_id": None}
    assert event.meta["correlation_id"] == "corr-1"
    payload = event.public_payload()
    assert payload["full_name"] == "Li Wei"
    assert payload["mobile_phone"] == "13800138000"
    assert payload["email"] == "li@example.com"
    assert payload["date_of_birth"] == "1949-12-31"
    assert payload["customer_id"] == str(customer.id)


def test_a_national_id_claim_is_keyed_by_the_national_id_and_stays_internal() -> None:
    claim = NationalIdClaim.claim("digest-of-the-id", "c-1", META)
    assert claim.id == NationalIdClaim.id_for("digest-of-the-id")
    (event,) = claim.collect_events()
    assert event.EVENT_TYPE is None


@pytest.mark.parametrize(("priority", "days"), [("urgent", 2), ("ordinary", 5)])
def test_sla_deadline_depends_on_priority(priority: str, days: int) -> None:
    assert open_complaint(priority).sla_deadline == OPENED + timedelta(days=days)


def test_closing_within_and_after_the_sla() -> None:
    on_time = open_complaint("urgent")
    on_time.close(resolution="paid", satisfaction=5, closed_at=OPENED + timedelta(days=1), meta=META)
    late = open_complaint("urgent")
    late.close(resolution="paid", satisfaction=2, closed_at=OPENED + timedelta(days=3), meta=META)
    assert on_time.collect_events()[-1].closed_within_sla is True
    assert late.collect_events()[-1].closed_within_sla is False
    assert late.status == "closed" and late.satisfaction == 2


def test_a_closed_complaint_cannot_be_closed_again() -> None:
    complaint = open_complaint("ordinary")
    complaint.close(resolution="done", satisfaction=4, closed_at=OPENED, meta=META)
    with pytest.raises(InvalidState):
        complaint.close(resolution="again", satisfaction=4, closed_at=OPENED, meta=META)


def test_a_sold_policy_runs_for_its_term() -> None:
    policy = Policy.sell(
        policy_number="POL-0123456789ABCDEF",
        customer_id="c-1",
        product="life",
        annual_premium=Decimal("12000.00"),
        start_date=date(2024, 2, 29),
        term_years=1,
        agent_id="A-1",
        meta=META,
    )
    assert policy.status == "active"
    assert policy.end_date == date(2025, 2, 28)
    assert policy.id == Policy.id_for("POL-0123456789ABCDEF")
    assert policy.collect_events()[0].public_payload()["annual_premium"] == "12000.00"


def test_add_years() -> None:
    assert add_years(date(2026, 12, 1), 20) == date(2046, 12, 1)


def test_a_profile_update_records_only_what_changed_and_nothing_when_nothing_did() -> None:
    meta = CommandMeta.new(Caller("op", Role.OPERATOR))
    customer = registered_customer(meta, email="li@example.com")
    customer.collect_events()
    same = {"full_name": " Li Wei ", "mobile_phone": "+8613800138000", "email": "LI@example.com"}
    assert customer.update_profile(same, "no change", meta) == {}
    assert customer.collect_events() == []
    changes = customer.update_profile({"full_name": "Li Wei", "email": "wei@example.com"}, "moved", meta)
    assert changes == {"email": "wei@example.com"}
    [event] = customer.collect_events()
    assert event.public_payload() == {"customer_id": str(customer.id), "changes": changes, "reason": "moved"}
    assert customer.email == "wei@example.com"
    with pytest.raises(ValidationFailed) as refused:
        customer.update_profile({"date_of_birth": date(1950, 1, 1)}, "typo", meta)
    assert refused.value.fields[0].rule == "matches_national_id"
