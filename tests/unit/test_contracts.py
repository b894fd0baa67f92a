from __future__ import annotations

from decimal import Decimal

import pytest
from marshmallow import ValidationError

from contracts import rpc
from contracts.validators import national_id_check_character, validate_national_id
from crm_shared.errors import ValidationFailed
from tests.support import customer_payload, make_national_id


def field_rules(schema: type, payload: dict) -> set[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        schema().load(payload)
    failed = ValidationFailed.from_marshmallow(caught.value)
    return {(f.field, f.rule) for f in failed.fields}


def test_known_good_national_id_passes() -> None:
    validate_national_id("11010519491231002X")
    assert national_id_check_character("11010519491231002") == "X"


@pytest.mark.parametrize(
    ("national_id", "rule"),
    [
        ("110105194912310021", "checksum"),
        ("11010519491331002X", "birth_date"),
        ("1101051949123100", "format"),
        ("11010519491231002Y", "format"),
    ],
)
def test_bad_national_ids_name_their_rule(national_id: str, rule: str) -> None:
    payload = customer_payload(national_id=national_id)
    assert ("national_id", rule) in field_rules(rpc.RegisterCustomer, payload)


def test_register_customer_accepts_a_valid_payload() -> None:
    data = rpc.RegisterCustomer().load(customer_payload())
    assert data["address"]["country"] == "CN"


def test_birth_date_must_match_the_national_id() -> None:
    payload = customer_payload(date_of_birth="1900-01-01")
    assert ("date_of_birth", "matches_national_id") in field_rules(rpc.RegisterCustomer, payload)


def test_missing_wrong_type_and_unknown_fields_are_named() -> None:
    payload = customer_payload()
    del payload["full_name"]
    payload["mobile_phone"] = 13912345678
    payload["nickname"] = "x"
    rules = field_rules(rpc.RegisterCustomer, payload)
    assert ("full_name", "required") in rules
    assert ("mobile_phone", "type") in rules
    assert ("nickname", "unknown_field") in rules


def test_nested_address_errors_carry_a_dotted_path() -> None:
    payload = customer_payload(address={"city": "Shanghai", "province": "Shanghai"})
    assert ("address.line1", "required") in field_rules(rpc.RegisterCustomer, payload)


@pytest.mark.parametrize(
    ("premium", "rule"),
    [
        ("-100.00", "positive"),
        ("0", "positive"),
        ("12.345", "precision"),
        ("NaN", "finite"),
        ([1], "type"),
    ],
)
def test_premium_rules(premium: object, rule: str) -> None:
    payload = {
        "customer_id": "7d3e0c2a-6a4e-4f0e-9a43-2b0d7f1e9c11",
        "product": "life",
        "annual_premium": premium,
        "start_date": "2026-12-01",
        "term_years": 10,
    }
    assert ("annual_premium", rule) in field_rules(rpc.SellPolicy, payload)


def test_premium_keeps_exact_decimal() -> None:
    data = rpc.SellPolicy().load(
        {
            "customer_id": "7d3e0c2a-6a4e-4f0e-9a43-2b0d7f1e9c11",
            "product": "auto",
            "annual_premium": "1234.50",
            "start_date": "2026-12-01",
            "term_years": 1,
        }
    )
    assert data["annual_premium"] == Decimal("1234.50")


def test_satisfaction_must_be_an_integer_from_1_to_5() -> None:
    base = {"ticket_id": "7d3e0c2a-6a4e-4f0e-9a43-2b0d7f1e9c11", "resolution": "done"}
    assert ("satisfaction", "range") in field_rules(rpc.CloseComplaint, base | {"satisfaction": 6})
    assert ("satisfaction", "type") in field_rules(rpc.CloseComplaint, base | {"satisfaction": 4.5})


def test_generated_national_ids_are_valid() -> None:
    for serial in range(50):
        validate_national_id(make_national_id(serial=serial))


def test_every_public_event_of_every_context_has_a_contract() -> None:
    import importlib

    from contracts.events import PAYLOAD_SCHEMAS
    from crm_shared.domain import CrmAggregate

    for module in (
        "services.customer.domain",
        "services.customer.transfer",
        "services.sales.domain",
        "services.service_desk.domain",
    ):
        importlib.import_module(module)

    def aggregates(cls: type) -> list[type]:
        return [cls, *(a for sub in cls.__subclasses__() for a in aggregates(sub))]

    published = {
        (event.EVENT_TYPE, event.SCHEMA_VERSION)
        for aggregate in aggregates(CrmAggregate)
        for event in vars(aggregate).values()
        if isinstance(event, type) and getattr(event, "EVENT_TYPE", None)
    }
    assert len(published) >= 15
    assert published - set(PAYLOAD_SCHEMAS) == set()
