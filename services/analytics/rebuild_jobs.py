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

from crm_shared.errors import InvalidState

REBUILD_JOBS = "rebuild_jobs"
# A running job whose worker has not written for this long is taken over (its worker writes at
# least once a page of history; a page may take a minute on a loaded store).
STALE_SECONDS = 300.0
ACTIVE = ("requested", "running")


class RebuildJobs:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.collection = database[REBUILD_JOBS]
        self.clock = clock

    def ensure_indexes(self) -> None:
        self.collection.create_index([("state", ASCENDING), ("requested_at", ASCENDING)])
        self.collection.create_index([("requested_at", DESCENDING)])

    def request(self, models: Sequence[str], requested_by: str) -> dict[str, Any]:
        """A new job, refused while another one of the same models is waiting or running."""
        busy = self.collection.find_one({"state": {"$in": list(ACTIVE)}, "models": {"$in": list(models)}})
        if busy is not None:
            raise InvalidState(
                f"a rebuild of {', '.join(busy['models'])} is already {busy['state']} "
                f"(job {busy['_id']}): watch it on the projections page"
            )
        job = {
            "_id": str(uuid.uuid4()),
            "models": list(models),
            "state": "requested",
            "requested_by": requested_by,
            "requested_at": self.clock(),
            "events_read": 0,
            "events_total": None,
        }
        self.collection.insert_one(job)
        return public(job)

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

    def fail(self, job_id: str, worker: str, reason: str) -> None:
        self.collection.update_one(
            {"_id": job_id, "worker": worker},
            {"$set": {"state": "failed", "finished_at": self.clock(), "problem": reason[:500]}},
        )

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
