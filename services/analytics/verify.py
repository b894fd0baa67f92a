"""Verification of the customer 360 read model against the event stores, and repair of what differs.

What is compared, per customer, is which aggregate versions the document has applied (its
``record_version`` and the ``v`` of each item standing for an aggregate: ``applied_versions``):
that is what makes a document the projection of its history.

1. Forward: every stored event that belongs to a customer is applied to that customer's document
   (its applied version of the aggregate >= version). The stores are streamed in batches; each
   batch is checked with a few ``$in`` reads of the documents' versions.
2. Reverse: every document holds only what the stores hold. Each aggregate it has applied is in a
   store, at least at that version, and belongs to this customer; ``revision`` equals the number of
   events applied. A document holding no event of the stores is extra.
3. Live traffic: the projector lags behind the stores, so a customer failing (1) is checked again,
   for up to ``settle_seconds``, before it counts as differing. (2) needs no settling: an event is
   stored before any projector sees it.
4. Repair (optional): for chunks of the differing customers, stream the stores once collecting
   their events, recompute each document from scratch in store order, bring it up to whatever the
   live projector wrote meanwhile (the versions fetched from the stores), and write it with the
   store's compare-and-set token, against the document as it is now. A customer with no events
   loses its document.

Memory stays flat: one batch of events, one page of documents, the differing customers (with the
aggregate versions each lacks) and, during a repair, the events of one chunk of them.

Content beside the versions (say, a premium edited by hand with the versions left intact)
is not compared: that takes recomputing every document, which is what a rebuild does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from eventsourcing.persistence import StoredEvent
from pymongo.collection import Collection
from pymongo.database import Database

from crm_shared.eventstore import CrmApplication, build_envelope
from services.analytics.customer_360 import (
    HOLDER_LISTS,
    RECORD_VERSION,
    Document,
    Message,
    applied_versions,
    customer_of,
    project,
)
from services.analytics.rebuild import peak_rss_mb
from services.analytics.store import (
    CUSTOMER_360,
    LOOKUP_CHUNK,
    WRITE_ID,
    ReadModelCatalog,
    chunks,
    compare_and_delete,
    compare_and_set,
)

# What a document says of the versions it holds (see ``customer_360.applied_versions``).
VERSION_FIELDS = {
    RECORD_VERSION: 1,
    **{f"{name}.{field}": 1 for name in HOLDER_LISTS for field in ("aggregate_id", "v")},
}
MISSING_DOCUMENT = "missing_document"
MISSING_VERSIONS = "missing_versions"
EXTRA_DATA = "extra_data"
EXAMPLES = 20


@dataclass(frozen=True)
class Phase:
    """One step of a run, for a progress display: ``total`` units are expected."""

    label: str
    total: int
    unit: str


Progress = Callable[[Phase, int], None]


def _no_progress(_phase: Phase, _n: int) -> None:
    pass


class RebuildUnderWay(RuntimeError):
    """The read model is being rebuilt: verify after the rebuild switched reads."""


@dataclass(frozen=True)
class VerifySummary:
    model: str
    collection: str
    events_read: int  # every stored event, internal ones included
    events_checked: int  # those belonging to a customer's view
    documents_checked: int
    customers_differing: int
    # Customers per kind of difference (one customer may have two kinds).
    missing_document: int
    missing_versions: int
    extra_data: int
    repaired: int  # documents rewritten or deleted
    remaining: int  # customers still differing when the run ended
    seconds: float
    peak_rss_mb: float
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Difference:
    kinds: set[str]
    # aggregate id -> version the document lacks (what the forward check found unmet); a repair
    # reads these aggregates' events beside those the document already holds.
    needs: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # kept for the first EXAMPLES customers only


def _versions_of(doc: Document | None) -> dict[str, Any]:
    return applied_versions(doc) if doc else {}


def _without_token(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k != WRITE_ID}


class Verifier:
    def __init__(
        self,
        database: Database,
        sources: Sequence[CrmApplication],
        *,
        batch_size: int = 1000,
        progress: Progress = _no_progress,
        settle_seconds: float = 5.0,
        repair_chunk: int = 20_000,
        catalog: ReadModelCatalog | None = None,
        max_attempts: int = 10,
    ) -> None:
        if batch_size < 1 or repair_chunk < 1:
            raise ValueError("batch_size and repair_chunk must be at least 1")
        self.database = database
        self.sources = sources
        self.batch_size = batch_size
        self.progress = progress
        self.settle_seconds = settle_seconds
        self.repair_chunk = repair_chunk
        self.catalog = catalog or ReadModelCatalog(database)
        self.max_attempts = max_attempts

    def total_events(self) -> int:
        return sum(source.max_position() for source in self.sources)

    def _active(self) -> str:
        targets = self.catalog.targets_uncached(CUSTOMER_360)
        if targets.building:
            raise RebuildUnderWay(
                f"a rebuild of {CUSTOMER_360} into {targets.building} is under way; verify after it "
                f"has switched reads (or, if it died, after 'crm rebuild analytics --force')"
            )
        return targets.active

    def verify_customer_360(self, *, repair: bool = False) -> VerifySummary:
        """Verify the collection that serves reads; with ``repair``, rewrite what differs."""
        started = time.monotonic()
        name = self._active()
        collection = self.database[name]
        total_events = self.total_events()
        forward_unmet, events_read, events_checked = self._forward(collection, total_events)
        extra, documents_checked = self._reverse(collection)
        unmet = self._settle(collection, forward_unmet)

        differing: dict[Any, _Difference] = {}
        for customer_id, (needs, versions) in unmet.items():
            kind = MISSING_DOCUMENT if versions is None else MISSING_VERSIONS
            difference = differing[customer_id] = _Difference({kind}, needs)
            if len(differing) <= EXAMPLES:
                difference.reasons = _describe_unmet(needs, versions)
        for customer_id, reasons in extra.items():
            difference = differing.setdefault(customer_id, _Difference(set()))
            difference.kinds.add(EXTRA_DATA)
            difference.reasons.extend(reasons)

        repaired = 0
        if repair and differing:
            if self._active() != name:
                raise RuntimeError(f"reads moved off {name} during the verification; run it again")
            repaired = self._repair(collection, differing, total_events)
        seconds = time.monotonic() - started
        return VerifySummary(
            model=CUSTOMER_360,
            collection=name,
            events_read=events_read,
            events_checked=events_checked,
            documents_checked=documents_checked,
            customers_differing=len(differing),
            missing_document=sum(MISSING_DOCUMENT in d.kinds for d in differing.values()),
            missing_versions=sum(MISSING_VERSIONS in d.kinds for d in differing.values()),
            extra_data=sum(EXTRA_DATA in d.kinds for d in differing.values()),
            repaired=repaired,
            # A repair writes every differing customer (or finds it already right) or raises.
            remaining=0 if repair else len(differing),
            seconds=round(seconds, 2),
            peak_rss_mb=round(peak_rss_mb(), 1),
            examples=[
                {"customer_id": str(customer_id), "kinds": sorted(d.kinds), "reasons": d.reasons[:3]}
                for customer_id, d in islice(differing.items(), EXAMPLES)
            ],
        )

    # 1. Forward ------------------------------------------------------------------------------

    def _forward(
        self, collection: Collection, total_events: int
    ) -> tuple[dict[str, dict[str, int]], int, int]:
        """Customers whose document lacks versions the stores hold: customer -> {aggregate:
        version lacked}."""
        phase = Phase(f"verifying {collection.name}: events", total_events, "events")
        self.progress(phase, 0)  # a phase starts its clock when it starts
        unmet: dict[str, dict[str, int]] = {}
        read = checked = 0
        for source in self.sources:
            for batch in source.notifications(after=0, batch_size=self.batch_size):
                needs: dict[str, dict[str, int]] = {}
                for notification in batch:
                    message = source.envelope(notification)
                    if message is None or (customer_id := customer_of(message)) is None:
                        continue
                    wanted = needs.setdefault(customer_id, {})
                    aggregate_id = message["aggregate_id"]
                    wanted[aggregate_id] = max(wanted.get(aggregate_id, 0), message["aggregate_version"])
                    checked += 1
                for customer_id, (lacked, _) in self._unmet(collection, needs).items():
                    merged = unmet.setdefault(customer_id, {})
                    for aggregate_id, version in lacked.items():
                        merged[aggregate_id] = max(merged.get(aggregate_id, 0), version)
                read += len(batch)
                self.progress(phase, len(batch))
        return unmet, read, checked

    def _unmet(
        self, collection: Collection, needs: dict[str, dict[str, int]]
    ) -> dict[str, tuple[dict[str, int], dict[str, Any] | None]]:
        """For each customer whose document lacks some of ``needs``: what it lacks, and the
        versions the document has (None: there is no document)."""
        found: dict[str, dict[str, Any]] = {}
        for ids in chunks(list(needs), LOOKUP_CHUNK):
            for doc in collection.find({"_id": {"$in": list(ids)}}, VERSION_FIELDS):
                found[doc["_id"]] = _versions_of(doc)
        result: dict[str, tuple[dict[str, int], dict[str, Any] | None]] = {}
        for customer_id, wanted in needs.items():
            versions = found.get(customer_id)
            lacked = {
                aggregate_id: version
                for aggregate_id, version in wanted.items()
                if not _at_least(versions, aggregate_id, version)
            }
            if lacked:
                result[customer_id] = (lacked, versions)
        return result

    # 3. Settling -----------------------------------------------------------------------------

    def _settle(
        self, collection: Collection, unmet: dict[str, dict[str, int]]
    ) -> dict[str, tuple[dict[str, int], dict[str, Any] | None]]:
        """Check the failing customers again until the projector caught up with them or
        ``settle_seconds`` passed; returns those still failing, as ``_unmet`` does."""
        deadline = time.monotonic() + self.settle_seconds
        while True:
            still = self._unmet(collection, unmet)
            unmet = {customer_id: lacked for customer_id, (lacked, _) in still.items()}
            left = deadline - time.monotonic()
            if not unmet or left <= 0:
                return still
            time.sleep(min(0.25, left))

    # 2. Reverse ------------------------------------------------------------------------------

    def _reverse(self, collection: Collection) -> tuple[dict[Any, list[str]], int]:
        """Documents holding what the stores do not: ``_id`` (a customer id unless forged) ->
        reasons (for the first EXAMPLES only; empty lists after that)."""
        documents = collection.estimated_document_count()
        phase = Phase(f"verifying {collection.name}: documents", documents, "documents")
        self.progress(phase, 0)
        extra: dict[Any, list[str]] = {}
        checked = 0
        # One cursor in natural order: on SecantusDB a range or a sort is a collection scan (so
        # paging by _id would read the collection once per page), and a collection scan returns
        # each document at most once on MongoDB too. The driver holds one batch at a time.
        cursor = collection.find({}, {**VERSION_FIELDS, "revision": 1}, batch_size=self.batch_size)
        for doc in cursor:
            reasons = self._extra_reasons(doc)
            if reasons:
                extra[doc["_id"]] = reasons if len(extra) < EXAMPLES else []
            checked += 1
            if checked % self.batch_size == 0:
                self.progress(phase, self.batch_size)
        if checked % self.batch_size:
            self.progress(phase, checked % self.batch_size)
        return extra, checked

    def _extra_reasons(self, doc: Document) -> list[str]:
        customer_id = doc["_id"]
        if not isinstance(customer_id, str):
            return [f"_id {customer_id!r} is not a customer id"]
        versions = _versions_of(doc)
        if not versions:
            return ["holds no event of the stores"]
        reasons: list[str] = []
        applied = sum(v for v in versions.values() if isinstance(v, int))
        if doc.get("revision") != applied:
            reasons.append(f"revision {doc.get('revision')!r} but {applied} events applied")
        for aggregate_id, version in versions.items():
            problem = self._aggregate_problem(customer_id, aggregate_id, version)
            if problem:
                reasons.append(problem)
        return reasons

    def _aggregate_problem(self, customer_id: str, aggregate_id: str, version: Any) -> str | None:
        try:
            aggregate_uuid = uuid.UUID(aggregate_id)
        except ValueError:
            return f"{aggregate_id!r} is not an aggregate id"
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            return f"{aggregate_id} has version {version!r}"
        located = self._last_stored(aggregate_uuid)
        if located is None:
            return f"{aggregate_id} v{version} is in no event store"
        source, last = located
        if version > last.originator_version:
            return f"{aggregate_id} v{version}: the {source.CONTEXT} store has v{last.originator_version}"
        message = _envelope(source, last)
        owner = customer_of(message) if message is not None else None
        if owner is not None and owner != customer_id:
            return f"{aggregate_id} belongs to customer {owner}"
        return None

    def _last_stored(self, aggregate_uuid: uuid.UUID) -> tuple[CrmApplication, StoredEvent] | None:
        for source in self.sources:
            events = source.recorder.select_events(aggregate_uuid, desc=True, limit=1)
            if events:
                return source, events[0]
        return None

    # 4. Repair -------------------------------------------------------------------------------

    def _repair(self, collection: Collection, differing: dict[Any, _Difference], total_events: int) -> int:
        customer_ids = list(differing)
        passes = -(-len(customer_ids) // self.repair_chunk)
        phase = Phase(f"repairing {collection.name}", total_events * passes, "events")
        self.progress(phase, 0)
        repaired = 0
        for chunk in chunks(customer_ids, self.repair_chunk):
            histories = self._histories(collection, chunk, differing, phase)
            for customer_id in chunk:
                if self._rewrite(collection, customer_id, histories.pop(customer_id)):
                    repaired += 1
        return repaired

    def _histories(
        self,
        collection: Collection,
        customer_ids: Sequence[Any],
        differing: dict[Any, _Difference],
        phase: Phase,
    ) -> dict[Any, list[Message]]:
        """The stored events of these customers, each store in its order. Only events of the
        aggregates the customers' documents hold or lack are decoded: the others are skipped by
        their originator id."""
        aggregates: set[str] = set()
        for customer_id in customer_ids:
            aggregates.update(differing[customer_id].needs)
        for ids in chunks(list(customer_ids), LOOKUP_CHUNK):
            for doc in collection.find({"_id": {"$in": list(ids)}}, VERSION_FIELDS):
                aggregates.update(_versions_of(doc))
        histories: dict[Any, list[Message]] = {customer_id: [] for customer_id in customer_ids}
        for source in self.sources:
            for batch in source.notifications(after=0, batch_size=self.batch_size):
                for notification in batch:
                    if str(notification.originator_id) not in aggregates:
                        continue
                    message = source.envelope(notification)
                    owner = customer_of(message) if message is not None else None
                    if message is not None and owner in histories:
                        histories[owner].append(message)
                self.progress(phase, len(batch))
        return histories

    def _rewrite(self, collection: Collection, customer_id: Any, history: list[Message]) -> bool:
        """Write the document recomputed from ``history``; True if a write (or a delete) was
        needed."""
        target: Document | None = None
        for message in history:
            target = project(target, message) or target
        for _ in range(self.max_attempts):
            current = collection.find_one({"_id": customer_id})
            # Whatever the projector applied since the history was read must stay applied.
            target = self._caught_up(customer_id, target, current)
            if target is None:
                if current is None:
                    return False  # no events and no document
                if compare_and_delete(collection, current):
                    return True
            elif current is not None and _without_token(current) == _without_token(target):
                return False  # already right: the projector caught up meanwhile
            elif compare_and_set(collection, current, target):
                return True
        raise RuntimeError(f"{collection.name} {customer_id} kept changing under the repair")

    def _caught_up(
        self, customer_id: Any, target: Document | None, current: Document | None
    ) -> Document | None:
        """``target`` with the stored versions ``current`` has applied and ``target`` lacks.
        Versions in no store (forged) and aggregates of other customers stay out."""
        for aggregate_id, version in _versions_of(current).items():
            have = _versions_of(target).get(aggregate_id, 0)
            if not isinstance(version, int) or version <= have:
                continue
            try:
                aggregate_uuid = uuid.UUID(aggregate_id)
            except ValueError:
                continue
            for source in self.sources:
                stored = source.recorder.select_events(aggregate_uuid, gt=have)
                if stored:
                    break
            else:
                continue
            for event in stored:
                message = _envelope(source, event)
                if message is not None and customer_of(message) == customer_id:
                    target = project(target, message) or target
        return target


def _at_least(versions: dict[str, Any] | None, aggregate_id: str, version: int) -> bool:
    have = (versions or {}).get(aggregate_id)
    return isinstance(have, int) and have >= version


def _envelope(source: CrmApplication, stored: StoredEvent) -> Message | None:
    # A stored event read by aggregate has no position in the store's sequence; nothing a
    # projection computes depends on it.
    return build_envelope(source.CONTEXT, 0, source.mapper.to_domain_event(stored))


def _describe_unmet(needs: dict[str, int], versions: dict[str, Any] | None) -> list[str]:
    if versions is None:
        return [f"no document; the stores hold {len(needs)} of its aggregates, e.g. {next(iter(needs))}"]
    return [
        f"lacks {aggregate_id} v{version} (has {versions.get(aggregate_id, 'none')})"
        for aggregate_id, version in list(needs.items())[:3]
    ]
