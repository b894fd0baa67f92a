"""Reusable field validators. Every message starts with a rule code, ``"<rule>: <text>"``, so that
validation failures can be reported as (field, rule, message) triples."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from marshmallow import ValidationError

# ISO 7064 MOD 11-2 weights and check characters of the PRC resident identity card (GB 11643-1999).
_NATIONAL_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_NATIONAL_ID_CHECK = "10X98765432"
_NATIONAL_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


def national_id_check_character(first_17_digits: str) -> str:
    total = sum(int(d) * w for d, w in zip(first_17_digits, _NATIONAL_ID_WEIGHTS, strict=True))
    return _NATIONAL_ID_CHECK[total % 11]


def national_id_birth_date(national_id: str) -> date | None:
    """The date of birth encoded in digits 7-14, or None when those digits are not a date."""
    try:
        return date(int(national_id[6:10]), int(national_id[10:12]), int(national_id[12:14]))
    except ValueError:
        return None


def normalise_national_id(value: str) -> str:
    return value.strip().upper()


def validate_national_id(value: str) -> None:
    national_id = normalise_national_id(value)
    if not _NATIONAL_ID_SHAPE.match(national_id):
        raise ValidationError("format: must be 17 digits followed by a digit or X")
    if national_id_birth_date(national_id) is None:
        raise ValidationError("birth_date: digits 7-14 must be a valid date (YYYYMMDD)")
    if national_id_check_character(national_id[:17]) != national_id[17]:
        raise ValidationError("checksum: check character does not match (ISO 7064 MOD 11-2)")


def rule(code: str, predicate: Callable[[Any], bool], text: str) -> Callable[[Any], None]:
    """A validator that fails with ``code`` when ``predicate`` is false."""

    def validate(value: Any) -> None:
        if not predicate(value):
            raise ValidationError(f"{code}: {text}")

    return validate


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("not_blank: must contain a non-space character")
