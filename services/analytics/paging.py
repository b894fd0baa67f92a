"""Cursors of paged answers: the sort key of a page's last item, opaque to the caller."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from pymongo.collection import Collection

from crm_shared.errors import ValidationFailed


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def decode_cursor(cursor: str, arity: int, field: str = "cursor") -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, str) for v in values):
        raise ValidationFailed.single(
            field, "invalid_cursor", "not a cursor this query gave; start without one"
        )
    return values


def scan(
    collection: Collection, query: dict[str, Any], fields: dict[str, Any] | None, page: int
) -> Iterator[list[dict[str, Any]]]:
    """Every matching document, a page at a time in ``_id`` order, each page a query of its own
    (no cursor to time out over an hours-long pass; memory holds one page)."""
    last: Any = None
    while True:
        bounded = query if last is None else {**query, "_id": {"$gt": last}}
        batch = list(collection.find(bounded, fields).sort("_id", 1).limit(page))
        if not batch:
            return
        yield batch
        last = batch[-1]["_id"]
