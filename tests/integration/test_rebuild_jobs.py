"""Rebuilds asked for on the dashboard: a job per request, refused while one of the same model is
under way, run by ``crm-rebuilds`` with its progress written as it goes, and taken over when its
worker dies, on the real read-model database (SecantusDB) and a real event store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import rpc
from crm_shared.clock import utc_now
from crm_shared.domain import CommandMeta
from crm_shared.errors import InvalidState
from crm_shared.eventstore import sqlite_env
from services.analytics.catalog import ReadModelCatalog
from services.analytics.rebuild import HistorySource
from services.analytics.rebuild_jobs import REBUILD_JOBS, STALE_SECONDS, RebuildJobs
from services.analytics.rebuild_process import RebuildProcess
from services.analytics.store import CUSTOMER_360
from services.customer.application import CustomerApplication
from tests.support import customer_payload, sales_force, wait_until


@pytest.fixture
def customers(tmp_path: Path, operator: Any) -> Iterator[CustomerApplication]:
    app = CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"))
    force = sales_force()
    for _ in range(30):
        data = rpc.RegisterCustomer().load(customer_payload())
        app.register_customer(data, CommandMeta.new(operator), force)
    yield app
    app.close()


def process_of(database: Any, customers: CustomerApplication) -> RebuildProcess:
    @contextmanager
    def sources() -> Iterator[list[HistorySource]]:
        yield [customers]

    return RebuildProcess(database, sources, catalog=ReadModelCatalog(database, ttl=0.05))


def test_a_requested_rebuild_runs_once_with_its_progress_and_a_second_waits(database, customers) -> None:
    jobs = RebuildJobs(database, utc_now)
    job = jobs.request([CUSTOMER_360], "op-1")
    assert (job["state"], job["done"], job["requested_by"]) == ("requested", 0.0, "op-1")
    with pytest.raises(InvalidState, match="already requested"):
        jobs.request([CUSTOMER_360, "customer_search"], "op-2")

    process = process_of(database, customers)
    runner = threading.Thread(target=process.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: jobs.recent()[0]["state"] == "finished", timeout=60)
    finally:
        process.stop()
        runner.join(10)
    done = jobs.recent()[0]
    assert done["job_id"] == job["job_id"] and done["done"] == 1.0
    assert done["events_read"] == done["events_total"] == customers.max_position()
    assert (
        database[ReadModelCatalog(database).targets_uncached(CUSTOMER_360).active].count_documents({}) == 30
    )
    # Finished: another may be asked for.
    assert jobs.request([CUSTOMER_360], "op-2")["state"] == "requested"


def test_a_job_whose_worker_died_is_taken_over_and_forced(database, customers) -> None:
    jobs = RebuildJobs(database, utc_now)
    job = jobs.request([CUSTOMER_360], "op-1")
    assert jobs.claim("dead-worker") is not None
    assert jobs.claim("another") is None  # running, and its worker alive
    # The dead worker began building and wrote progress, then stopped beating.
    ReadModelCatalog(database).begin_rebuild(CUSTOMER_360, "customer_360_half_built")
    database[REBUILD_JOBS].update_one(
        {"_id": job["job_id"]},
        {"$set": {"events_read": 7, "beat_at": utc_now() - timedelta(seconds=STALE_SECONDS + 1)}},
    )
    process = process_of(database, customers)
    claimed = jobs.claim(process.worker)
    assert claimed is not None and claimed["_id"] == job["job_id"]
    process.run_job(claimed)
    done = jobs.recent()[0]
    assert done["state"] == "finished", done
    targets = ReadModelCatalog(database).targets_uncached(CUSTOMER_360)
    assert targets.building is None and targets.active != CUSTOMER_360
    assert (
        database[ReadModelCatalog(database).targets_uncached(CUSTOMER_360).active].count_documents({}) == 30
    )


def test_a_failed_rebuild_says_why(database, customers) -> None:
    jobs = RebuildJobs(database, utc_now)
    jobs.request([CUSTOMER_360], "op-1")

    @contextmanager
    def broken() -> Iterator[list[HistorySource]]:
        raise RuntimeError("the customer service refused to read its history: permission_denied")
        yield []

    process = RebuildProcess(database, broken, catalog=ReadModelCatalog(database, ttl=0.05))
    claimed = jobs.claim(process.worker)
    assert claimed is not None
    process.run_job(claimed)
    failed = jobs.recent()[0]
    assert failed["state"] == "failed" and "permission_denied" in failed["problem"]


def test_a_stopping_worker_leaves_the_job_to_the_next_and_no_half_built_model(database, customers) -> None:
    jobs = RebuildJobs(database, utc_now)
    job = jobs.request([CUSTOMER_360], "op-1")
    process = process_of(database, customers)
    claimed = jobs.claim(process.worker)
    assert claimed is not None
    process.stop()  # SIGTERM while it replays
    process.run_job(claimed)
    left = jobs.recent()[0]
    assert (left["job_id"], left["state"], left["events_read"]) == (job["job_id"], "requested", 0)
    assert ReadModelCatalog(database).targets_uncached(CUSTOMER_360).building is None
    # The next worker runs it to the end.
    again = process_of(database, customers)
    taken = jobs.claim(again.worker)
    assert taken is not None and taken["_id"] == job["job_id"]
    again.run_job(taken)
    assert jobs.recent()[0]["state"] == "finished"


def test_two_requests_at_the_same_moment_make_one_job(database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = RebuildJobs(database, utc_now)

    def ask(who: str) -> str:
        try:
            return str(jobs.request([CUSTOMER_360], who)["job_id"])
        except InvalidState:
            return "refused"

    for _ in range(5):
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, ["a", "b", "c", "d"]))
        assert len([a for a in answers if a != "refused"]) == 1, answers
        assert database[REBUILD_JOBS].count_documents({"state": "requested"}) == 1
        database[REBUILD_JOBS].delete_many({})
