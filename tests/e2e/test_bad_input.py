"""Bad input, for every RPC: a structured error naming the field and the rule, and no event
appended to any event store."""

from __future__ import annotations

from typing import Any

import pytest

from crm_cli.client import CrmClient
from tests.e2e.conftest import CLOSE, COMPLAINT, SALE, Stores, new_id
from tests.support import customer_payload

# The digits of a valid id in their fullwidth forms: \d would take them, and the claim keyed by
# this spelling would let the same person register twice.
FULLWIDTH_DIGITS_ID = "".join(chr(ord(c) + 0xFEE0) for c in "11010519491231002") + "X"


def without(payload: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != field}


# (service, method, payload builder, expected code, field, rule)
CASES: list[tuple[str, str, Any, str, str, str]] = [
    (
        "customer",
        "register_customer",
        lambda k: without(customer_payload(), "full_name"),
        "validation_failed",
        "full_name",
        "required",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(full_name=["Li"]),
        "validation_failed",
        "full_name",
        "type",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(national_id="110105194912310021"),
        "validation_failed",
        "national_id",
        "checksum",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(mobile_phone="12345"),
        "validation_failed",
        "mobile_phone",
        "format",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(owning_agent_id=""),
        "validation_failed",
        "owning_agent_id",
        "format",
    ),
    (
        "customer",
        "register_customer",
        lambda k: "not an object",
        "validation_failed",
        "_payload",
        "type",
    ),
    ("customer", "get_customer", lambda k: {}, "validation_failed", "customer_id", "required"),
    (
        "customer",
        "get_customer",
        lambda k: {"customer_id": 42},
        "validation_failed",
        "customer_id",
        "type",
    ),
    (
        "customer",
        "get_customer",
        lambda k: {"customer_id": new_id()},
        "not_found",
        "customer_id",
        "unknown_customer",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: without({"customer_id": k["customer_id"], **SALE}, "product"),
        "validation_failed",
        "product",
        "required",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": k["customer_id"], **SALE, "term_years": "five"},
        "validation_failed",
        "term_years",
        "type",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": k["customer_id"], **SALE, "annual_premium": "-1200.00"},
        "validation_failed",
        "annual_premium",
        "positive",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": k["customer_id"], **SALE, "product": "pet"},
        "validation_failed",
        "product",
        "one_of",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": new_id(), **SALE},
        "validation_failed",
        "customer_id",
        "unknown_customer",
    ),
    (
        "sales",
        "get_policy",
        lambda k: {"policy_number": "POL-0000000000000000"},
        "not_found",
        "policy_number",
        "unknown_policy",
    ),
    (
        "sales",
        "get_policy",
        lambda k: {"policy_number": 7},
        "validation_failed",
        "policy_number",
        "type",
    ),
    (
        "service_desk",
        "open_complaint",
        lambda k: without({"customer_id": k["customer_id"], **COMPLAINT}, "priority"),
        "validation_failed",
        "priority",
        "required",
    ),
    (
        "service_desk",
        "open_complaint",
        lambda k: {"customer_id": k["customer_id"], **COMPLAINT, "channel": 3},
        "validation_failed",
        "channel",
        "type",
    ),
    (
        "service_desk",
        "open_complaint",
        lambda k: {"customer_id": k["customer_id"], **COMPLAINT, "channel": "fax"},
        "validation_failed",
        "channel",
        "one_of",
    ),
    (
        "service_desk",
        "open_complaint",
        lambda k: {"customer_id": new_id(), **COMPLAINT},
        "validation_failed",
        "customer_id",
        "unknown_customer",
    ),
    (
        "service_desk",
        "close_complaint",
        lambda k: without({"ticket_id": k["ticket_id"], **CLOSE}, "resolution"),
        "validation_failed",
        "resolution",
        "required",
    ),
    (
        "service_desk",
        "close_complaint",
        lambda k: {"ticket_id": k["ticket_id"], **CLOSE, "satisfaction": "good"},
        "validation_failed",
        "satisfaction",
        "type",
    ),
    (
        "service_desk",
        "close_complaint",
        lambda k: {"ticket_id": k["ticket_id"], **CLOSE, "satisfaction": 9},
        "validation_failed",
        "satisfaction",
        "range",
    ),
    (
        "service_desk",
        "close_complaint",
        lambda k: {"ticket_id": new_id(), **CLOSE},
        "not_found",
        "ticket_id",
        "unknown_ticket",
    ),
    (
        "service_desk",
        "get_ticket",
        lambda k: {"ticket_id": new_id()},
        "not_found",
        "ticket_id",
        "unknown_ticket",
    ),
    ("analytics", "get_customer_360", lambda k: {}, "validation_failed", "customer_id", "required"),
    (
        "analytics",
        "get_customer_360",
        lambda k: {"customer_id": new_id()},
        "not_found",
        "customer_id",
        "unknown_customer",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(date_of_birth="1990-01-01"),
        "validation_failed",
        "date_of_birth",
        "matches_national_id",
    ),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(national_id=FULLWIDTH_DIGITS_ID),
        "validation_failed",
        "national_id",
        "format",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": k["customer_id"], **SALE, "annual_premium": "1e1000000"},
        "validation_failed",
        "annual_premium",
        "range",
    ),
    (
        "sales",
        "sell_policy",
        lambda k: {"customer_id": k["customer_id"], **SALE, "start_date": "9999-06-01"},
        "validation_failed",
        "start_date",
        "range",
    ),
    ("sales", "get_policy", lambda k: {}, "validation_failed", "policy_number", "required"),
    ("service_desk", "get_ticket", lambda k: {}, "validation_failed", "ticket_id", "required"),
    ("service_desk", "get_ticket", lambda k: {"ticket_id": ["x"]}, "validation_failed", "ticket_id", "type"),
    # The sales force and ownership.
    (
        "sales",
        "create_team",
        lambda k: {"name": "x", "branch": "y"},
        "validation_failed",
        "team_id",
        "required",
    ),
    (
        "sales",
        "create_team",
        lambda k: {"team_id": 7, "name": "x", "branch": "y"},
        "validation_failed",
        "team_id",
        "type",
    ),
    (
        "sales",
        "create_team",
        lambda k: {"team_id": "T-1", "name": "again", "branch": "y"},
        "validation_failed",
        "team_id",
        "already_exists",
    ),
    (
        "sales",
        "appoint_team_manager",
        lambda k: {"team_id": "T-nowhere", "manager_user_id": "m", "reason": "x"},
        "validation_failed",
        "team_id",
        "unknown_team",
    ),
    (
        "sales",
        "register_agent",
        lambda k: {"agent_id": "Z-1", "name": "x", "team_id": "T-nowhere", "hired_on": "2020-01-01"},
        "validation_failed",
        "team_id",
        "unknown_team",
    ),
    (
        "sales",
        "register_agent",
        lambda k: {"agent_id": "Z-1", "name": "x", "team_id": "T-1", "hired_on": "soon"},
        "validation_failed",
        "hired_on",
        "type",
    ),
    (
        "sales",
        "move_agent",
        lambda k: {"agent_id": "Z-404", "team_id": "T-1", "reason": "x"},
        "validation_failed",
        "agent_id",
        "unknown_agent",
    ),
    (
        "sales",
        "move_agent",
        lambda k: {"agent_id": "A-1", "team_id": "T-nowhere", "reason": "x"},
        "validation_failed",
        "team_id",
        "unknown_team",
    ),
    (
        "sales",
        "record_agent_departure",
        lambda k: {"agent_id": "A-1", "departed_on": "2026-01-01", "reason": "x"},
        "validation_failed",
        "successor",
        "required",
    ),
    (
        "sales",
        "record_agent_departure",
        lambda k: {
            "agent_id": "A-1",
            "departed_on": "2026-01-01",
            "reason": "x",
            "successor": {"kind": "agent"},
        },
        "validation_failed",
        "successor.agent_id",
        "required",
    ),
    (
        "sales",
        "record_agent_departure",
        lambda k: {
            "agent_id": "A-1",
            "departed_on": "2026-01-01",
            "reason": "x",
            "successor": {"kind": "agent", "agent_id": "Z-404"},
        },
        "validation_failed",
        "successor.agent_id",
        "unknown_agent",
    ),
    ("sales", "get_agent", lambda k: {"agent_id": "Z-404"}, "not_found", "agent_id", "unknown_agent"),
    ("sales", "get_team", lambda k: {"team_id": ""}, "validation_failed", "team_id", "format"),
    (
        "sales",
        "plan_succession",
        lambda k: {"agent_id": "A-1", "successor": {"kind": "round_robin", "team_id": "T-nowhere"}},
        "validation_failed",
        "successor.team_id",
        "unknown_team",
    ),
    ("sales", "scope_of", lambda k: {"owner_ids": "A-1"}, "validation_failed", "owner_ids", "type"),
    (
        "customer",
        "register_customer",
        lambda k: customer_payload(agent_id="Z-404"),
        "validation_failed",
        "owning_agent_id",
        "unknown_agent",
    ),
    (
        "customer",
        "reassign_customer",
        lambda k: {"customer_id": "not-a-uuid", "new_agent_id": "A-1", "reason": "x"},
        "validation_failed",
        "customer_id",
        "type",
    ),
    (
        "customer",
        "reassign_customer",
        lambda k: {"customer_id": k["customer_id"], "new_agent_id": "Z-404", "reason": "x"},
        "validation_failed",
        "new_agent_id",
        "unknown_agent",
    ),
    (
        "customer",
        "reassign_customer",
        lambda k: {"customer_id": k["customer_id"], "new_agent_id": "A-1001", "reason": "x"},
        "validation_failed",
        "new_agent_id",
        "unchanged",
    ),
    (
        "customer",
        "transfer_book",
        lambda k: {"from_agent_id": "A-1", "successor": {"kind": "sideways"}, "reason": "x"},
        "validation_failed",
        "successor.kind",
        "one_of",
    ),
    (
        "customer",
        "transfer_book",
        lambda k: {
            "from_agent_id": "A-1",
            "successor": {"kind": "agent", "agent_id": "Z-404"},
            "reason": "x",
        },
        "validation_failed",
        "successor.agent_id",
        "unknown_agent",
    ),
    (
        "customer",
        "undo_book_transfer",
        lambda k: {"transfer_id": new_id()},
        "validation_failed",
        "reason",
        "required",
    ),
    (
        "customer",
        "undo_book_transfer",
        lambda k: {"transfer_id": new_id(), "reason": "x"},
        "not_found",
        "transfer_id",
        "unknown_transfer",
    ),
    (
        "customer",
        "get_book_transfer",
        lambda k: {"transfer_id": new_id(), "from_agent_id": "A-1"},
        "validation_failed",
        "transfer_id",
        "one_of",
    ),
    (
        "customer",
        "list_customers",
        lambda k: {"owning_agent_id": "A-1", "page_size": 501},
        "validation_failed",
        "page_size",
        "range",
    ),
    # The customer record.
    (
        "customer",
        "update_profile",
        lambda k: {"customer_id": k["customer_id"], "reason": "nothing to change"},
        "validation_failed",
        "_payload",
        "required",
    ),
    (
        "customer",
        "update_profile",
        lambda k: {"customer_id": k["customer_id"], "mobile_phone": "12345", "reason": "x"},
        "validation_failed",
        "mobile_phone",
        "format",
    ),
    (
        "customer",
        "update_profile",
        lambda k: {"customer_id": k["customer_id"], "date_of_birth": "1990-01-01", "reason": "x"},
        "validation_failed",
        "date_of_birth",
        "matches_national_id",
    ),
    (
        "customer",
        "update_profile",
        lambda k: {"customer_id": k["customer_id"], "email": "not an email", "reason": "x"},
        "validation_failed",
        "email",
        "format",
    ),
    ("customer", "get_customer_history", lambda k: {}, "validation_failed", "customer_id", "required"),
    # Duplicates, merges and erasure.
    ("customer", "find_duplicates", lambda k: {"customer_id": 7}, "validation_failed", "customer_id", "type"),
    (
        "customer",
        "merge_customers",
        lambda k: {"survivor_id": k["customer_id"], "duplicate_id": k["customer_id"], "reason": "same"},
        "validation_failed",
        "duplicate_id",
        "same_customer",
    ),
    (
        "customer",
        "merge_customers",
        lambda k: {"survivor_id": k["customer_id"], "duplicate_id": new_id(), "reason": "same person"},
        "not_found",
        "duplicate_id",
        "unknown_customer",
    ),
    (
        "customer",
        "erase_customer",
        lambda k: {"customer_id": k["customer_id"], "reason": "request"},
        "validation_failed",
        "request_reference",
        "required",
    ),
    (
        "customer",
        "erase_customer",
        lambda k: {"customer_id": new_id(), "reason": "request", "request_reference": "DSR-1"},
        "not_found",
        "customer_id",
        "unknown_customer",
    ),
    # Contact points, preferences and consents.
    (
        "customer",
        "add_contact_point",
        lambda k: {"customer_id": k["customer_id"], "kind": "phone", "phone": "12345"},
        "validation_failed",
        "phone",
        "format",
    ),
    (
        "customer",
        "add_contact_point",
        lambda k: {"customer_id": k["customer_id"], "kind": "email", "phone": "13912345678"},
        "validation_failed",
        "email",
        "required",
    ),
    (
        "customer",
        "add_contact_point",
        lambda k: {
            "customer_id": k["customer_id"],
            "kind": "postal_address",
            "address": {"line1": "1 Road", "city": "Hangzhou", "province": "Zhejiang", "postal_code": "31"},
        },
        "validation_failed",
        "address.postal_code",
        "format",
    ),
    (
        "customer",
        "add_contact_point",
        lambda k: {"customer_id": k["customer_id"], "kind": "email", "email": "a@b.cn", "preferred": "yes"},
        "validation_failed",
        "preferred",
        "type",
    ),
    (
        "customer",
        "add_contact_point",
        lambda k: {"customer_id": k["customer_id"], "kind": "fax", "phone": "13912345678"},
        "validation_failed",
        "kind",
        "one_of",
    ),
    (
        "customer",
        "remove_contact_point",
        lambda k: {"customer_id": k["customer_id"], "contact_point_id": new_id(), "reason": "gone"},
        "validation_failed",
        "contact_point_id",
        "unknown",
    ),
    (
        "customer",
        "set_contact_preferences",
        lambda k: {
            "customer_id": k["customer_id"],
            "best_time_to_call": {"from": "20:00", "to": "09:00"},
            "reason": "x",
        },
        "validation_failed",
        "best_time_to_call.to",
        "order",
    ),
    (
        "customer",
        "set_contact_preferences",
        lambda k: {"customer_id": k["customer_id"], "reason": "x"},
        "validation_failed",
        "_payload",
        "required",
    ),
    (
        "customer",
        "record_consent",
        lambda k: {
            "customer_id": k["customer_id"],
            "channel": "fax",
            "purpose": "marketing",
            "status": "granted",
            "source": {"kind": "form", "reference": "F-1"},
        },
        "validation_failed",
        "channel",
        "one_of",
    ),
    (
        "customer",
        "record_consent",
        lambda k: {
            "customer_id": k["customer_id"],
            "channel": "sms",
            "purpose": "marketing",
            "status": "granted",
            "source": {"kind": "form", "reference": "F-1"},
            "given_at": "2999-01-01T00:00:00+00:00",
        },
        "validation_failed",
        "given_at",
        "not_in_future",
    ),
    (
        "customer",
        "record_consent",
        lambda k: {
            "customer_id": k["customer_id"],
            "channel": "sms",
            "purpose": "marketing",
            "status": "granted",
        },
        "validation_failed",
        "source",
        "required",
    ),
    (
        "customer",
        "get_consents",
        lambda k: {"customer_id": "nope"},
        "validation_failed",
        "customer_id",
        "type",
    ),
    (
        "customer",
        "may_contact",
        lambda k: {"customer_id": k["customer_id"], "channel": "sms", "purpose": "spam"},
        "validation_failed",
        "purpose",
        "one_of",
    ),
    (
        "analytics",
        "get_customer_360",
        lambda k: {"customer_id": True},
        "validation_failed",
        "customer_id",
        "type",
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "build", "code", "field", "rule"),
    CASES,
    ids=[f"{c[1]}-{c[4]}-{c[5]}" for c in CASES],
)
def test_bad_input_is_refused_with_field_and_rule_and_appends_nothing(
    operator_rpc: CrmClient,
    stores: Stores,
    known: dict[str, str],
    service: str,
    method: str,
    build: Any,
    code: str,
    field: str,
    rule: str,
) -> None:
    payload = build(known)
    before = stores.positions()
    reply = operator_rpc.call(service, method, payload)
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert error["code"] == code, error
    assert {"field": field, "rule": rule} in [
        {"field": f["field"], "rule": f["rule"]} for f in error["fields"]
    ], error
    assert error["correlation_id"]
    assert stores.positions() == before


def test_every_rpc_has_bad_input_cases() -> None:
    from services.analytics.service import AnalyticsService
    from services.customer.service import CustomerService
    from services.sales.service import SalesService
    from services.service_desk.service import ServiceDeskService

    covered = {(c[0], c[1]) for c in CASES}
    for service in (CustomerService, SalesService, ServiceDeskService, AnalyticsService):
        for name in vars(service):
            method = getattr(service, name)
            if callable(method) and getattr(method, "nameko_entrypoints", None) and name != "ping":
                assert (service.name, name) in covered, f"{service.name}.{name} has no bad-input case"
