"""Cursors of paged answers: the sort key of a page's last item, opaque to the caller."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, CursorNotFound

from crm_shared.errors import ValidationFailed

log = logging.getLogger("crm.paging")
RESUMES = 5
pause = time.sleep  # between tries; a test makes it instant


class ScanInterrupted(RuntimeError):
    """A long pass lost its collection: what it read so far is not the whole of it."""


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
    collection: Collection,
    query: dict[str, Any],
    fields: dict[str, Any] | None,
    page: int,
    *,
    removes_what_it_reads: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """Every matching document, a page at a time, from one cursor in natural order: on SecantusDB
    a range or a sort is a collection scan (paging by ``_id`` would read the collection once per
    page), and a collection scan returns each document at most once on MongoDB too. The driver
    holds one batch.

    A pass over a million documents lasts an hour: a connection lost on the way (a busy server
    that missed the driver's heartbeat, a restart) or a cursor the server forgot is opened again
    past the documents already read (natural order stands under updates and appends), up to
    ``RESUMES`` times; a collection dropped meanwhile ends the pass with ``ScanInterrupted``. A
    pass that deletes what it reads (``removes_what_it_reads``) starts again from the first match
    instead: what it read no longer matches."""
    batch: list[dict[str, Any]] = []
    read = resumes = 0
    while True:
        try:
            skip = 0 if removes_what_it_reads else read
            with collection.find(query, fields, batch_size=page, skip=skip) as cursor:
                for doc in cursor:
                    batch.append(doc)
                    read += 1
                    if len(batch) >= page:
                        yield batch
                        batch = []
            break
        except (AutoReconnect, CursorNotFound) as lost:
            resumes += 1
            if resumes > RESUMES:
                raise
            log.warning(
                "the scan of %s lost its cursor after %d documents (%s); reading on",
                collection.name,
                read,
                lost,
            )
            pause(min(30.0, 2.0**resumes))
            if collection.name not in collection.database.list_collection_names():
                # Dropped meanwhile (a rebuild swapped it out): reading on would find nothing and
                # end the pass as if it were whole.
                raise ScanInterrupted(f"{collection.name} is gone; the pass must start again") from lost
            if removes_what_it_reads:
                # What was yielded is deleted and matches no more; the pending batch comes again.
                read, batch = 0, []
    if batch:
        yield batch
