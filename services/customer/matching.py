"""Possible duplicates: customers who share a mobile phone, or a name and date of birth once both
are normalised. Besides the national id (which the store makes unique), these are what tells a
clerk that the person may be registered already. The lookup table is derived from the customer
store's own log (``crm_shared.local_tables``) and holds keyed hashes, never the values."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from eventsourcing.utils import get_topic

from crm_shared.crypto import blind_index
from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables
from services.customer.domain import Customer, normalised_phone

MATCH_KEYS = "customer_match_keys"
REASONS = ("same_mobile_phone", "same_name_and_date_of_birth")


def normalised_name(name: str) -> str:
    """What two spellings of one name share: full-width letters made plain, case folded, spaces and
    punctuation (the middle dot of transliterated names, hyphens, commas) dropped."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if not (c.isspace() or unicodedata.category(c).startswith("P")))


def match_values(full_name: str | None, mobile_phone: str | None, date_of_birth: Any) -> dict[str, str]:
    """The values a customer is matched on, by reason; a missing part (erased) matches nothing."""
    values: dict[str, str] = {}
    if mobile_phone:
        values["same_mobile_phone"] = f"phone:{normalised_phone(mobile_phone)}"
    if full_name and date_of_birth:
        birth = date_of_birth.isoformat() if isinstance(date_of_birth, date) else str(date_of_birth)
        values["same_name_and_date_of_birth"] = f"name:{normalised_name(full_name)}|{birth}"
    return values


def duplicate_candidates(
    rows: Sequence[Mapping[str, Any]], exclude: str | None = None
) -> list[dict[str, Any]]:
    """Rows of (customer_id, reason) as one entry per customer with all its reasons, most reasons
    first, then by id."""
    by_customer: dict[str, set[str]] = {}
    for row in rows:
        if row["customer_id"] != exclude:
            by_customer.setdefault(str(row["customer_id"]), set()).add(str(row["reason"]))
    found = [{"customer_id": c, "reasons": sorted(r)} for c, r in by_customer.items()]
    return sorted(found, key=lambda f: (-len(f["reasons"]), f["customer_id"]))


class MatchIndex:
    def __init__(self, app: CrmApplication, data_key: bytes, positions_table: str) -> None:
        self.app = app
        self.data_key = data_key
        self.tables = LocalTables(app)
        self.projection = LocalProjection(
            self.tables,
            "matching",
            [
                get_topic(Customer.Registered),
                get_topic(Customer.ProfileUpdated),
                get_topic(Customer.Merged),
                get_topic(Customer.Erased),
            ],
            self._apply,
            positions_table,
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {MATCH_KEYS} ("
            "match_key TEXT NOT NULL, customer_id TEXT NOT NULL, reason TEXT NOT NULL, "
            "PRIMARY KEY (match_key, customer_id))",
            f"CREATE INDEX IF NOT EXISTS {MATCH_KEYS}_by_customer ON {MATCH_KEYS} (customer_id)",
        )
        self.projection.create()

    def keys(self, values: Mapping[str, str]) -> dict[str, str]:
        return {reason: blind_index(self.data_key, value) for reason, value in values.items()}

    def _index(self, cursor: Cursor, customer_id: str, values: Mapping[str, str]) -> None:
        for reason, key in self.keys(values).items():
            cursor.execute(
                f"DELETE FROM {MATCH_KEYS} WHERE customer_id = ? AND reason = ?", (customer_id, reason)
            )
            cursor.execute(
                f"INSERT INTO {MATCH_KEYS} (match_key, customer_id, reason) VALUES (?, ?, ?) "
                "ON CONFLICT (match_key, customer_id) DO NOTHING",
                (key, customer_id, reason),
            )

    def _apply(self, cursor: Cursor, event: Any) -> None:
        customer_id = str(event.originator_id)
        if isinstance(event, Customer.Registered):
            self._index(
                cursor, customer_id, match_values(event.full_name, event.mobile_phone, event.date_of_birth)
            )
        elif isinstance(event, Customer.ProfileUpdated):
            if event.changes and {"full_name", "mobile_phone", "date_of_birth"} & set(event.changes):
                # The name and the birth date match together: take the record as it was then.
                record: Customer = self.app.repository.get(
                    event.originator_id, version=event.originator_version
                )
                if record.merged_into is None and record.erased_at is None:
                    self._index(
                        cursor,
                        customer_id,
                        match_values(record.full_name, record.mobile_phone, record.date_of_birth),
                    )
        else:  # merged into another, or erased: nobody is a duplicate of this record any more
            cursor.execute(f"DELETE FROM {MATCH_KEYS} WHERE customer_id = ?", (customer_id,))

    def catch_up(self) -> int:
        return self.projection.catch_up()

    def matches(self, values: Mapping[str, str], owners_table: str, limit: int = 50) -> list[dict[str, Any]]:
        """Customers sharing any of the values, with their owner: (customer_id, reason, owner_id),
        at most ``limit`` per value (a number shared by hundreds, say a branch's switchboard, is
        no lead to a duplicate: a few of them say enough). One index range per value."""
        found: list[dict[str, Any]] = []
        for key in self.keys(values).values():
            found += self.tables.query(
                f"SELECT m.customer_id, m.reason, o.owner_id FROM {MATCH_KEYS} m "
                f"JOIN {owners_table} o ON o.customer_id = m.customer_id WHERE m.match_key = ? LIMIT ?",
                (key, limit),
            )
        return found
