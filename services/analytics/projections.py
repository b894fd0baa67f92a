"""The one mechanism every analytics read model uses.

A read model is a ``Projection``: a declaration (its name, the event types it takes, which fix its
queue's bindings on ``crm.events``, and its collection's indexes) and a pure way of applying a batch
of public envelopes to a collection, as guarded writes that make each event count once however
often it is delivered. ``ProjectionWriter`` is what a runner hands a batch to: it applies it to the
collection serving reads and, while a rebuild fills a fresh one (``ReadModelCatalog``), to that
one too, then records how far the projection got (``ProjectionStatus``, read back as its lag).
``crm_shared.projector.ProjectorRunner`` supplies the consuming, batching, acks and dead letters;
``services.analytics.projector`` runs any set of projections in one process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import IndexModel
from pymongo.collection import Collection
from pymongo.database import Database

from crm_shared.clock import Clock, utc_now
from services.analytics.catalog import ReadModelCatalog
from services.analytics.changes import Message

Outcome = BaseException | None
# (collection, messages, rebuilding) -> one outcome per message, in order (see ProjectorRunner).
# ``rebuilding`` is True for the collection a rebuild fills: there a version gap is no error, the
# replay brings the missing events, so the live copy leaves them to it.
ApplyBatch = Callable[[Collection, list[Message], bool], list[Outcome]]

log = logging.getLogger("crm.projector")
QUEUE_PREFIX = "analytics."
STATUS = "projection_status"


@dataclass(frozen=True)
class Projection:
    name: str
    description: str
    event_types: frozenset[str]
    indexes: tuple[IndexModel, ...]
    apply: ApplyBatch

    @property
    def queue(self) -> str:
        return QUEUE_PREFIX + self.name

    @property
    def bindings(self) -> tuple[str, ...]:
        """Its queue's routing keys: exactly the event types it takes."""
        return tuple(sorted(self.event_types))

    def takes(self, message: Message) -> bool:
        return message["event_type"] in self.event_types

    def ensure_indexes(self, collection: Collection) -> None:
        if self.indexes:
            collection.create_indexes(list(self.indexes))


def raise_first(outcomes: Iterable[Outcome]) -> None:
    for outcome in outcomes:
        if outcome is not None:
            raise outcome


class ProjectionStatus:
    """How far each projection got, one small document per projection, written after each batch:
    the events it applied, the latest event time among them, and how long the slowest event of the
    last batch took from happening to being applied (its delay)."""

    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self.collection = database[STATUS]
        self.clock = clock

    def record(self, name: str, messages: list[Message], applied: int) -> None:
        if not messages:
            return
        now = self.clock()
        latest = max(m["occurred_at"] for m in messages)
        oldest = min(m["occurred_at"] for m in messages)
        delay = max(0.0, (now - datetime.fromisoformat(oldest)).total_seconds())
        self.collection.update_one(
            {"_id": name},
            {
                "$inc": {"applied": applied},
                "$max": {"last_event_at": latest},
                "$set": {"last_batch_at": now.isoformat(), "last_delay_seconds": round(delay, 3)},
            },
            upsert=True,
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.collection.find_one({"_id": name}) or {}


# What runs after a batch is stored in the serving collection: (collection, messages, outcomes).
AfterBatch = Callable[[Collection, list[Message], list[Outcome]], None]


class ProjectionWriter:
    """The batch handler of one projection's runner."""

    def __init__(
        self,
        database: Database,
        projection: Projection,
        catalog: ReadModelCatalog | None = None,
        status: ProjectionStatus | None = None,
        after: AfterBatch | None = None,
    ) -> None:
        self.database = database
        self.projection = projection
        self.catalog = catalog or ReadModelCatalog(database)
        self.status = status
        self.after = after

    def collection(self) -> Collection:
        return self.database[self.catalog.targets(self.projection.name).active]

    def __call__(self, messages: list[Message]) -> list[Outcome]:
        targets = self.catalog.targets(self.projection.name)
        outcomes = self.projection.apply(self.database[targets.active], messages, False)
        if targets.building:
            raise_first(self.projection.apply(self.database[targets.building], messages, True))
        if self.status is not None:
            self.status.record(self.projection.name, messages, sum(o is None for o in outcomes))
        if self.after is not None:
            # Before the acknowledgement: a crash here delivers the batch again, and the reaction
            # to it runs again (it must be idempotent). A failure of the reaction is not the
            # messages' (they are stored): it is logged, and the nightly recompute catches up.
            try:
                self.after(self.database[targets.active], messages, outcomes)
            except Exception:
                log.exception(
                    "after a %s batch, its reaction failed (correlation_ids=%s)",
                    self.projection.name,
                    sorted({str(m.get("correlation_id")) for m in messages})[:5],
                )
        return outcomes


@dataclass(frozen=True)
class Lag:
    """How far one projection is behind: the events waiting in its queue, and how many seconds the
    view lags the world (the last batch's delay while its queue is empty; otherwise at least the
    time since it last applied anything)."""

    name: str
    queue: str
    consumers: int
    waiting_events: int
    behind_seconds: float | None  # None: events wait, and nothing was ever applied
    applied_events: int
    last_event_at: str | None
    last_batch_at: str | None
    rebuilding_into: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "consumers": self.consumers,
            "waiting_events": self.waiting_events,
            "behind_seconds": self.behind_seconds,
            "applied_events": self.applied_events,
            "last_event_at": self.last_event_at,
            "last_batch_at": self.last_batch_at,
            "rebuilding_into": self.rebuilding_into,
        }


def lag_of(
    projection: Projection,
    status: dict[str, Any],
    waiting: int,
    consumers: int,
    building: str | None,
    now: datetime,
) -> Lag:
    last_batch_at: str | None = status.get("last_batch_at")
    delay = float(status.get("last_delay_seconds", 0.0))
    behind: float | None = delay
    if waiting:
        idle = (
            None if last_batch_at is None else (now - datetime.fromisoformat(last_batch_at)).total_seconds()
        )
        behind = None if idle is None else max(delay, idle)
    return Lag(
        name=projection.name,
        queue=projection.queue,
        consumers=consumers,
        waiting_events=waiting,
        behind_seconds=None if behind is None else round(behind, 3),
        applied_events=int(status.get("applied", 0)),
        last_event_at=status.get("last_event_at"),
        last_batch_at=last_batch_at,
        rebuilding_into=building,
    )


def monotonic_collection_name(model: str) -> str:
    """A fresh collection's name for a rebuild of ``model``: later rebuilds sort after earlier ones."""
    return f"{model}_{time.strftime('%Y%m%d%H%M%S')}_{time.monotonic_ns() % 10**6:06d}"
