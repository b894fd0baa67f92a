"""When the book is recomputed, and who does it: once a day at ``recompute_at`` local time (and at
once when it never was), by whichever ``crm-segments`` process holds the lease. The lease is one
document, taken with one conditional write and renewed while the recompute runs, so two processes
never recompute at once, and a process that dies hands over when its lease runs out."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

JOBS = "jobs"
RECOMPUTE = "segment_recompute"
LEASE = timedelta(minutes=5)


def next_due(last: datetime | None, at: time, zone: tzinfo) -> datetime | None:
    """The moment the recompute after ``last`` falls due (None: now, it never ran)."""
    if last is None:
        return None
    local = last.astimezone(zone)
    due = datetime.combine(local.date(), at, tzinfo=zone)
    if due <= local:
        due += timedelta(days=1)
    return due


def is_due(last: datetime | None, now: datetime, at: time, zone: tzinfo) -> bool:
    due = next_due(last, at, zone)
    return due is None or now >= due


class Lease:
    """The recompute's lease and record of its last run, in the ``jobs`` collection."""

    def __init__(self, database: Database, holder: str) -> None:
        self.jobs = database[JOBS]
        self.holder = holder

    def last_run(self) -> datetime | None:
        job = self.jobs.find_one({"_id": RECOMPUTE}, {"last_run_at": 1}) or {}
        last = job.get("last_run_at")
        return datetime.fromisoformat(last) if last else None

    def take(self, now: datetime) -> bool:
        """True if this process holds the lease until ``now + LEASE`` (taken or renewed)."""
        try:
            taken = self.jobs.find_one_and_update(
                {"_id": RECOMPUTE, "$or": [{"holder": self.holder}, {"until": {"$lte": now.isoformat()}}]},
                {"$set": {"holder": self.holder, "until": (now + LEASE).isoformat()}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # another holds it: the upsert met their document
            return False
        return taken is not None and taken.get("holder") == self.holder

    def done(self, now: datetime, ran_at: datetime) -> None:
        self.jobs.update_one(
            {"_id": RECOMPUTE, "holder": self.holder},
            {"$set": {"last_run_at": ran_at.isoformat(), "until": now.isoformat(), "holder": None}},
        )
