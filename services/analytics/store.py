"""MongoDB adapter of the customer 360 read model.

An event is written as one guarded update (``guarded_update``): applied by the database only if the
aggregate's previous version is the last one in the document, so projecting reads nothing first and
two writers (the live projector, a rebuild) cannot apply one event twice. A whole-document write
(a repair by ``crm verify``) is compare-and-set on the document's write token (``write_id``, fresh
on every write, guarded updates included), so it never overwrites a change it did not see. The
token, not ``revision``, is compared: a repair may write a document whose revision equals the one a
concurrent projector read (ABA). Every write is journaled before it is acknowledged. Which
collection is live is recorded in the ``read_models`` catalog: a rebuild fills a fresh collection,
the projector writes to both while it runs, then reads switch over."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from pymongo import IndexModel, InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import BulkWriteResult

from services.analytics.catalog import ReadModelCatalog, collided
from services.analytics.changes import Change
from services.analytics.customer_360 import (
    CHANGES,
    LIST_ORDER,
    RECORD_VERSION,
    Document,
    Message,
    VersionGap,
    change_of,
    customer_of,
    empty_document,
    fold,
    project,
)
from services.analytics.projections import Outcome, Projection, ProjectionWriter

CUSTOMER_360 = "customer_360"


# The compare-and-set token of a document: set only by ``_stamped``, compared only by ``_as_read``.
WRITE_ID = "write_id"


class GuardedUpdate(NamedTuple):
    customer_id: str
    operation: UpdateOne
    creates: bool  # an upsert: the aggregate's first event may create the document
    # For one that creates: the document it makes when there is none yet, as a plain insert
    # (several times cheaper than the upsert); it collides when the document is there already.
    insert: InsertOne | None = None


Filters = list[Mapping[str, Any]]
# (path, kind, value): the version is next ("is" a value, or "elem": the item at the previous
# version), the item is not there yet ("ne"), or is ("eq").
Condition = tuple[str, str, Any]


def guarded_update(messages: list[Message]) -> GuardedUpdate | None:
    """One or more events of one customer (see ``customer_360.Change``) as one update the database
    applies only if each event is the next of its aggregate, so nothing is read first: a
    redelivery, or an event ahead of its predecessor, matches nothing. An aggregate's first event
    upserts, so whichever event of a customer comes first creates the document. Several events in
    one update let a replay write a customer's policies, read one after the other from the sales
    store, in one write. None when they cannot be one: two events of one aggregate, one field set
    twice, or a list both pushed to and changed in place (the database refuses two operators on
    one field).

    Each event's aggregate version is guarded where it is kept (``Change.holder``): the record's
    ``record_version``, or the ``v`` of the list item standing for the aggregate, matched with
    ``$elemMatch`` and written through an array filter; the item a change sets fields of is
    reached through an array filter too, so one update may change items of several lists."""
    changes = [change_of(m) for m in messages]
    customer_ids = {customer_of(m) for m in messages}
    aggregates = [str(m["aggregate_id"]) for m in messages]
    if (
        None in changes
        or len(customer_ids) != 1
        or None in customer_ids
        or len(set(aggregates)) < len(aggregates)
    ):
        return None
    customer_id = str(customer_ids.pop())
    conditions: list[Condition] = []
    filters: Filters = []
    sets: dict[str, Any] = {}
    pushes: dict[str, list[Any]] = defaultdict(list)
    incs: dict[str, int] = defaultdict(int)
    first = True
    for index, (message, change) in enumerate(zip(messages, changes, strict=True)):
        assert change is not None
        version = int(message["aggregate_version"])
        first = first and version == 1 and change.element is None
        own, holder_filter = _guard(change, version, f"h{index}", conditions, filters)
        element_sets = _through_filters(change, holder_filter, f"e{index}", conditions, filters)
        if sets.keys() & element_sets.keys() or sets.keys() & own.keys():
            return None
        sets.update(element_sets)
        sets.update(own)
        for name, item in change.push.items():
            pushes[name].append(item)
        for name, amount in change.inc.items():
            incs[name] += amount
    if {path.split(".")[0] for path in sets} & pushes.keys():
        return None  # e.g. one ticket closed (a $set on tickets) and another opened ($push)
    incs["revision"] += len(messages)
    update: dict[str, dict[str, Any]] = {
        "$set": {**sets, WRITE_ID: uuid.uuid4().hex},
        "$inc": dict(incs),
        "$max": {"last_event_at": max(m["occurred_at"] for m in messages)},
    }
    if pushes:
        update["$push"] = {
            name: {"$each": items, "$sort": dict.fromkeys(LIST_ORDER[name], 1)}
            for name, items in pushes.items()
        }
    if first:
        touched = {path.split(".")[0] for fields in update.values() for path in fields}
        update["$setOnInsert"] = {
            k: v for k, v in empty_document(customer_id).items() if k not in touched and k != "_id"
        }
    query = _flat_query(customer_id, conditions)
    if query is None:
        return None
    operation = UpdateOne(query, update, upsert=first, array_filters=filters or None)
    # A plain insert only with the customer record's first event (the registration): that one
    # mostly finds no document. An aggregate's first event of another kind (a policy sold) mostly
    # finds the customer's document there, which its upsert matches; an insert would collide.
    registers = any(c is not None and c.holder is None for c in changes)
    created = _stamped(doc) if first and registers and (doc := fold(messages)) is not None else None
    return GuardedUpdate(customer_id, operation, first, None if created is None else InsertOne(created))


def _flat_query(customer_id: str, conditions: list[Condition]) -> dict[str, Any] | None:
    """The conditions as one flat filter beside ``_id`` (SecantusDB looks a document up by its id
    only when the filter's top level names it, never under ``$and``): several conditions of one
    kind on one path become one (``$nin``, ``$all``); two kinds on one path cannot (None)."""
    by_path: dict[str, tuple[str, list[Any]]] = {}
    for path, kind, value in conditions:
        known_kind, values = by_path.setdefault(path, (kind, []))
        if known_kind != kind:
            return None
        values.append(value)
    query: dict[str, Any] = {"_id": customer_id}
    for path, (kind, values) in by_path.items():
        if kind == "is":
            if len(values) > 1:
                return None
            query[path] = values[0]
        elif kind == "ne":
            query[path] = {"$ne": values[0]} if len(values) == 1 else {"$nin": values}
        elif kind == "elem":
            matches = [{"$elemMatch": v} for v in values]
            query[path] = matches[0] if len(matches) == 1 else {"$all": matches}
        else:  # "eq": the item is there
            query[path] = values[0] if len(values) == 1 else {"$all": values}
    return query


def _guard(
    change: Change, version: int, name: str, conditions: list[Condition], filters: Filters
) -> tuple[dict[str, Any], str | None]:
    """Adds the condition that ``version`` is the next of its aggregate; returns the fields that
    record it (none for an item the change pushes: it is pushed at version 1), and the array
    filter, ``name``, that reaches the holder item (None: no filter)."""
    holder = change.holder
    if holder is None:
        previous: Any = version - 1 if version > 1 else {"$exists": False}
        conditions.append((RECORD_VERSION, "is", previous))
        return {RECORD_VERSION: version}, None
    if change.creates_holder:
        conditions.append((f"{holder.array}.{holder.key}", "ne", holder.value))
        return {}, None
    conditions.append((holder.array, "elem", {holder.key: holder.value, "v": version - 1}))
    filters.append({f"{name}.{holder.key}": holder.value})
    return {f"{holder.array}.$[{name}].v": version}, name


def _through_filters(
    change: Change, holder_filter: str | None, name: str, conditions: list[Condition], filters: Filters
) -> dict[str, Any]:
    """The change's sets, with the ``$`` of its element's fields as an array filter (the holder's
    filter when they are the same item)."""
    element = change.element
    if element is None:
        return dict(change.set)
    if element == change.holder and holder_filter is not None:
        identifier = holder_filter
    else:
        identifier = name
        conditions.append((f"{element.array}.{element.key}", "eq", element.value))
        filters.append({f"{identifier}.{element.key}": element.value})
    return {path.replace(".$.", f".$[{identifier}].", 1): value for path, value in change.set.items()}


def _written(result: BulkWriteResult) -> int:
    return result.matched_count + result.upserted_count + result.inserted_count


def _write_one(collection: Collection, update: GuardedUpdate) -> bool:
    """True if the guarded update matched (or inserted) the document."""
    try:
        return _written(collection.bulk_write([update.operation])) == 1
    except BulkWriteError as e:
        if collided(e) is None:
            raise
        return False  # another writer created the document first


def apply_message(
    collection: Collection,
    message: Message,
    *,
    gaps_wait_for_replay: bool = False,
    max_attempts: int = 10,
) -> bool:
    """Apply one event message to one collection; True if this call changed the document. When the
    guarded update matches nothing the document is read to say why: the version was applied already
    (False), or it is ahead of its predecessor (``VersionGap``: the projector retries the message,
    then dead-letters it; requeue its predecessor first), except in a collection being rebuilt,
    where the replay brings the missing versions and this one after them."""
    customer_id = customer_of(message)
    for _ in range(max_attempts):
        update = guarded_update([message])
        if update is None:
            return False
        if _write_one(collection, update):
            return True
        try:
            if project(collection.find_one({"_id": customer_id}), message) is None:
                return False
        except VersionGap:
            if gaps_wait_for_replay:
                return False
            raise
        # Applicable now: it met another writer's insert of the same new document; write again.
    raise RuntimeError(f"{collection.name} {customer_id} kept changing under the projector")


def _stamped(doc: Document) -> Document:
    """``doc`` with a fresh write token: every write to a customer 360 collection goes through here."""
    doc[WRITE_ID] = uuid.uuid4().hex
    return doc


def _as_read(current: Document) -> dict[str, Any]:
    """The filter matching ``current`` only as it was read: nobody wrote it since. A document
    written before the token existed has none, and ``None`` matches a missing field."""
    return {"_id": current["_id"], WRITE_ID: current.get(WRITE_ID)}


def compare_and_set(collection: Collection, current: Document | None, new: Document) -> bool:
    """Write ``new`` if the document is still ``current`` as read (insert it if ``current`` is
    None); False if another writer got there first: read again and retry."""
    if current is None:
        try:
            collection.insert_one(_stamped(new))
        except DuplicateKeyError:
            return False
        return True
    result = collection.replace_one(_as_read(current), _stamped(new))
    return result.matched_count == 1


def compare_and_delete(collection: Collection, current: Document) -> bool:
    """Delete the document if it is still ``current`` as read."""
    return collection.delete_one(_as_read(current)).deleted_count == 1


# Ids per ``$in`` read: SecantusDB's cost per id grows with the list's length (1000 ids cost ten
# times 100 ids per id); MongoDB does not mind either way.
LOOKUP_CHUNK = 100
T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Indexed = tuple[list[int], GuardedUpdate]  # the messages an update writes, and the update


def _waves(updates: list[Indexed]) -> list[list[Indexed]]:
    """Split updates so that no wave holds two for one document: a wave can then go unordered
    (the database may run its updates in any order) and a customer's updates still apply in the
    order they came."""
    waves: list[list[Indexed]] = []
    seen: dict[str, int] = defaultdict(int)
    for item in updates:
        depth = seen[item[1].customer_id]
        if depth == len(waves):
            waves.append([])
        waves[depth].append(item)
        seen[item[1].customer_id] = depth + 1
    return waves


def _updates(messages: list[Message]) -> list[Indexed]:
    """A customer's events of the batch as one update where they combine, one each otherwise."""
    by_customer: dict[str, list[int]] = defaultdict(list)
    for index, message in enumerate(messages):
        if (customer_id := customer_of(message)) is not None:
            by_customer[customer_id].append(index)
    updates: list[Indexed] = []
    for indexes in by_customer.values():
        combined = guarded_update([messages[i] for i in indexes]) if len(indexes) > 1 else None
        if combined is not None:
            updates.append((indexes, combined))
            continue
        updates += [([i], u) for i in indexes if (u := guarded_update([messages[i]])) is not None]
    return updates


def bulk_waves(messages: list[Message]) -> list[list[UpdateOne | InsertOne]]:
    """The bulk writes ``apply_together`` sends for ``messages`` when every update matches."""
    return [[u.insert or u.operation for _, u in wave] for wave in _waves(_updates(messages))]


def apply_together(
    collection: Collection, messages: list[Message], *, gaps_wait_for_replay: bool = False
) -> list[Outcome]:
    """Apply many messages as guarded updates, reading nothing: one update per customer where its
    events combine (``guarded_update``), in one bulk write (one per wave, see ``_waves``). One
    outcome per message, in order: None when it is applied (or changes nothing), the exception when
    it is not (a ``VersionGap``: the caller retries it, then sets it aside). Only the messages whose
    update may have matched nothing are looked at again (see ``_settle``)."""
    outcomes: list[Outcome] = [None] * len(messages)
    unsure: list[int] = []
    for wave in _waves(_updates(messages)):
        try:
            result = collection.bulk_write([u.insert or u.operation for _, u in wave], ordered=False)
            written, duplicates = _written(result), set()
        except BulkWriteError as e:
            if (indexes := collided(e)) is None:
                raise
            written = e.details["nMatched"] + e.details["nUpserted"] + e.details["nInserted"]
            duplicates = set(indexes)
        certain = written + len(duplicates) == len(wave)  # else: which matched nothing, counts don't say
        for position, (indexes, u) in enumerate(wave):
            if position in duplicates or not (certain or u.creates):
                unsure += indexes
    _settle(collection, messages, sorted(unsure), outcomes, gaps_wait_for_replay)
    return outcomes


def _settle(
    collection: Collection,
    messages: list[Message],
    unsure: list[int],
    outcomes: list[Outcome],
    gaps_wait_for_replay: bool,
) -> None:
    """Find out why the ``unsure`` messages' updates may have matched nothing, with one read per
    ``LOOKUP_CHUNK`` customers: mostly they were applied already (a redelivery; a replay reaching
    what the live projector copied), sometimes they come before their predecessor (a gap). Only one
    still applicable (it met another writer creating the same document) is written again."""
    customers = {str(customer_of(messages[index])) for index in unsure}
    docs: dict[str, Document] = {}
    for chunk in chunks(sorted(customers), LOOKUP_CHUNK):
        docs.update((d["_id"], d) for d in collection.find({"_id": {"$in": list(chunk)}}))
    rewritten: set[str] = set()
    for index in unsure:
        message, customer_id = messages[index], str(customer_of(messages[index]))
        try:
            if customer_id not in rewritten:
                try:
                    if project(docs.get(customer_id), message) is None:
                        continue
                except VersionGap:
                    if gaps_wait_for_replay:
                        continue
                    raise
                rewritten.add(customer_id)  # what was read of it is stale from here on
            apply_message(collection, message, gaps_wait_for_replay=gaps_wait_for_replay)
        except Exception as e:
            outcomes[index] = e


def _apply_360(collection: Collection, messages: list[Message], rebuilding: bool) -> list[Outcome]:
    return apply_together(collection, messages, gaps_wait_for_replay=rebuilding)


CUSTOMER_360_PROJECTION = Projection(
    name=CUSTOMER_360,
    description="one document per customer: the customer 360 view",
    event_types=frozenset(CHANGES),
    indexes=(IndexModel("owning_agent_id"), IndexModel("merged_into", sparse=True)),
    apply=_apply_360,
)


class Customer360Store(ProjectionWriter):
    """The customer 360 collection: its reads, and (as the projector's batch handler) its writes."""

    def __init__(self, database: Database, catalog: ReadModelCatalog | None = None) -> None:
        super().__init__(database, CUSTOMER_360_PROJECTION, catalog)

    def get(self, customer_id: str) -> Document | None:
        return self.collection().find_one({"_id": customer_id})

    def merged_into(self, customer_id: str, limit: int = 100) -> list[Document]:
        """The documents of the duplicates merged into this customer."""
        return list(self.collection().find({"merged_into": customer_id}).sort("_id", 1).limit(limit))


def ensure_indexes(collection: Collection[Any]) -> None:
    CUSTOMER_360_PROJECTION.ensure_indexes(collection)
