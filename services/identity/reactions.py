"""The identity context's process manager (``crm-identity-reactions``): an agent's departure from
the sales force (``sales.agent_departed``) disables the agent's accounts, so the tokens they hold
are refused everywhere within seconds. Kill it at any moment: each event is one command, whose id
comes from the event, so a redelivery does nothing twice."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from crm_shared.auth import Caller, Role
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta
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
        self.runner = ProjectorRunner(amqp_uri, QUEUE, self.react, binding_key=BINDINGS)

    def react(self, envelopes: list[dict[str, Any]]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in envelopes:
            try:
                if envelope["event_type"] == DEPARTED:
                    self.app.disable_departed(
                        envelope, CommandMeta.for_reaction(envelope, REACTION, IDENTITY_REACTIONS)
                    )
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
        prog="crm-identity-reactions",
        description=f"Disable the accounts of agents who leave the sales force ({DEPARTED}, queue {QUEUE}).",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    process = IdentityReactions(IdentityApplication.from_settings(settings), settings.amqp_uri)
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    signal.signal(signal.SIGINT, lambda *_: process.stop())
    process.run()


if __name__ == "__main__":
    main()
