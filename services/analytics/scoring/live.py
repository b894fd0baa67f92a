"""Scores kept live: after the 360 projector has stored a batch, the customers whose churn facts it
changed (a lapse, a cancellation, a complaint, a breach, a survey, a claim) are assessed again from
their new documents, and a crossing of the warning line is recorded at once, not at the next
nightly recompute; and every customer the batch changed is judged again against the segments
defined after the fact (``definitions``). Rules that depend on time passing (falling premium, no contact for
long) are the nightly recompute's. A redelivered batch assesses again and records nothing twice:
the churn watch records a crossing once. A customer the batch moved to another agent has their
segment rows follow at once, so the new owner's lists hold them before the next recompute."""

from __future__ import annotations

import time

from pymongo import UpdateMany, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from crm_shared.clock import Clock, utc_now
from services.analytics.changes import Message
from services.analytics.customer_360 import customer_of
from services.analytics.projections import Outcome
from services.analytics.scoring.churn import assess, crossing, warned
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.definitions import DefinedSegments, Definition
from services.analytics.scoring.features import features_of
from services.analytics.scoring.recompute import MEMBERS, SCORES
from services.analytics.watch.application import ChurnWatchApplication

DEFINITIONS_TTL = 5.0
# How much live assessing costs: the customers assessed and the seconds spent (reading, judging
# defined segments, following owners, assessing, writing), since ever.
LIVE_STATUS = "live_scoring_status"
# The events that change what the churn rules look at.
CHURN_SIGNALS = frozenset(
    {
        "sales.policy_lapsed",
        "sales.policy_cancelled",
        "sales.policy_reinstated",
        "sales.policy_renewed",
        "sales.premium_paid",
        "sales.claim_recorded",
        "service_desk.ticket_opened",
        "service_desk.complaint_opened",
        "service_desk.sla_breached",
        "service_desk.survey_answered",
        "service_desk.call_back_made",
        "service_desk.complaint_closed",
        # A ticket's closing carries the satisfaction the customer gave.
        "service_desk.ticket_closed",
    }
)


class LiveScores:
    def __init__(
        self, database: Database, config: ScoringConfig, watch: ChurnWatchApplication, clock: Clock = utc_now
    ) -> None:
        self.scores = database[SCORES]
        self.members = database[MEMBERS]
        self.status = database[LIVE_STATUS]
        self.rules = config.churn
        self.watch = watch
        self.clock = clock
        self.defined = DefinedSegments(database)
        self._definitions: tuple[float, list[Definition]] = (-DEFINITIONS_TTL, [])

    def definitions(self) -> list[Definition]:
        """The defined segments, read again every few seconds (a new one is computed over the book
        when it is defined; from then on it is kept current here)."""
        read_at = self._definitions[0]
        if time.monotonic() - read_at >= DEFINITIONS_TTL:
            self._definitions = (time.monotonic(), self.defined.all())
        return self._definitions[1]

    def __call__(self, collection: Collection, messages: list[Message], outcomes: list[Outcome]) -> None:
        applied = [m for m, outcome in zip(messages, outcomes, strict=True) if outcome is None]
        signalled = {c for m in applied if m["event_type"] in CHURN_SIGNALS and (c := customer_of(m))}
        definitions = self.definitions()
        changed = {c for m in applied if (c := customer_of(m))} if definitions else set()
        moved = {c for m in applied if m["event_type"] == "customer.owner_changed" and (c := customer_of(m))}
        touched = sorted(signalled | changed | moved)
        if not touched:
            return
        began = time.perf_counter()
        now = self.clock()
        docs = list(collection.find({"_id": {"$in": touched}}))
        updates: list[UpdateOne] = []
        if definitions:
            self.defined.sync(docs, now, definitions)
        self._follow_owners([d for d in docs if d["_id"] in moved])
        for doc in docs:
            if doc["_id"] not in signalled or doc.get("merged_into") or doc.get("erased_at"):
                continue
            features = features_of(doc, now)
            churn = assess(features, self.rules)
            turned = crossing(warned(doc), churn.score, self.rules)
            if turned is not None:
                self.watch.record_crossing(
                    features.customer_id,
                    features.owning_agent_id,
                    turned,
                    churn.score,
                    [r.as_dict() for r in churn.reasons],
                    now.isoformat(),
                )
            # What the 360 shows beside the warning; only a customer the recompute scored has a
            # row (the next recompute scores the others).
            reasons = [r.as_dict() for r in churn.reasons]
            updates.append(
                UpdateOne(
                    {"_id": features.customer_id},
                    {"$set": {"churn.score": churn.score, "churn.reasons": reasons}},
                )
            )
        if updates:
            self.scores.bulk_write(updates, ordered=False)
            self.status.update_one(
                {"_id": "churn"},
                {"$inc": {"assessed": len(updates), "seconds": time.perf_counter() - began}},
                upsert=True,
            )

    def _follow_owners(self, docs: list[dict]) -> None:
        """Segment rows and scores take the owner the 360 holds now (the document, not the event:
        an older move delivered late must not undo a newer one)."""
        if not docs:
            return
        owners = [(d["_id"], {"$set": {"owning_agent_id": d.get("owning_agent_id")}}) for d in docs]
        self.members.bulk_write([UpdateMany({"customer_id": c}, owner) for c, owner in owners], ordered=False)
        self.scores.bulk_write([UpdateOne({"_id": c}, owner) for c, owner in owners], ordered=False)


def live_assessments(database: Database) -> tuple[int, float]:
    """Customers assessed live so far, and the seconds it took."""
    doc = database[LIVE_STATUS].find_one({"_id": "churn"}) or {}
    return int(doc.get("assessed", 0)), float(doc.get("seconds", 0.0))
