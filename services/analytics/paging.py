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
    """Every matching document, a page at a time, from one cursor in natural order: on SecantusDB
    a range or a sort is a collection scan (paging by ``_id`` would read the collection once per
    page), and a collection scan returns each document at most once on MongoDB too. The driver
    holds one batch. (A server times out a cursor left idle for ten minutes; each page is done in
    seconds.)"""
    batch: list[dict[str, Any]] = []
    with collection.find(query, fields, batch_size=page) as cursor:
        for doc in cursor:
            batch.append(doc)
            if len(batch) >= page:
                yield batch
                batch = []
    if batch:
        yield batch
