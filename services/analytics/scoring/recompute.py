"""The segment tables, recomputed over the whole book (``crm segments recompute``, and nightly by
``crm-segments``), in four passes that each hold one page of customers, however large the book:

1. **facts**: each customer's 360 document becomes their facts at the moment (``features_of``), the
   risk score, the churn assessment (at risk from ``raise_at`` until below ``clear_below``) and the
   lifecycle stage, written to ``customer_scores``;
2. **lines**: the premium lines of the value tiers and the RFM quintile thresholds, each read off a
   sorted index at the band's last rank (``bands``), so no ranking is ever held in memory;
3. **segments**: each customer's tier, RFM code, value x churn cell and watch-list place; only the
   memberships that changed (or whose owner changed) are written to ``segment_members``, one row per
   customer per scheme;
4. **counts**: the month's counts per scheme, segment and owning agent (and for the whole book),
   kept in ``segment_counts`` so that a month compares with the one before and with a year ago.

A customer merged into another or erased is scored no more: the pass deletes their rows."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DeleteOne, IndexModel, InsertOne, ReplaceOne, UpdateOne, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database

from crm_shared.clock import Clock, utc_now
from crm_shared.config import Settings
from services.analytics.catalog import ReadModelCatalog, write_idempotent
from services.analytics.paging import scan
from services.analytics.rebuild import peak_rss_mb
from services.analytics.scoring.bands import (
    QUINTILE_SHARES,
    RankSelection,
    band_ends,
    quintile_of,
    quintile_thresholds,
)
from services.analytics.scoring.churn import ChurnAssessment, assess, crossing, warned
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.definitions import DefinedSegments
from services.analytics.scoring.features import Features, features_of
from services.analytics.scoring.lifecycle import lifecycle_stage
from services.analytics.scoring.rfm import Rfm, fallen, recency_value
from services.analytics.scoring.risk import risk_score
from services.analytics.scoring.value import (
    is_potential,
    matrix_cell,
    tier_sizes,
    tier_thresholds,
    value_tier,
)
from services.analytics.store import CUSTOMER_360, LOOKUP_CHUNK, chunks

log = logging.getLogger("crm.segments")
SCORES = "customer_scores"
MEMBERS = "segment_members"
COUNTS = "segment_counts"
VALUE_TIER, RFM, LIFECYCLE, VALUE_CHURN, RFM_WATCH = (
    "value_tier",
    "rfm",
    "lifecycle",
    "value_churn",
    "rfm_watch",
)
SCHEMES = (VALUE_TIER, RFM, LIFECYCLE, VALUE_CHURN, RFM_WATCH)
WATCH = "watch"
ALL_OWNERS = "*"  # the owner of a count of the whole book

# The lines are drawn in two passes over the rows (bands.RankSelection), not from sorted indexes:
# SecantusDB sorts a filtered query in memory, once per line, and every index costs each write.
SCORE_INDEXES = (
    IndexModel("run"),
    # An agent's book: how much of it was contacted lately (performance).
    IndexModel([("owning_agent_id", ASCENDING), ("features.days_since_contact", ASCENDING)]),
)
MEMBER_INDEXES = (
    # Listing and counting a segment, for one owner or many, in customer order.
    IndexModel(
        [
            ("scheme", ASCENDING),
            ("segment", ASCENDING),
            ("owning_agent_id", ASCENDING),
            ("customer_id", ASCENDING),
        ]
    ),
    IndexModel([("scheme", ASCENDING), ("segment", ASCENDING), ("customer_id", ASCENDING)]),
    IndexModel("customer_id"),
)
COUNT_INDEXES = (
    IndexModel([("month", ASCENDING), ("scheme", ASCENDING), ("owner", ASCENDING)]),
    IndexModel("run"),
)

# A customer crossing the churn line: raised (True) or cleared (False), with the assessment.
Crossing = Callable[[Features, ChurnAssessment, bool, datetime], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RecomputeSummary:
    at: str
    customers: int
    valued: int
    memberships_changed: int
    churn_raised: int
    churn_cleared: int
    seconds: float
    customers_per_second: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The rankings the lines are drawn from: name -> (the flag a customer is ranked under, the fact).
RANKED = {
    "premium": ("valued", "premium_cents"),
    "recency": ("rfm", "recency"),
    "frequency": ("rfm", "frequency"),
    "monetary": ("rfm", "premium_cents"),
}
RFM_RANKED = ("recency", "frequency", "monetary")


def _rank(
    ranking: dict[str, RankSelection], facts: dict[str, Any], step: Callable[[RankSelection, int], None]
) -> None:
    for name, (flag, fact) in RANKED.items():
        if facts.get(flag):
            step(ranking[name], int(facts[fact]))


def ensure_indexes(database: Database) -> None:
    database[SCORES].create_indexes(list(SCORE_INDEXES))
    database[MEMBERS].create_indexes(list(MEMBER_INDEXES))
    database[COUNTS].create_indexes(list(COUNT_INDEXES))


def member_id(scheme: str, customer_id: str) -> str:
    return f"{scheme}|{customer_id}"


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


class SegmentRecompute:
    def __init__(
        self,
        database: Database,
        config: ScoringConfig,
        *,
        clock: Clock = utc_now,
        catalog: ReadModelCatalog | None = None,
        page_size: int = 500,
        on_crossing: Crossing | None = None,
        zone: tzinfo | None = None,
    ) -> None:
        self.database = database
        self.config = config
        self.clock = clock
        self.catalog = catalog or ReadModelCatalog(database)
        self.page_size = page_size
        self.on_crossing = on_crossing
        # The business's zone: the month a count belongs to.
        self.zone = zone or ZoneInfo(Settings.timezone)
        # Derived tables, written again by every run: acknowledged before the journal (twice the
        # rate). The lease's done mark, journaled, comes after them, so a run counts as done only
        # once its writes are in the journal; a crash before that leaves the run due again.
        unjournaled = WriteConcern(**{**database.write_concern.document, "j": False})
        self.scores: Collection = database.get_collection(SCORES, write_concern=unjournaled)
        self.members: Collection = database.get_collection(MEMBERS, write_concern=unjournaled)
        self.counts: Collection = database.get_collection(COUNTS, write_concern=unjournaled)
        self.defined = DefinedSegments(database)

    def run(self, progress: Progress | None = None) -> RecomputeSummary:
        began = time.monotonic()
        at = self.clock()
        run = uuid.uuid4().hex
        report = progress or (lambda _phase, _done, _total: None)
        ensure_indexes(self.database)
        source = self.database[self.catalog.targets(CUSTOMER_360).active]
        total = source.estimated_document_count()
        customers = raised = cleared = 0
        definitions = self.defined.all()
        ranking = {name: RankSelection() for name in RANKED}
        for page in scan(source, {}, None, self.page_size):
            scored, up, down = self._facts(page, at, run, ranking)
            self.defined.sync(page, at, definitions)
            customers, raised, cleared = customers + scored, raised + up, cleared + down
            report("facts", customers, total)
        self._forget_the_unscored(run, report)
        valued, rated = ranking["premium"].total, ranking["recency"].total
        vip, top = tier_sizes(valued, self.config.value)
        ranking["premium"].choose([vip - 1, top - 1])
        for name in RFM_RANKED:
            ranking[name].choose(band_ends(rated, QUINTILE_SHARES))
        # The second pass: the exact values where the ranks fall (the first was the facts pass).
        refined = 0
        for page in scan(self.scores, {}, {"facts": 1}, self.page_size):
            for doc in page:
                _rank(ranking, doc["facts"], RankSelection.refine)
            refined += len(page)
            report("lines", refined, customers)
        report("lines", refined, customers)
        lines = tier_thresholds(valued, ranking["premium"].chosen, self.config.value)
        thresholds = {name: quintile_thresholds(rated, ranking[name].value_at) for name in RFM_RANKED}
        changed = done = 0
        for page in scan(self.scores, {}, None, self.page_size):
            changed += self._segments(page, lines, thresholds, at)
            done += len(page)
            report("segments", done, customers)
        self._snapshot(at, run, report)
        seconds = time.monotonic() - began
        return RecomputeSummary(
            at=at.isoformat(),
            customers=customers,
            valued=valued,
            memberships_changed=changed,
            churn_raised=raised,
            churn_cleared=cleared,
            seconds=round(seconds, 2),
            customers_per_second=round(customers / seconds, 1) if seconds else 0.0,
            peak_rss_mb=round(peak_rss_mb(), 1),
        )

    # 1. facts ----------------------------------------------------------------------------------

    def _facts(
        self, docs: list[dict[str, Any]], at: datetime, run: str, ranking: dict[str, RankSelection]
    ) -> tuple[int, int, int]:
        today = at.date()
        scorable = [d for d in docs if d.get("merged_into") is None and d.get("erased_at") is None]
        previous = self._previous([str(d["_id"]) for d in scorable], {"churn": 1})
        writes: list[InsertOne | UpdateOne] = []
        upserts: list[UpdateOne] = []
        raised = cleared = 0
        for doc in scorable:
            try:
                features = features_of(doc, at)
            except (KeyError, TypeError, ValueError, AssertionError):
                # A document this version cannot read (damaged by hand, from an older shape):
                # left out of this run rather than stopping it; 'crm verify' finds it.
                log.exception("cannot score customer %s; left out of this recompute", doc.get("_id"))
                continue
            churn = assess(features, self.config.churn)
            before = previous.get(features.customer_id, {}).get("churn") or {}
            was_at_risk = warned(doc)
            turned = crossing(was_at_risk, churn.score, self.config.churn)
            at_risk = was_at_risk if turned is None else turned
            if turned is not None:
                raised, cleared = raised + turned, cleared + (not turned)
                if self.on_crossing is not None:
                    self.on_crossing(features, churn, turned, at)
            risk = risk_score(features, self.config.risk)
            potential = is_potential(features, today, self.config.value)
            facts = {
                "premium_cents": int(features.premium_12m * 100),
                "valued": not potential,
                "rfm": not features.is_prospect,
                "recency": recency_value(features),
                "frequency": features.transactions_12m,
            }
            fields = {
                "owning_agent_id": features.owning_agent_id,
                "run": run,
                "at": at.isoformat(),
                "facts": facts,
                "features": _shown(features),
                "risk": {"score": risk.score, "reasons": list(risk.reasons)},
                "churn": {
                    "score": churn.score,
                    "reasons": [r.as_dict() for r in churn.reasons],
                    "at_risk": at_risk,
                    "since": at.isoformat() if turned is not None else before.get("since"),
                },
                "lifecycle": lifecycle_stage(features, today, at_risk, self.config.lifecycle),
            }
            _rank(ranking, facts, RankSelection.count)
            upsert = UpdateOne({"_id": features.customer_id}, {"$set": fields}, upsert=True)
            # A customer scored for the first time: a plain insert (twice as fast as an upsert on
            # SecantusDB); one another writer created meanwhile falls back to the upsert.
            writes.append(
                upsert
                if features.customer_id in previous
                else InsertOne({"_id": features.customer_id, **fields})
            )
            upserts.append(upsert)
        write_idempotent(self.scores, writes, ordered=False, instead=lambda i: [upserts[i]])
        return len(scorable), raised, cleared

    def _previous(self, ids: list[str], fields: dict[str, int]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(ids, LOOKUP_CHUNK):
            for doc in self.scores.find({"_id": {"$in": list(chunk)}}, fields):
                found[doc["_id"]] = doc
        return found

    def _forget_the_unscored(self, run: str, report: Progress) -> None:
        """Customers the pass did not score (merged, erased, gone) leave the tables. (One recompute
        at a time: the lease; a second one would take the first one's rows for stale.)"""
        gone = 0
        report("forget", gone, gone)
        for page in scan(
            self.scores, {"run": {"$ne": run}}, {"_id": 1}, self.page_size, removes_what_it_reads=True
        ):
            ids = [d["_id"] for d in page]
            self.members.delete_many({"customer_id": {"$in": ids}})
            self.scores.delete_many({"_id": {"$in": ids}})
            gone += len(ids)
            report("forget", gone, gone)

    # 3. segments -------------------------------------------------------------------------------

    def _segments(
        self,
        docs: list[dict[str, Any]],
        lines: tuple[int, int] | None,
        thresholds: dict[str, list[Any]],
        at: datetime,
    ) -> int:
        score_writes: list[UpdateOne] = []
        member_writes: list[InsertOne | ReplaceOne | DeleteOne] = []
        replaces: list[list[ReplaceOne | DeleteOne]] = []
        for doc in docs:
            facts, customer_id = doc["facts"], doc["_id"]
            tier = value_tier(facts["premium_cents"], not facts["valued"], lines, self.config.value)
            rfm = (
                Rfm(
                    quintile_of(facts["recency"], thresholds["recency"]),
                    quintile_of(facts["frequency"], thresholds["frequency"]),
                    quintile_of(facts["premium_cents"], thresholds["monetary"]),
                )
                if facts["rfm"]
                else None
            )
            watch_from, watch_reasons = self._watch(doc, rfm)
            segments = {
                VALUE_TIER: tier,
                RFM: rfm.code if rfm else None,
                LIFECYCLE: doc["lifecycle"],
                VALUE_CHURN: matrix_cell(tier, doc["churn"]["at_risk"]),
                RFM_WATCH: WATCH if watch_reasons else None,
            }
            before = doc.get("segments") or {}
            since = dict(doc.get("segments_since") or {})
            moved = doc.get("segments_agent") != doc["owning_agent_id"]
            for scheme, segment in segments.items():
                if segment == before.get(scheme) and not moved:
                    continue
                if segment != before.get(scheme):
                    since[scheme] = at.isoformat()
                key = member_id(scheme, customer_id)
                if segment is None:
                    delete = DeleteOne({"_id": key})
                    member_writes.append(delete)
                    replaces.append([delete])
                    since.pop(scheme, None)
                    continue
                row = {
                    "_id": key,
                    "scheme": scheme,
                    "segment": segment,
                    "customer_id": customer_id,
                    "owning_agent_id": doc["owning_agent_id"],
                    "since": since[scheme],
                }
                replace = ReplaceOne({"_id": key}, row, upsert=True)
                # No segment before in this scheme: no row yet, a plain insert (a row left by a
                # run that stopped between its writes collides and is replaced).
                member_writes.append(InsertOne(row) if before.get(scheme) is None else replace)
                replaces.append([replace])
            placed = {
                "segments": segments,
                "segments_since": since,
                "segments_agent": doc["owning_agent_id"],
                "rfm": None if rfm is None else asdict(rfm) | {"code": rfm.code},
                "watch": {"from": watch_from, "reasons": watch_reasons} if watch_reasons else None,
            }
            # A customer whose segments did not move (most, night after night) costs no write.
            if any(doc.get(name) != value for name, value in placed.items()):
                score_writes.append(UpdateOne({"_id": customer_id}, {"$set": placed}))
        write_idempotent(self.members, member_writes, ordered=False, instead=lambda i: replaces[i])
        if score_writes:
            self.scores.bulk_write(score_writes, ordered=False)
        return len(member_writes)

    def _watch(self, doc: dict[str, Any], now: Rfm | None) -> tuple[dict[str, int] | None, list[str]]:
        """The RFM the customer fell from and why, while they are on the watch list: from the
        recompute that saw the fall until the scores are back within the drop of where they were."""
        if now is None:
            return None, []
        drop = self.config.rfm_watch_drop
        watch = doc.get("watch") or {}
        if reference := watch.get("from"):
            reasons = fallen(_rfm(reference), now, drop)
            return (reference, reasons) if reasons else (None, [])
        previous = doc.get("rfm")
        reasons = fallen(_rfm(previous) if previous else None, now, drop)
        return (previous_rfm(previous), reasons) if reasons else (None, [])

    # 4. counts ---------------------------------------------------------------------------------

    def _snapshot(self, at: datetime, run: str, report: Progress) -> None:
        month = month_of(at.astimezone(self.zone))
        totals: Counter[tuple[str, str]] = Counter()
        writes: list[ReplaceOne] = []
        grouped = self.members.aggregate(
            [
                {
                    "$group": {
                        "_id": {"s": "$scheme", "a": "$owning_agent_id", "g": "$segment"},
                        "n": {"$sum": 1},
                    }
                }
            ],
            allowDiskUse=True,
            # In batches: asked for none, SecantusDB sends every group in the first reply (one row
            # per owner and segment: the driver then held 90 MB more at 40,000 customers).
            batchSize=1000,
        )
        for row in grouped:
            scheme, owner, segment = row["_id"]["s"], row["_id"]["a"], row["_id"]["g"]
            totals[(scheme, segment)] += row["n"]
            writes.append(_count_row(month, scheme, owner or "", segment, row["n"], run))
            if len(writes) >= 1000:
                self.counts.bulk_write(writes, ordered=False)
                writes = []
                report("counts", 0, 0)
        writes += [_count_row(month, s, ALL_OWNERS, g, n, run) for (s, g), n in totals.items()]
        if writes:
            self.counts.bulk_write(writes, ordered=False)
        # A segment nobody is in any longer counts nothing this month.
        self.counts.delete_many({"month": month, "run": {"$ne": run}})
        report("counts", 1, 1)


def _count_row(month: str, scheme: str, owner: str, segment: str, count: int, run: str) -> ReplaceOne:
    key = f"{month}|{scheme}|{owner}|{segment}"
    row = {
        "_id": key,
        "month": month,
        "scheme": scheme,
        "owner": owner,
        "segment": segment,
        "count": count,
        "run": run,
    }
    return ReplaceOne({"_id": key}, row, upsert=True)


def _rfm(data: dict[str, Any]) -> Rfm:
    return Rfm(int(data["recency"]), int(data["frequency"]), int(data["monetary"]))


def previous_rfm(data: dict[str, Any] | None) -> dict[str, int] | None:
    return None if data is None else {k: int(data[k]) for k in ("recency", "frequency", "monetary")}


def _shown(features: Features) -> dict[str, Any]:
    """The facts the 360 shows beside the scores."""
    return {
        "premium_12m": str(features.premium_12m),
        "premium_prior_12m": str(features.premium_prior_12m),
        "policies_in_force": features.policies_in_force,
        "lapses_12m": features.lapses_12m,
        "cancellations_12m": features.cancellations_12m,
        "complaints_12m": features.complaints_12m,
        "claims_36m": features.claims_36m,
        "late_payments": features.late_payments,
        "last_satisfaction": features.last_satisfaction,
        "days_since_contact": features.days_since_contact,
        "last_transaction_on": None
        if features.last_transaction_on is None
        else features.last_transaction_on.isoformat(),
    }


def scores_of(database: Database, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The scores the 360 shows, by customer."""
    fields = {
        "segments": 1,
        "rfm": 1,
        "risk": 1,
        "churn": 1,
        "lifecycle": 1,
        "watch": 1,
        "features": 1,
        "at": 1,
    }
    return {d["_id"]: d for d in database[SCORES].find({"_id": {"$in": list(customer_ids)}}, fields)}
