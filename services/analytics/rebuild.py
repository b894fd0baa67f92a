"""Rebuild of analytics read models from the event stores, while live events keep flowing. Any
set of projections is rebuilt from one replay: each batch read is applied to every one of them.

1. Record a fresh collection per model as ``building`` in the catalog. From then on the live projector also
   applies every event it consumes to the fresh collection, in strict version order.
2. Wait longer than the catalog cache lives, so every projector has seen step 1.
3. Replay every public event of every store, in each store's order, in pages, into the fresh
   collections (strict order again; already applied versions are skipped). The pages are the
   contract's envelopes as each write side publishes them (its ``read_history`` RPC), so a
   rebuild never decodes another context's stored events with that context's classes.
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
from typing import Any, Protocol

from pymongo.database import Database

from services.analytics.catalog import ReadModelCatalog
from services.analytics.projections import Projection, monotonic_collection_name, raise_first

Progress = Callable[[int], None]


class HistorySource(Protocol):
    """One write side's public history (``CrmApplication.public_history``, or its ``read_history``
    RPC)."""

    def max_position(self) -> int: ...

    def public_history(self, after: int, limit: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RebuiltModel:
    model: str
    collection: str
    replaced: str
    events_projected: int
    documents: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RebuildSummary:
    models: list[RebuiltModel]
    events_read: int
    seconds: float
    events_per_second: float
    replay_seconds: float
    replay_events_per_second: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model(self, name: str) -> RebuiltModel:
        return next(m for m in self.models if m.model == name)


class RpcHistory:
    """A write side's public history over its ``read_history`` RPC, page by page (``call`` sends
    one request as whoever may read it: an operator, or the rebuild process's service account)."""

    def __init__(self, call: Callable[[str, str, dict[str, Any]], dict[str, Any]], service: str) -> None:
        self.call = call
        self.service = service

    def public_history(self, after: int, limit: int) -> dict[str, Any]:
        reply = self.call(self.service, "read_history", {"after": after, "limit": limit})
        if not reply.get("ok"):
            error = reply.get("error", {})
            raise RuntimeError(
                f"the {self.service} service refused to read its history: {error.get('message', reply)}"
            )
        result: dict[str, Any] = reply["result"]
        return result

    def max_position(self) -> int:
        return int(self.public_history(0, 1)["max_position"])


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
        sources: Sequence[HistorySource],
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

    def rebuild(
        self, projections: Sequence[Projection], progress: Progress = lambda _n: None, *, force: bool = False
    ) -> RebuildSummary:
        started = time.monotonic()
        fresh: dict[str, str] = {}
        try:
            for projection in projections:
                fresh[projection.name] = self._begin(projection, force)
            time.sleep(self.settle_seconds)  # every projector now writes to both
            read, projected, replay_seconds = self._replay(projections, fresh, progress)
        except BaseException:
            for name, collection in fresh.items():
                self.catalog.abort_rebuild(name, collection)
            time.sleep(self.settle_seconds)  # projectors stop writing to them before they go
            for collection in fresh.values():
                self.database.drop_collection(collection)
            raise
        replaced: dict[str, str] = {}
        for projection in projections:
            try:
                replaced[projection.name] = self.catalog.switch(projection.name, fresh[projection.name])
            except RuntimeError:
                self.database.drop_collection(fresh[projection.name])
                raise
        time.sleep(self.settle_seconds)  # let readers and writers move off the old ones
        for collection in replaced.values():
            self.database.drop_collection(collection)
        seconds = time.monotonic() - started
        return RebuildSummary(
            models=[
                RebuiltModel(
                    model=p.name,
                    collection=fresh[p.name],
                    replaced=replaced[p.name],
                    events_projected=projected[p.name],
                    documents=self.database[fresh[p.name]].estimated_document_count(),
                )
                for p in projections
            ],
            events_read=read,
            seconds=round(seconds, 2),
            events_per_second=round(read / seconds, 1) if seconds else 0.0,
            replay_seconds=round(replay_seconds, 2),
            replay_events_per_second=round(read / replay_seconds, 1) if replay_seconds else 0.0,
            peak_rss_mb=round(peak_rss_mb(), 1),
        )

    def _begin(self, projection: Projection, force: bool) -> str:
        fresh = monotonic_collection_name(projection.name)
        if force:
            abandoned = self.catalog.force_rebuild(projection.name, fresh)
        else:
            self.catalog.begin_rebuild(projection.name, fresh)
            abandoned = None
        try:
            projection.ensure_indexes(self.database[fresh])
        except BaseException:
            self.catalog.abort_rebuild(projection.name, fresh)
            raise
        if abandoned:
            self.database.drop_collection(abandoned)
        return fresh

    def _replay(
        self, projections: Sequence[Projection], fresh: dict[str, str], progress: Progress
    ) -> tuple[int, dict[str, int], float]:
        read = 0
        projected = dict.fromkeys(fresh, 0)
        replay_started = time.monotonic()
        for source in self.sources:
            after = 0
            while True:
                page = source.public_history(after, self.batch_size)
                messages, advanced = page["events"], page["next_after"] - after
                if not advanced:
                    break
                after = page["next_after"]
                for projection in projections:
                    taken = [m for m in messages if projection.takes(m)]
                    if taken:
                        collection = self.database[fresh[projection.name]]
                        # Store order: a gap here is a real one, never left for later.
                        raise_first(projection.apply(collection, taken, False))
                    projected[projection.name] += len(taken)
                read += advanced
                progress(advanced)
        return read, projected, time.monotonic() - replay_started
