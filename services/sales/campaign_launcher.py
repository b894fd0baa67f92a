"""The sales context's campaign launcher (``crm-campaigns``): freezes the targets of the campaigns
being launched, a page at a time, with the calls, opportunities and messages each page makes
(``Campaigns.advance_launches``), reading the target from analytics under its own service account
(client credentials). Kill it at any moment: each page is recorded with what it made, and it goes on from the
last page recorded. Any number may run; they share the work through the store's optimistic
concurrency."""

from __future__ import annotations

import argparse
import logging
import threading

from eventsourcing.persistence import IntegrityError

from crm_shared.config import Settings
from crm_shared.errors import ConcurrencyConflict
from crm_shared.process import run_process
from crm_shared.rpc_client import CrmClient
from services.sales.application import SalesApplication
from services.sales.targets import RpcSegmentTargets

log = logging.getLogger("crm.sales.campaigns")


class CampaignLauncher:
    def __init__(self, app: SalesApplication, settings: Settings, poll_seconds: float = 0.5) -> None:
        self.app = app
        self.settings = settings
        self.poll_seconds = poll_seconds
        self.stop_event = threading.Event()

    def run(self) -> None:
        settings = self.settings
        if not settings.client_id or not settings.client_secret:
            raise SystemExit(
                "crm-campaigns signs in as its service account: set CRM_CLIENT_ID and CRM_CLIENT_SECRET_FILE"
            )
        client = CrmClient.for_service(
            settings.amqp_uri, settings.client_id, settings.client_secret, timeout=60
        )
        with client:
            targets = RpcSegmentTargets(lambda p: client.call("analytics", "list_segment_targets", p))
            while not self.stop_event.is_set():
                try:
                    busy = self.app.advance_launches(targets)
                except (ConcurrencyConflict, IntegrityError):
                    busy = 1  # another launcher recorded the same page first: look again
                except Exception:
                    log.exception("a campaign launch step failed; retrying")
                    busy = 0
                if not busy:
                    self.stop_event.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stop_event.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-campaigns",
        description="Freeze the targets of the campaigns being launched, a page at a time, and create "
        "their work: calls and opportunities in the owning agents' days, messages for the gateways.",
    )
    run_process(
        parser, lambda _, settings: CampaignLauncher(SalesApplication.from_settings(settings), settings), argv
    )


if __name__ == "__main__":
    main()
