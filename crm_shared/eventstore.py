"""Event store wiring: an eventsourcing Application per bounded context, on a SQLite file by default
or PostgreSQL when configured, and the translation of stored events into public envelopes."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Notification,
    Transcoding,
)
from eventsourcing.utils import EnvType, resolve_topic

from contracts.events import ENVELOPE_VERSION
from crm_shared.clock import Clock, utc_now
from crm_shared.config import Settings
from crm_shared.domain import CrmAggregate, use_event_clock
from crm_shared.errors import ConcurrencyConflict

EVENT_ID_NAMESPACE = uuid.UUID("5b0f3c2e-8f0e-4c55-9d3a-2f1e6f4b7a10")


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def event_store_env(context: str, settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for one context's own store. On PostgreSQL the contexts may
    share a database: each application's tables carry its name (``customerapplication_events``)."""
    if settings.event_store == "postgres":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": settings.postgres.get("POSTGRES_DBNAME", "crm"),
            "POSTGRES_HOST": settings.postgres.get("POSTGRES_HOST", "127.0.0.1"),
            "POSTGRES_PORT": settings.postgres.get("POSTGRES_PORT", "5432"),
            "POSTGRES_USER": settings.postgres.get("POSTGRES_USER", "postgres"),
            "POSTGRES_PASSWORD": settings.postgres.get("POSTGRES_PASSWORD", ""),
            "POSTGRES_SCHEMA": settings.postgres.get("POSTGRES_SCHEMA", "public"),
            # DDL run by several processes at once fails ('tuple concurrently updated'): a
            # deployment creates the tables once (crm_cli.system.prepare_event_stores) and starts
            # the processes with CRM_CREATE_TABLES=false.
            "CREATE_TABLE": settings.postgres.get("CRM_CREATE_TABLES", "true"),
            # Connections a process holds (and may add under load): a system of twenty-odd
            # processes shares the server's connections; a deployment sizes them to its server.
            "POSTGRES_POOL_SIZE": settings.postgres.get("POSTGRES_POOL_SIZE", "2"),
            "POSTGRES_MAX_OVERFLOW": settings.postgres.get("POSTGRES_MAX_OVERFLOW", "8"),
        }
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return sqlite_env(settings.data_dir / f"{context}.sqlite")


A = TypeVar("A", bound=CrmAggregate)


def sqlite_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "true",
    }


class CrmApplication(Application):
    """Base of the write-side applications. ``CONTEXT`` names the bounded context; it prefixes the
    public event types and names the store."""

    CONTEXT: ClassVar[str]
    # The aggregate cache is per process; a second process (or a restarted one) must see the
    # store's truth, so aggregates are always read from the store.
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "0"}

    # Keys the command fingerprints (crm_shared.commands) where a context has a secret for it.
    fingerprint_key: bytes | None = None

    def __init__(
        self, env: EnvType | None = None, clock: Clock = utc_now, zone: tzinfo | None = None
    ) -> None:
        super().__init__(env)
        self.clock = clock
        # The business's time zone: what a "day" is in plans and day reports.
        self.zone: tzinfo = zone or ZoneInfo(Settings.timezone)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        use_event_clock(settings.clock())
        return cls(
            env=event_store_env(cls.CONTEXT, settings),
            clock=settings.clock(),
            zone=ZoneInfo(settings.timezone),
        )

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """The business's calendar day now."""
        return self.clock().astimezone(self.zone).date()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def save_or_conflict(self, *aggregates: CrmAggregate) -> list[int]:
        """Append the aggregates' pending events atomically; a concurrent append to the same
        aggregate version becomes a ``ConcurrencyConflict``. Returns the notification ids."""
        try:
            recordings = self.save(*aggregates)
        except IntegrityError as e:
            raise ConcurrencyConflict(
                "another command changed this record at the same time; reload it and retry",
            ) from e
        return [r.notification.id for r in recordings]

    def find(self, kind: type[A], aggregate_id: uuid.UUID | str) -> A | None:
        """The aggregate of that id if it exists and is a ``kind``; None otherwise (also for an id
        that is not a UUID)."""
        try:
            found: object = self.repository.get(
                aggregate_id if isinstance(aggregate_id, uuid.UUID) else uuid.UUID(aggregate_id)
            )
        except (AggregateNotFoundError, ValueError):
            return None
        return found if isinstance(found, kind) else None

    def create_own_tables(self) -> None:
        """Tables of the context's own beside its store (``crm_shared.local_tables``), created once
        before the processes start, like the store's."""

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def notifications(self, after: int, batch_size: int = 500) -> Iterator[list[Notification]]:
        """Stored events in global order after position ``after``, in batches."""
        while True:
            batch = self.recorder.select_notifications(
                start=after, limit=batch_size, inclusive_of_start=False
            )
            if not batch:
                return
            self.before_decoding(batch)
            yield list(batch)
            after = batch[-1].id

    def public_history(self, after: int, limit: int) -> dict[str, Any]:
        """The public messages of up to ``limit`` stored events after position ``after``, as the
        relay publishes them (the contract, for consumers that rebuild from history), and the
        position to ask from next; ``max_position`` says how far the store reaches now."""
        batch = self.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
        self.before_decoding(batch)
        return {
            "context": self.CONTEXT,
            "events": [m for n in batch if (m := self.envelope(n)) is not None],
            "next_after": batch[-1].id if batch else after,
            "max_position": self.max_position(),
        }

    def before_decoding(self, notifications: Sequence[Notification]) -> None:
        """Called with each batch ``notifications`` reads, before its events are decoded (a
        context whose events are sealed reads the keys of the whole batch at once)."""

    def envelope(self, notification: Notification) -> dict[str, Any] | None:
        """The public message for a stored event, or None for internal events (told by the stored
        topic, so an internal event is never decoded)."""
        if not is_public_topic(notification.topic):
            return None
        event = self.mapper.to_domain_event(notification)
        return build_envelope(self.CONTEXT, notification.id, event)


@functools.cache
def is_public_topic(topic: str) -> bool:
    return getattr(resolve_topic(topic), "EVENT_TYPE", None) is not None


def build_envelope(context: str, position: int, event: Any) -> dict[str, Any] | None:
    event_type = getattr(event, "EVENT_TYPE", None)
    if event_type is None:
        return None
    meta = event.meta
    aggregate_id = str(event.originator_id)
    return {
        "envelope_version": ENVELOPE_VERSION,
        # Deterministic, so a republished event keeps its id and consumers can deduplicate.
        "event_id": str(
            uuid.uuid5(EVENT_ID_NAMESPACE, f"{context}:{aggregate_id}:{event.originator_version}")
        ),
        "event_type": event_type,
        "schema_version": event.SCHEMA_VERSION,
        "occurred_at": event.timestamp.isoformat(),
        "context": context,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": event.originator_version,
        "global_position": position,
        "correlation_id": meta["correlation_id"],
        "causation_id": meta.get("causation_id"),
        "actor": meta["actor"],
        "payload": event.public_payload(),
    }
