"""``crm-rebuilds``: runs the rebuilds asked for on the dashboard or through ``start_rebuild``
(``RebuildJobs``), one at a time, reading each write side's history under its own service account
(scoped to the ``read_history`` operations) and writing its progress as it goes. Kill it at any
moment: the job is taken over, from the start, by the next one that runs (the replay is
idempotent; a half-built collection is dropped). Any number may run."""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from pymongo.database import Database

from crm_shared.clock import utc_now
from crm_shared.config import Settings
from crm_shared.process import run_process
from crm_shared.relay import APPLICATIONS
from crm_shared.rpc_client import CrmClient
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.read_models import PROJECTIONS
from services.analytics.rebuild import HistorySource, Rebuilder, RpcHistory
from services.analytics.rebuild_jobs import RebuildJobs

log = logging.getLogger("crm.rebuilds")
# Each write side's history, for as long as one rebuild reads it.
Sources = Callable[[], AbstractContextManager[list[HistorySource]]]
POLL_SECONDS = 1.0
# Progress is written at most this often: a rebuild of millions of events writes a few hundred.
PROGRESS_SECONDS = 0.5


class JobLeft(Exception):
    """The job stops here: its worker is stopping, or another one took it over."""


class RebuildProcess:
    def __init__(self, database: Database, sources: Sources, catalog: ReadModelCatalog | None = None) -> None:
        self.database = database
        self.catalog = catalog
        self.jobs = RebuildJobs(database, utc_now)
        self.jobs.ensure_indexes()
        self.sources = sources
        self.worker = f"rebuilds-{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.jobs.claim(self.worker)
            except Exception as e:  # the database away: ask again
                log.warning("could not look for rebuilds (%s)", e)
                job = None
            if job is None:
                self.stopping.wait(POLL_SECONDS)
                continue
            self.run_job(job)

    def run_job(self, job: dict[str, Any]) -> None:
        taken_over = job.get("events_read", 0) > 0 or job.get("events_total") is not None
        log.info("rebuilding %s (job %s)", ", ".join(job["models"]), job["_id"])
        try:
            with self.sources() as sources:
                rebuilder = Rebuilder(self.database, sources, catalog=self.catalog)
                total = rebuilder.total_events()
                self.jobs.progress(job["_id"], self.worker, 0, total)
                read, written = 0, time.monotonic()

                def advance(n: int) -> None:
                    nonlocal read, written
                    read += n
                    if self.stopping.is_set():
                        raise JobLeft("this worker is stopping")
                    if time.monotonic() - written >= PROGRESS_SECONDS:
                        written = time.monotonic()
                        if not self.jobs.progress(job["_id"], self.worker, read, max(total, read)):
                            raise JobLeft("another worker took the job over")

                projections = [PROJECTIONS[name] for name in job["models"]]
                summary = rebuilder.rebuild(projections, advance, force=taken_over)
        except JobLeft as e:
            # The rebuilder dropped its half-built collections on the way out.
            log.info("the rebuild of %s stopped: %s (job %s)", ", ".join(job["models"]), e, job["_id"])
            if self.stopping.is_set():
                self.jobs.release(job["_id"], self.worker)
            return
        except Exception as e:
            log.exception("the rebuild of %s failed (job %s)", ", ".join(job["models"]), job["_id"])
            self.jobs.fail(job["_id"], self.worker, f"{type(e).__name__}: {e}")
            return
        self.jobs.finish(job["_id"], self.worker, summary.as_dict())
        log.info(
            "rebuilt %s: %s events in %.1f s", ", ".join(job["models"]), summary.events_read, summary.seconds
        )

    def stop(self) -> None:
        self.stopping.set()


def rpc_sources(settings: Settings) -> Sources:
    """Each write side's history over RPC, as this process's service account."""

    @contextmanager
    def sources() -> Iterator[list[HistorySource]]:
        if not settings.client_id or not settings.client_secret:
            raise RuntimeError(
                "crm-rebuilds signs in as its service account: set CRM_CLIENT_ID and CRM_CLIENT_SECRET_FILE"
            )
        credentials = (settings.client_id, settings.client_secret)
        with CrmClient.for_service(settings.amqp_uri, *credentials, timeout=60) as client:
            yield [RpcHistory(client.call, service) for service in APPLICATIONS]

    return sources


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-rebuilds",
        description="Run the read-model rebuilds asked for on the dashboard's projections page or with "
        "the start_rebuild RPC, one at a time, writing their progress as they go ('crm rebuild' runs "
        "one from a terminal instead).",
    )

    def build(_: argparse.Namespace, settings: Settings) -> RebuildProcess:
        database = mongo_client(settings.mongo_uri)[settings.mongo_database]
        return RebuildProcess(database, rpc_sources(settings))

    run_process(parser, build, argv)


if __name__ == "__main__":
    main()
