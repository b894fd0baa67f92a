"""The identity context's process manager (``crm-identity-reactions``): an agent's departure from
the sales force (``sales.agent_departed``) disables the agent's accounts, so the tokens they hold
are refused everywhere within seconds. Kill it at any moment: each event is one command, whose id
comes from the event, so a redelivery does nothing twice."""

from __future__ import annotations

import argparse
from typing import Any

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.process import by_event_type, run_process
from crm_shared.projector import ProjectorRunner
from services.identity.application import IdentityApplication

QUEUE = "identity.departures"
DEPARTED = "sales.agent_departed"
BINDINGS = (DEPARTED,)
REACTION = "disable_departed_agents_accounts"
IDENTITY_REACTIONS = Caller("service:identity-reactions", Role.SYSTEM, kind="service")


class IdentityReactions:
    def __init__(self, app: IdentityApplication, amqp_uri: str) -> None:
        self.app = app
        self.runner = ProjectorRunner(
            amqp_uri, QUEUE, by_event_type({DEPARTED: self.disable_departed}), binding_key=BINDINGS
        )

    def disable_departed(self, envelope: dict[str, Any]) -> None:
        self.app.disable_departed(envelope, CommandMeta.for_reaction(envelope, REACTION, IDENTITY_REACTIONS))

    def run(self) -> None:
        self.runner.run()

    def stop(self) -> None:
        self.runner.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-identity-reactions",
        description=f"Disable the accounts of agents who leave the sales force ({DEPARTED}, queue {QUEUE}).",
    )
    run_process(
        parser,
        lambda _, settings: IdentityReactions(IdentityApplication.from_settings(settings), settings.amqp_uri),
        argv,
    )


if __name__ == "__main__":
    main()
