"""Tables of a context's own beside its event store (in the same SQLite file or PostgreSQL
database), for what an event store cannot answer by itself: "which customers does this agent own",
paged. They are derived from the store's own notification log by ``LocalProjection``: each batch
of rows is written in one transaction together with the position it reached, so a crash loses
nothing and applies nothing twice, and any number of processes may catch up at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import Notification

from crm_shared.eventstore import CrmApplication

Row = dict[str, Any]
log = logging.getLogger("crm.local_tables")
# Called between the batches of a long catch-up: in a green-threaded service (nameko) it yields to
# the hub, so the process's timers and other requests run while a backlog is read.
_between_batches: list[Callable[[], None]] = [lambda: None]


def yield_between_batches(cooperate: Callable[[], None]) -> None:
    _between_batches[0] = cooperate


class LocalTables:
    """SQL on the store's own database, in either dialect: write statements with ``?`` and they
    run on PostgreSQL with ``%s``."""

    def __init__(self, app: CrmApplication) -> None:
        self.app = app
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.postgres = type(recorder.datastore).__module__.startswith("eventsourcing.postgres")

    @property
    def creates_tables(self) -> bool:
        # Like the event store's own tables: created by the process unless a deployment creates
        # them once beforehand (concurrent DDL fails on PostgreSQL).
        return str(self.app.env.get("CREATE_TABLE", "true")).lower() in ("true", "yes", "y", "1", "on")

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=True) as cursor:
            yield Cursor(cursor, self._sql)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self._sql(statement), tuple(params))
            return [dict(row) for row in cursor.fetchall()]

    def compact_log(self) -> None:
        """Rewrite what the write-ahead log still holds into the database and empty the log
        (SQLite), so that bytes deleted with ``secure_delete`` leave no older copy behind. On
        PostgreSQL, dead rows wait for VACUUM and old WAL segments for recycling (see the README's
        threat model)."""
        if self.postgres:
            return
        for attempt in range(50):
            with self.datastore.get_connection(commit=True) as connection:
                cursor = connection.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()[0]
            if not busy:
                return
            time.sleep(0.02 * (attempt + 1))  # a reader holds an older snapshot: let it finish
        log.warning(
            "the write-ahead log could not be emptied (readers kept it busy); the next erasure retries"
        )

    def create(self, *statements: str) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for statement in statements:
                cursor.execute(statement)


class Cursor:
    def __init__(self, cursor: Any, sql: Callable[[str], str]) -> None:
        self.cursor = cursor
        self.sql = sql

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Runs the statement; the number of rows it changed."""
        self.cursor.execute(self.sql(statement), tuple(params))
        # eventsourcing wraps SQLite's cursor; psycopg's is its own.
        return int(getattr(self.cursor, "sqlite_cursor", self.cursor).rowcount)

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self.cursor.fetchall()]


def placeholders(values: Sequence[Any]) -> str:
    """``?, ?, ?`` for an ``IN (...)`` of ``values``."""
    return ", ".join("?" for _ in values)


def by_event_name(tables: object) -> Callable[[Cursor, Any], None]:
    """An ``apply`` for ``LocalProjection`` that hands each event to the method of ``tables`` named
    after it: ``Ticket.Opened`` to ``_ticket_opened(cursor, event)``."""

    def apply(cursor: Cursor, event: Any) -> None:
        getattr(tables, f"_{type(event).__qualname__.replace('.', '_').lower()}")(cursor, event)

    return apply


class Overtaken(Exception):
    """Another process recorded the same batch first; this transaction is rolled back."""


class LocalProjection:
    """Follows the application's own notification log into local tables. ``apply`` writes what one
    stored event means, on the cursor of the batch's transaction; it sees only the topics in
    ``topics``."""

    def __init__(
        self,
        tables: LocalTables,
        name: str,
        topics: Sequence[str],
        apply: Callable[[Cursor, Any], None],
        position_table: str,
    ) -> None:
        self.tables = tables
        self.name = name
        self.topics = frozenset(topics)
        self.apply = apply
        self.position_table = position_table

    def create(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {self.position_table} "
            "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
        )
        with self.tables.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self.position_table} (name, position) VALUES (?, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )

    def position(self) -> int:
        rows = self.tables.query(f"SELECT position FROM {self.position_table} WHERE name = ?", (self.name,))
        return int(rows[0]["position"]) if rows else 0

    def catch_up(self, batch_size: int = 500) -> int:
        """Apply everything stored since the recorded position; returns how many notifications
        were read. Safe to call from several processes at once."""
        read = 0
        while True:
            start = self.position()
            batch: Sequence[Notification] = self.tables.app.recorder.select_notifications(
                start=start, limit=batch_size, inclusive_of_start=False
            )
            if not batch:
                return read
            try:
                self._record(start, batch)
            except Overtaken:
                continue  # another process took this batch: read on from where it got to
            read += len(batch)
            _between_batches[0]()

    def _record(self, start: int, batch: Sequence[Notification]) -> None:
        mapper = self.tables.app.mapper
        self.tables.app.before_decoding(batch)
        with self.tables.transaction() as cursor:
            # The position first: it takes the write lock (SQLite) or the row lock (PostgreSQL),
            # and a batch another process recorded meanwhile is refused before anything is written.
            moved = cursor.execute(
                f"UPDATE {self.position_table} SET position = ? WHERE name = ? AND position = ?",
                (batch[-1].id, self.name, start),
            )
            if moved != 1:
                raise Overtaken
            for notification in batch:
                if notification.topic in self.topics:
                    self.apply(cursor, mapper.to_domain_event(notification))
