"""The customer context's hand-over process (``crm-handover``): reacts to ``sales.agent_departed``
by starting the transfer of the agent's book, and moves every transfer under way, a page at a time,
until it is done; and withdraws a customer's marketing consent on a channel when they opt out of a
campaign there (``sales.campaign_response_recorded``). It also keeps the duplicate lookups up to
the store. Kill it at any moment: what it moved is recorded with the move, and it goes on from
there when it starts again. Any number may run; they share the work through the store's optimistic
concurrency."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from eventsourcing.persistence import IntegrityError

from crm_shared.domain import CommandMeta
from crm_shared.errors import ConcurrencyConflict
from crm_shared.process import by_event_type, run_process
from crm_shared.projector import ProjectorRunner
from services.customer.application import CustomerApplication
from services.customer.handover import HANDOVER

QUEUE = "customer.handover"
BINDING = "sales.agent_departed"
OPTED_OUT = "sales.campaign_response_recorded"
BINDINGS = (BINDING, OPTED_OUT)
REACTION = "hand_over_departed_agents_book"
OPT_OUT_REACTION = "withdraw_consent_on_opt_out"
log = logging.getLogger("crm.handover")


class HandoverProcess:
    def __init__(self, app: CustomerApplication, amqp_uri: str, poll_seconds: float = 0.2) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self.stop_event = threading.Event()
        react = by_event_type({BINDING: self.hand_over_book, OPTED_OUT: self.withdraw_consent})
        self.reactions = ProjectorRunner(amqp_uri, QUEUE, react, binding_key=BINDINGS)

    def hand_over_book(self, envelope: dict[str, Any]) -> None:
        self.app.hand_over_departed_agents_book(
            envelope, CommandMeta.for_reaction(envelope, REACTION, HANDOVER)
        )

    def withdraw_consent(self, envelope: dict[str, Any]) -> None:
        if envelope["payload"]["response"] == "opted_out":
            self.app.withdraw_consent_on_opt_out(
                envelope, CommandMeta.for_reaction(envelope, OPT_OUT_REACTION, HANDOVER)
            )

    def run(self) -> None:
        consumer = threading.Thread(target=self.reactions.run, name="reactions", daemon=True)
        consumer.start()
        while not self.stop_event.is_set():
            try:
                # The duplicate lookups follow the store within a poll, so a registration is told
                # of a customer registered a moment before.
                self.app.matches.catch_up()
                busy = self.app.advance_transfers()
            except (ConcurrencyConflict, IntegrityError):
                busy = 1  # another process moved the same page first: look again
            except Exception:
                log.exception("a book transfer step failed; retrying")
                busy = 0
            if not busy:
                self.stop_event.wait(self.poll_seconds)
        self.reactions.stop()
        consumer.join(10)

    def stop(self) -> None:
        self.stop_event.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-handover",
        description=(
            f"Hand over departed agents' books (reacting to sales.agent_departed on the queue {QUEUE}) "
            "and move every book transfer under way until it is done; withdraw the marketing consent "
            f"of customers who opt out of a campaign ({OPTED_OUT})."
        ),
    )
    run_process(
        parser,
        lambda _, settings: HandoverProcess(CustomerApplication.from_settings(settings), settings.amqp_uri),
        argv,
    )


if __name__ == "__main__":
    main()
