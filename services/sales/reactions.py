"""The sales context's process manager (``crm-sales-reactions``). Work follows the customer: it
reacts to ``customer.owner_changed`` (a reassignment, a page of a book transfer, an undone
transfer) by moving the customer's open opportunities and planned activities to the new owner
(``HandingOver.follow_customer_owner``). A complaint reaches the owner: on
``service_desk.ticket_opened`` of a complaint it puts a call to the customer in the owning agent's
day (``Planning.follow_up_complaint``), and so does a churn warning
(``analytics.churn_risk_raised``: ``Planning.follow_up_churn_risk``). Kill it at any moment: each
event is one command, whose id comes from the event, so a redelivery does nothing twice. Any
number may run."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from crm_shared.auth import Caller, Role
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta
from crm_shared.projector import ProjectorRunner
from services.sales.application import SalesApplication

QUEUE = "sales.work_follows_customer"
BINDING = "customer.owner_changed"
COMPLAINED = "service_desk.ticket_opened"
AT_RISK = "analytics.churn_risk_raised"
BINDINGS = (BINDING, COMPLAINED, AT_RISK)
REACTION = "move_work_with_customer"
COMPLAINT_REACTION = "call_the_customer_about_a_complaint"
CHURN_REACTION = "call_the_customer_at_risk_of_leaving"
# Whose name the moves are recorded under (who changed the owner is in the owner change).
SALES_REACTIONS = Caller("service:sales-reactions", Role.SYSTEM)
log = logging.getLogger("crm.sales.reactions")


class SalesReactions:
    def __init__(self, app: SalesApplication, amqp_uri: str) -> None:
        self.app = app
        self.runner = ProjectorRunner(amqp_uri, QUEUE, self.react, binding_key=BINDINGS)

    def react(self, envelopes: list[dict[str, Any]]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in envelopes:
            try:
                if envelope["event_type"] == BINDING:
                    meta = CommandMeta.for_reaction(envelope, REACTION, SALES_REACTIONS)
                    self.app.follow_customer_owner(envelope, meta)
                elif envelope["event_type"] == COMPLAINED and envelope["payload"]["kind"] == "complaint":
                    meta = CommandMeta.for_reaction(envelope, COMPLAINT_REACTION, SALES_REACTIONS)
                    self.app.follow_up_complaint(envelope, meta)
                elif envelope["event_type"] == AT_RISK:
                    meta = CommandMeta.for_reaction(envelope, CHURN_REACTION, SALES_REACTIONS)
                    self.app.follow_up_churn_risk(envelope, meta)
                outcomes.append(None)
            except Exception as e:  # retried alone, then dead-lettered with the reason
                outcomes.append(e)
        return outcomes

    def run(self) -> None:
        self.runner.run()

    def stop(self) -> None:
        self.runner.stop()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="crm-sales-reactions",
        description=(
            f"Move customers' open opportunities and planned activities with them when their owner "
            f"changes ({BINDING}), and put a call in the owning agent's day when their customer "
            f"complains ({COMPLAINED}) or may be leaving ({AT_RISK}), from the queue {QUEUE}."
        ),
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    process = SalesReactions(SalesApplication.from_settings(settings), settings.amqp_uri)
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    signal.signal(signal.SIGINT, lambda *_: process.stop())
    process.run()


if __name__ == "__main__":
    main()
