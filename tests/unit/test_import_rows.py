"""The importer's rows: headers mapped to fields, the registration contract applied to each row, and
the row's idempotency key. No I/O."""

from __future__ import annotations

import pytest

from crm_cli.importing import column_mapping, refusal, registration, row_command_id, validate_row
from tests.support import BOOK_HEADERS, book_rows


def test_known_headers_in_either_language_and_a_mapping_for_others() -> None:
    assert column_mapping(list(BOOK_HEADERS))["姓名"] == "full_name"
    columns = column_mapping(
        ["Kundenname", "national_id", "phone", "birth date", "agent", "street", "city", "province", "notes"],
        {"Kundenname": "full_name"},
    )
    assert columns["Kundenname"] == "full_name" and "notes" not in columns
    with pytest.raises(SystemExit, match="no column for national_id"):
        column_mapping(["name", "phone"])
    with pytest.raises(SystemExit, match="two columns fill 'full_name'"):
        column_mapping(["name", "姓名", "national_id", "phone", "birth date", "agent", "street"])
    with pytest.raises(SystemExit, match="which is no field"):
        column_mapping(list(BOOK_HEADERS), {"x": "shoe_size"})


def test_every_kind_of_bad_row_is_named_by_field_and_rule() -> None:
    columns = column_mapping(list(BOOK_HEADERS))
    seen: set[tuple[str, str]] = set()
    for number, cells, expected in book_rows(1000, ["A-1"], "A-GONE"):
        payload = registration(dict(zip(BOOK_HEADERS, [c or None for c in cells], strict=True)), columns)
        found = {(r.field, r.rule) for r in validate_row(number, payload)}
        if expected is None or expected[1] in ("unknown_agent", "agent_departed", "repeated_in_import"):
            assert found == set(), (number, found)  # good, or for the service to refuse
        else:
            assert expected in found, (number, expected, found)
            seen.add(expected)
    assert len(seen) == 6  # every kind the contract alone can tell


def test_the_same_person_has_the_same_key_in_any_file() -> None:
    secret = b"s" * 32
    a = row_command_id({"national_id": "11010519491231002x "}, secret)
    assert a == row_command_id({"national_id": "11010519491231002X"}, secret)
    assert a != row_command_id({"national_id": "110105194912310011"}, secret)
    assert a != row_command_id({"national_id": "11010519491231002X"}, b"t" * 32)  # keyed


def test_a_reused_key_means_the_person_was_imported_with_other_details() -> None:
    reply = {
        "ok": False,
        "error": {
            "code": "validation_failed",
            "fields": [{"field": "command_id", "rule": "reused", "message": "m"}],
        },
    }
    (rejection,) = refusal(7, reply)
    assert (rejection.row, rejection.field, rejection.rule) == (7, "national_id", "repeated_in_import")
    agent = {
        "code": "validation_failed",
        "fields": [{"field": "owning_agent_id", "rule": "unknown_agent", "message": "m"}],
    }
    assert refusal(8, {"ok": False, "error": agent})[0].rule == "unknown_agent"
