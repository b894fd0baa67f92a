"""Who owns which customers, and which book transfers are under way: local tables beside the
customer store, derived from its own log (``crm_shared.local_tables``). Pages are ordered by
customer id, so a cursor (the last id of a page) stays valid while customers are registered or
moved: a page never repeats a customer and never skips one that stayed with the owner."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from crm_shared.crypto import SubjectKeys, seal_text, unseal_text
from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables
from services.customer.domain import Customer
from services.customer.transfer import BookTransfer

OWNERS = "customer_owners"
TRANSFERS = "customer_book_transfers"
MOVES = "customer_transfer_moves"
POSITIONS = "customer_local_positions"


class OwnerIndex:
    """``keys``: the customers' own keys, under which each customer's name is kept here (so the
    index holds no personal data in clear, and an erasure needs nothing of it)."""

    def __init__(self, app: CrmApplication, keys: SubjectKeys) -> None:
        self.keys = keys
        self.tables = LocalTables(app)
        self.projection = LocalProjection(
            self.tables,
            "owners",
            [
                get_topic(Customer.Registered),
                get_topic(Customer.OwnerChanged),
                get_topic(Customer.Merged),
                get_topic(Customer.Erased),
                get_topic(BookTransfer.Started),
                get_topic(BookTransfer.Completed),
                get_topic(BookTransfer.UndoStarted),
                get_topic(BookTransfer.Undone),
            ],
            self._apply,
            POSITIONS,
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {OWNERS} ("
            "customer_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, sealed_name TEXT, "
            "registered_at TEXT NOT NULL, version BIGINT NOT NULL, last_transfer_id TEXT)",
            f"CREATE INDEX IF NOT EXISTS {OWNERS}_by_owner ON {OWNERS} (owner_id, customer_id)",
            f"CREATE INDEX IF NOT EXISTS {OWNERS}_by_transfer ON {OWNERS} (last_transfer_id, customer_id)",
            f"CREATE TABLE IF NOT EXISTS {TRANSFERS} ("
            "transfer_id TEXT PRIMARY KEY, from_agent_id TEXT NOT NULL, state TEXT NOT NULL, "
            "started_at TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {TRANSFERS}_by_state ON {TRANSFERS} (state, transfer_id)",
            f"CREATE INDEX IF NOT EXISTS {TRANSFERS}_by_agent ON {TRANSFERS} (from_agent_id, started_at)",
            f"CREATE TABLE IF NOT EXISTS {MOVES} ("
            "transfer_id TEXT NOT NULL, customer_id TEXT NOT NULL, PRIMARY KEY (transfer_id, customer_id))",
        )
        self.projection.create()

    def _apply(self, cursor: Cursor, event: Any) -> None:
        if isinstance(event, Customer.Registered):
            cursor.execute(
                f"INSERT INTO {OWNERS} (customer_id, owner_id, sealed_name, registered_at, version) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO NOTHING",
                (
                    event.customer_id,
                    event.owning_agent_id,
                    self._sealed(event.customer_id, event.full_name),
                    event.timestamp.isoformat(),
                    1,
                ),
            )
        elif isinstance(event, Customer.Merged):  # a duplicate belongs to no book: its survivor does
            cursor.execute(f"DELETE FROM {OWNERS} WHERE customer_id = ?", (event.customer_id,))
        elif isinstance(event, Customer.Erased):
            # erase_customer shreds the key once the erasure is stored; this makes sure of it
            # should that process have died in between.
            self.keys.shred_with(cursor, [event.customer_id])
            cursor.execute(
                f"UPDATE {OWNERS} SET sealed_name = NULL WHERE customer_id = ?", (event.customer_id,)
            )
        elif isinstance(event, Customer.OwnerChanged):
            if event.transfer_id is not None:
                cursor.execute(
                    f"INSERT INTO {MOVES} (transfer_id, customer_id) VALUES (?, ?) "
                    "ON CONFLICT (transfer_id, customer_id) DO NOTHING",
                    (event.transfer_id, event.customer_id),
                )
            cursor.execute(
                f"UPDATE {OWNERS} SET owner_id = ?, version = ?, last_transfer_id = ? "
                "WHERE customer_id = ? AND version < ?",
                (
                    event.new_agent_id,
                    event.originator_version,
                    event.transfer_id,
                    event.customer_id,
                    event.originator_version,
                ),
            )
        elif isinstance(event, BookTransfer.Started):
            cursor.execute(
                f"INSERT INTO {TRANSFERS} (transfer_id, from_agent_id, state, started_at) "
                "VALUES (?, ?, 'running', ?) ON CONFLICT (transfer_id) DO NOTHING",
                (event.transfer_id, event.from_agent_id, event.timestamp.isoformat()),
            )
        else:
            state = {
                BookTransfer.Completed: "completed",
                BookTransfer.UndoStarted: "undoing",
                BookTransfer.Undone: "undone",
            }[type(event)]
            cursor.execute(
                f"UPDATE {TRANSFERS} SET state = ? WHERE transfer_id = ?", (state, event.transfer_id)
            )

    def catch_up(self) -> int:
        return self.projection.catch_up()

    def _sealed(self, customer_id: str, name: str | None) -> str | None:
        key = self.keys.key_for(customer_id)
        return None if name is None or key is None else seal_text(key, name, customer_id)

    def names_of(self, rows: list[dict[str, Any]]) -> list[str | None]:
        """The names of the customers of ``rows`` (None for an erased one)."""
        self.keys.prefetch(str(r["customer_id"]) for r in rows)
        names: list[str | None] = []
        for row in rows:
            key = self.keys.key_for(str(row["customer_id"]))
            sealed = row["sealed_name"]
            names.append(
                None if key is None or sealed is None else unseal_text(key, sealed, str(row["customer_id"]))
            )
        return names

    def customers_of(self, owner_id: str, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.tables.query(
            f"SELECT customer_id, owner_id, sealed_name, registered_at FROM {OWNERS} "
            "WHERE owner_id = ? AND customer_id > ? ORDER BY customer_id LIMIT ?",
            (owner_id, after or "", limit),
        )

    def count_of(self, owner_id: str) -> int:
        rows = self.tables.query(f"SELECT COUNT(*) AS n FROM {OWNERS} WHERE owner_id = ?", (owner_id,))
        return int(rows[0]["n"])

    def moves_of(self, transfer_id: str, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The customers a transfer moved, in customer id order, with their owner now and the
        transfer that last moved them."""
        return self.tables.query(
            f"SELECT m.customer_id, o.owner_id, o.last_transfer_id FROM {MOVES} m "
            f"JOIN {OWNERS} o ON o.customer_id = m.customer_id "
            "WHERE m.transfer_id = ? AND m.customer_id > ? ORDER BY m.customer_id LIMIT ?",
            (transfer_id, after or "", limit),
        )

    def latest_transfer_of(self, agent_id: str) -> str | None:
        rows = self.tables.query(
            f"SELECT transfer_id FROM {TRANSFERS} WHERE from_agent_id = ? ORDER BY started_at DESC LIMIT 1",
            (agent_id,),
        )
        return str(rows[0]["transfer_id"]) if rows else None

    def active_transfers(self) -> list[str]:
        """Under way (moving, or undoing), oldest first."""
        rows = self.tables.query(
            f"SELECT transfer_id FROM {TRANSFERS} WHERE state IN ('running', 'undoing') "
            "ORDER BY started_at, transfer_id"
        )
        return [str(r["transfer_id"]) for r in rows]
