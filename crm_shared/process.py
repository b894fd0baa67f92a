"""What every long-running process of the CRM (relays, projector, process managers, timers) does
around its own work: parse its command line, log, read its settings, stop cleanly on SIGTERM or
SIGINT, and beat on ``crm.heartbeats`` while it runs, so the operators' dashboard sees it up."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

from crm_shared.config import Settings
from crm_shared.heartbeat import HeartbeatSender


class Runnable(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


Build = Callable[[argparse.Namespace, Settings], Runnable]


def process_name(default: str) -> str:
    """The name this process beats under: the installation's (``CRM_PROCESS_NAME``, such as
    ``service_desk-2`` or ``relay-sales``), else its program's."""
    return os.environ.get("CRM_PROCESS_NAME") or default


def run_process(
    parser: argparse.ArgumentParser,
    build: Build,
    argv: list[str] | None = None,
    detail: Callable[[], dict[str, Any]] = dict,
) -> None:
    """Runs what ``build`` makes of the arguments and settings until a signal stops it."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    process = build(args, settings)
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    signal.signal(signal.SIGINT, lambda *_: process.stop())
    beat = HeartbeatSender(settings.amqp_uri, process_name(parser.prog), detail).start()
    try:
        process.run()
    finally:
        beat.stop()


Envelope = dict[str, Any]
Reaction = Callable[[Envelope], None]


def by_event_type(reactions: dict[str, Reaction]) -> Callable[[list[Envelope]], list[BaseException | None]]:
    """A consumer's batch handler that gives each envelope to the reaction for its event type
    (none: acknowledged as is) and answers each one's outcome: a failure is retried alone, then
    dead-lettered with its reason (``ProjectorRunner``)."""

    def react(envelopes: list[Envelope]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in envelopes:
            reaction = reactions.get(envelope["event_type"])
            try:
                if reaction is not None:
                    reaction(envelope)
                outcomes.append(None)
            except Exception as e:
                outcomes.append(e)
        return outcomes

    return react
