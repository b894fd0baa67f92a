"""Rebuild of the analytics read models from the event stores, while live events keep flowing.

1. Record a fresh collection as ``building`` in the catalog. From then on the live projector also
   applies every event it consumes to the fresh collection, in strict version order.
2. Wait longer than the catalog cache lives, so every projector has seen step 1.
3. Replay every stored event of every store, in each store's order, in batches, into the fresh
   collection (strict order again; already applied versions are skipped).
4. Switch reads to the fresh collection and drop the old one.

An event stored before the replay's last read is replayed; one stored after it is consumed by a
projector that already writes to both collections. Strict order means a live event that overtakes
the replay is left for the replay instead of making it skip older versions. Memory stays flat:
only one batch of events and the documents it touches are held at a time."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.database import Database

from crm_shared.eventstore import CrmApplication
from services.analytics.store import CUSTOMER_360, ReadModelCatalog, apply_batch, ensure_indexes

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RebuildSummary:
    model: str
    collection: str
    replaced: str
    events_read: int
    events_projected: int
    documents: int
    seconds: float
    events_per_second: float
    replay_seconds: float
    replay_events_per_second: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak resident memory (this one's by default). ``ru_maxrss`` would not do:
    Linux carries it across exec, so a process started by a larger one reports its parent's
    high-water mark. ``VmHWM`` belongs to the process image and starts afresh at exec."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Rebuilder:
    def __init__(
        self,
        database: Database,
        sources: Sequence[CrmApplication],
        *,
        batch_size: int = 1000,
        catalog: ReadModelCatalog | None = None,
    ) -> None:
        self.database = database
        self.sources = sources
        self.batch_size = batch_size
        self.catalog = catalog or ReadModelCatalog(database)

    @property
    def settle_seconds(self) -> float:
        """Longer than any process may act on a cached catalog entry."""
        return self.catalog.ttl * 2 + 0.5

    def total_events(self) -> int:
        return sum(source.max_position() for source in self.sources)

    def rebuild_customer_360(
        self, progress: Progress = lambda _n: None, *, force: bool = False
    ) -> RebuildSummary:
        started = time.monotonic()
        fresh = f"{CUSTOMER_360}_{time.strftime('%Y%m%d%H%M%S')}_{time.monotonic_ns() % 10**6:06d}"
        collection = self.database[fresh]
        if force:
            abandoned = self.catalog.force_rebuild(CUSTOMER_360, fresh)
        else:
            self.catalog.begin_rebuild(CUSTOMER_360, fresh)
            abandoned = None
        ensure_indexes(collection)
        try:
            time.sleep(self.settle_seconds)  # every projector now writes to both
            if abandoned:
                self.database.drop_collection(abandoned)
            read = projected = 0
            replay_started = time.monotonic()
            for source in self.sources:
                for batch in source.notifications(after=0, batch_size=self.batch_size):
                    messages = [m for n in batch if (m := source.envelope(n)) is not None]
                    apply_batch(collection, messages)
                    read += len(batch)
                    projected += len(messages)
                    progress(len(batch))
        except BaseException:
            self.catalog.abort_rebuild(CUSTOMER_360, fresh)
            time.sleep(self.settle_seconds)  # projectors stop writing to it before it goes
            self.database.drop_collection(fresh)
            raise
        replay_seconds = time.monotonic() - replay_started
        try:
            replaced = self.catalog.switch(CUSTOMER_360, fresh)
        except RuntimeError:
            self.database.drop_collection(fresh)
            raise
        time.sleep(self.settle_seconds)  # let readers and writers move off the old one
        self.database.drop_collection(replaced)
        seconds = time.monotonic() - started
        return RebuildSummary(
            model=CUSTOMER_360,
            collection=fresh,
            replaced=replaced,
            events_read=read,
            events_projected=projected,
            documents=collection.estimated_document_count(),
            seconds=round(seconds, 2),
            events_per_second=round(read / seconds, 1) if seconds else 0.0,
            replay_seconds=round(replay_seconds, 2),
            replay_events_per_second=round(read / replay_seconds, 1) if replay_seconds else 0.0,
            peak_rss_mb=round(peak_rss_mb(), 1),
        )
