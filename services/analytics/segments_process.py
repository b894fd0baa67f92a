"""The segments process (``crm-segments``): recomputes the segment tables over the whole book once
a day at the configured time (``recompute_at`` in the scoring configuration, the deployment's
zone), and at once on a database where it never ran. Any number may run: one holds the lease and
recomputes, the others wait their turn. The time comes from the deployment's clock (a test's
controllable clock when one is set)."""

from __future__ import annotations

import argparse
import logging
import threading
import uuid
from zoneinfo import ZoneInfo

from crm_shared.config import Settings
from crm_shared.process import run_process
from services.analytics.catalog import mongo_client
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.recompute import SegmentRecompute
from services.analytics.scoring.schedule import LEASE, Lease, is_due
from services.analytics.watch.application import ChurnWatchApplication, recorded_by

log = logging.getLogger("crm.segments")
POLL_SECONDS = 5.0
# After a failed recompute: a whole-book pass is not retried in a loop.
RETRY_SECONDS = 600.0


class SegmentsProcess:
    def __init__(self, settings: Settings, config: ScoringConfig) -> None:
        self.settings = settings
        self.config = config
        self.clock = settings.clock()
        self.zone = ZoneInfo(settings.timezone)
        self.client = mongo_client(settings.mongo_uri)
        database = self.client[settings.mongo_database]
        self.lease = Lease(database, f"segments-{uuid.uuid4().hex[:8]}")
        self.watch = ChurnWatchApplication.from_settings(settings)
        self.recompute = SegmentRecompute(
            database, config, clock=self.clock, on_crossing=recorded_by(self.watch), zone=self.zone
        )
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            wait = POLL_SECONDS
            try:
                self.tick()
            except Exception:  # the database away, say: try again, not at once
                log.exception("the segment recompute failed; trying again in %.0f s", RETRY_SECONDS)
                wait = RETRY_SECONDS
            self.stopping.wait(wait)
        self.client.close()
        self.watch.close()

    def tick(self) -> bool:
        """Recompute if it is due and this process gets the lease; True if it did."""
        now = self.clock()
        if not is_due(self.lease.last_run(), now, self.config.recompute_at, self.zone):
            return False
        if not self.lease.take(now):
            return False
        renewed = [now]

        def keep_the_lease(_phase: str, _done: int, _total: int) -> None:
            moment = self.clock()
            if moment - renewed[0] > LEASE / 3:
                renewed[0] = moment
                if not self.lease.take(moment):
                    raise RuntimeError("lost the recompute's lease to another process")

        log.info("recomputing the segment tables")
        summary = self.recompute.run(keep_the_lease)
        self.lease.done(self.clock(), now)
        log.info(
            "recomputed %d customers in %.1fs; %d segment rows changed; churn raised %d, cleared %d",
            summary.customers,
            summary.seconds,
            summary.memberships_changed,
            summary.churn_raised,
            summary.churn_cleared,
        )
        return True

    def stop(self) -> None:
        self.stopping.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-segments",
        description="Recompute the segment tables (value tiers, RFM and the watch list, lifecycle, "
        "value x churn) over the whole book once a day at recompute_at (CRM_SCORING_CONFIG, the "
        "deployment's zone CRM_TIMEZONE), and at once where it never ran. 'crm segments recompute' "
        "runs one by hand.",
    )
    run_process(parser, lambda _, settings: SegmentsProcess(settings, ScoringConfig.from_env()), argv)


if __name__ == "__main__":
    main()
