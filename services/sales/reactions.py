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
from typing import Any

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.process import by_event_type, run_process
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
        react = by_event_type(
            {BINDING: self.follow_owner, COMPLAINED: self.follow_up_complaint, AT_RISK: self.follow_up_risk}
        )
        self.runner = ProjectorRunner(amqp_uri, QUEUE, react, binding_key=BINDINGS)

    def follow_owner(self, envelope: dict[str, Any]) -> None:
        self.app.follow_customer_owner(
            envelope, CommandMeta.for_reaction(envelope, REACTION, SALES_REACTIONS)
        )

    def follow_up_complaint(self, envelope: dict[str, Any]) -> None:
        if envelope["payload"]["kind"] == "complaint":
            meta = CommandMeta.for_reaction(envelope, COMPLAINT_REACTION, SALES_REACTIONS)
            self.app.follow_up_complaint(envelope, meta)

    def follow_up_risk(self, envelope: dict[str, Any]) -> None:
        meta = CommandMeta.for_reaction(envelope, CHURN_REACTION, SALES_REACTIONS)
        self.app.follow_up_churn_risk(envelope, meta)

    def run(self) -> None:
        self.runner.run()

    def stop(self) -> None:
        self.runner.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-sales-reactions",
        description=(
            f"Move customers' open opportunities and planned activities with them when their owner "
            f"changes ({BINDING}), and put a call in the owning agent's day when their customer "
            f"complains ({COMPLAINED}) or may be leaving ({AT_RISK}), from the queue {QUEUE}."
        ),
    )
    run_process(
        parser,
        lambda _, settings: SalesReactions(SalesApplication.from_settings(settings), settings.amqp_uri),
        argv,
    )


if __name__ == "__main__":
    main()
