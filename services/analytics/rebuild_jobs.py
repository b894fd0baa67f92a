"""Rebuilds asked for from the dashboard or the ``start_rebuild`` RPC: a job per request, kept in
the read-model database, that the rebuild process (``crm-rebuilds``) claims and runs, writing its
progress as it goes (events read of the total), so a page can show a live bar.

A job is claimed with one conditional update, so two rebuild processes never run the same one. A
running job whose worker stopped beating for ``STALE_SECONDS`` (killed) is taken over by the next
claim, which forces the rebuild (``Rebuilder.rebuild(force=True)``: the dead worker's half-built
collection is dropped)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from crm_shared.errors import InvalidState

REBUILD_JOBS = "rebuild_jobs"
# A document per model being rebuilt (its id the model's name), held by the job.
REBUILD_LOCKS = "rebuild_locks"
# A running job whose worker has not written for this long is taken over (its worker writes at
# least once a page of history; a page may take a minute on a loaded store).
STALE_SECONDS = 300.0
ACTIVE = ("requested", "running")


class RebuildJobs:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.collection = database[REBUILD_JOBS]
        self.locks = database[REBUILD_LOCKS]
        self.clock = clock

    def ensure_indexes(self) -> None:
        self.collection.create_index([("state", ASCENDING), ("requested_at", ASCENDING)])
        self.collection.create_index([("requested_at", DESCENDING)])

    def request(self, models: Sequence[str], requested_by: str) -> dict[str, Any]:
        """A new job, refused while another one of the same models is waiting or running. Each
        model's lock is a document whose id is the model's name, so two requests at once cannot
        both hold it; the job is stored first (pending, which no worker claims), so a lock's job
        is always there to ask whether it still holds it."""
        job_id = str(uuid.uuid4())
        job: dict[str, Any] = {
            "_id": job_id,
            "models": list(models),
            "state": "pending",
            "requested_by": requested_by,
            "requested_at": self.clock(),
            "events_read": 0,
            "events_total": None,
        }
        self.collection.insert_one(job)
        for model in models:
            if not self._lock(model, job_id):
                self.locks.delete_many({"job_id": job_id})
                self.collection.delete_one({"_id": job_id})
                raise InvalidState(
                    f"a rebuild of {model} is already requested or running: watch it on the projections page"
                )
        self.collection.update_one({"_id": job_id}, {"$set": {"state": "requested"}})
        return public({**job, "state": "requested"})

    def _lock(self, model: str, job_id: str) -> bool:
        for _ in range(2):
            try:
                self.locks.insert_one({"_id": model, "job_id": job_id})
                return True
            except DuplicateKeyError:
                held = self.locks.find_one({"_id": model}) or {}
                holder = self.collection.find_one({"_id": held.get("job_id")}, {"state": 1})
                if holder is not None and holder["state"] in (*ACTIVE, "pending"):
                    return False
                # Its job ended, or was refused and is going: the lock is free.
                self.locks.delete_one({"_id": model, "job_id": held.get("job_id")})
        return False

    def claim(self, worker: str) -> dict[str, Any] | None:
        """The oldest waiting job, or a running one whose worker died; None when there is none."""
        now = self.clock()
        stale = now - timedelta(seconds=STALE_SECONDS)
        return self.collection.find_one_and_update(
            {
                "$or": [
                    {"state": "requested"},
                    {"state": "running", "beat_at": {"$lt": stale}},
                ]
            },
            {"$set": {"state": "running", "worker": worker, "started_at": now, "beat_at": now}},
            sort=[("requested_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    def progress(self, job_id: str, worker: str, read: int, total: int) -> bool:
        """False when the job is no longer this worker's (taken over)."""
        written = self.collection.update_one(
            {"_id": job_id, "worker": worker, "state": "running"},
            {"$set": {"events_read": read, "events_total": total, "beat_at": self.clock()}},
        )
        return written.matched_count == 1

    def release(self, job_id: str, worker: str) -> None:
        """Back to waiting (its worker is stopping): the next worker starts it again."""
        self.collection.update_one(
            {"_id": job_id, "worker": worker, "state": "running"},
            {"$set": {"state": "requested", "events_read": 0}, "$unset": {"worker": ""}},
        )

    def finish(self, job_id: str, worker: str, summary: dict[str, Any]) -> None:
        self.collection.update_one(
            {"_id": job_id, "worker": worker},
            {
                "$set": {
                    "state": "finished",
                    "finished_at": self.clock(),
                    "events_read": summary["events_read"],
                    "seconds": summary["seconds"],
                    "events_per_second": summary["events_per_second"],
                }
            },
        )
        self.locks.delete_many({"job_id": job_id})

    def fail(self, job_id: str, worker: str, reason: str) -> None:
        self.collection.update_one(
            {"_id": job_id, "worker": worker},
            {"$set": {"state": "failed", "finished_at": self.clock(), "problem": reason[:500]}},
        )
        self.locks.delete_many({"job_id": job_id})

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        cursor = self.collection.find({}).sort("requested_at", DESCENDING).limit(limit)
        return [public(job) for job in cursor]


def public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the RPCs answer it: ids and dates as strings, progress as a share."""
    total, read = job.get("events_total"), int(job.get("events_read") or 0)
    shown = {
        "job_id": job["_id"],
        "models": job["models"],
        "state": job["state"],
        "requested_by": job["requested_by"],
        "events_read": read,
        "events_total": total,
        "done": 1.0 if job["state"] == "finished" else (round(min(read / total, 1.0), 4) if total else 0.0),
        "problem": job.get("problem"),
    }
    for moment in ("requested_at", "started_at", "finished_at"):
        value = job.get(moment)
        shown[moment] = value.isoformat() if isinstance(value, datetime) else value
    return shown
