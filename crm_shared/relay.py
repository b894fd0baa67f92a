"""The outbox relay: publishes every stored event of one context's event store to ``crm.events`` in
global order, with publisher confirms, and records how far it got in the same store. An event that
is stored is published at least once; after a crash the relay resumes from its recorded position,
so some events may be published twice (consumers deduplicate by aggregate version)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import threading
import time
from typing import Any

from eventsourcing.persistence import Tracking, TrackingRecorder
from kombu import Connection

from crm_shared.config import Settings
from crm_shared.eventstore import CrmApplication
from crm_shared.messaging import (
    ConsumerQueues,
    PipelinedPublisher,
    broker_connection,
    declare_topology,
    encode,
    events_exchange,
)
from crm_shared.process import run_process

log = logging.getLogger("crm.relay")

APPLICATIONS = {
    "identity": "services.identity.application:IdentityApplication",
    "customer": "services.customer.application:CustomerApplication",
    "sales": "services.sales.application:SalesApplication",
    "service_desk": "services.service_desk.application:ServiceDeskApplication",
    "analytics": "services.analytics.watch.application:ChurnWatchApplication",
}
# Where the CRM's consumer queues are declared (see ``declare_topology``).
TOPOLOGY = "services.topology:CONSUMER_QUEUES"
TRACKING_NAME = "crm.relay"


def _imported(path: str) -> Any:
    module_name, _, name = path.partition(":")
    return getattr(importlib.import_module(module_name), name)


def application_class(context: str) -> type[CrmApplication]:
    return _imported(APPLICATIONS[context])


def consumer_queues() -> ConsumerQueues:
    return _imported(TOPOLOGY)


def load_application(context: str, settings: Settings) -> CrmApplication:
    return application_class(context).from_settings(settings)


class Relay:
    def __init__(
        self,
        app: CrmApplication,
        amqp_uri: str,
        batch_size: int = 500,
        tracking_name: str | None = None,
        heartbeat: int = 30,
        consumers: ConsumerQueues | None = None,
    ) -> None:
        self.app = app
        # The queues to declare before publishing (none: the caller declares its own).
        self.consumers = consumers or {}
        self.amqp_uri = amqp_uri
        self.batch_size = batch_size
        self.heartbeat = heartbeat
        self.tracking: TrackingRecorder = app.factory.tracking_recorder()
        self.tracking_name = tracking_name or f"{TRACKING_NAME}.{app.CONTEXT}"

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.tracking_name) or 0

    def publish_pending(self, connection: Connection, publisher: PipelinedPublisher | None = None) -> int:
        """Publish everything stored after the recorded position; returns how many were sent. A
        batch is published with all its messages in flight at once, and the next batch is read
        and encoded while the broker confirms it; the position moves on only once the broker has
        confirmed every message of a batch, and batches go out in store order."""
        own = publisher is None
        publisher = publisher or PipelinedPublisher(connection, events_exchange)
        published = 0
        in_flight: int | None = None  # the last position of the batch awaiting its confirms
        try:
            for batch in self.app.notifications(after=self.position(), batch_size=self.batch_size):
                ready = [(encode(e), e) for n in batch if (e := self.app.envelope(n)) is not None]
                if in_flight is not None:
                    self._confirmed(publisher, in_flight)
                for body, envelope in ready:
                    publisher.publish(
                        body,
                        routing_key=envelope["event_type"],
                        message_id=envelope["event_id"],
                        correlation_id=envelope["correlation_id"],
                        type=envelope["event_type"],
                    )
                published += len(ready)
                in_flight = batch[-1].id
            if in_flight is not None:
                self._confirmed(publisher, in_flight)
        finally:
            if own:
                publisher.close()
        return published

    def _confirmed(self, publisher: PipelinedPublisher, position: int) -> None:
        publisher.wait_for_confirms()
        self.tracking.insert_tracking(Tracking(self.tracking_name, position))

    def run(self, stop: threading.Event, poll_interval: float = 0.1) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                with broker_connection(self.amqp_uri, heartbeat=self.heartbeat) as connection:
                    connection.ensure_connection(max_retries=1)
                    declare_topology(connection, self.consumers)
                    publisher = PipelinedPublisher(connection, events_exchange)
                    log.info("relay %s connected at position %d", self.app.CONTEXT, self.position())
                    backoff = 0.5
                    while not stop.is_set():
                        if self.app.max_position() <= self.position():
                            idle_until(connection, poll_interval)
                            continue
                        sent = self.publish_pending(connection, publisher)
                        log.debug("relay %s published %d", self.app.CONTEXT, sent)
            except Exception:
                log.exception("relay %s lost its broker or store; retrying", self.app.CONTEXT)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def idle_until(connection: Connection, seconds: float) -> None:
    """Wait while reading the socket: the broker's heartbeats must be read, or after two missed
    ones the connection is declared dead ("Too many heartbeats missed") although both ends are
    fine."""
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=seconds)
    connection.heartbeat_check()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-relay",
        description=(
            "Publish every event stored by one context's event store to the RabbitMQ exchange "
            "crm.events, in order, with publisher confirms. Run exactly one relay per store."
        ),
    )
    parser.add_argument("context", choices=sorted(APPLICATIONS), help="which event store to relay")
    parser.add_argument("--batch-size", type=int, default=500)

    def build(args: argparse.Namespace, settings: Settings) -> RelayProcess:
        app = load_application(args.context, settings)
        return RelayProcess(Relay(app, settings.amqp_uri, args.batch_size, consumers=consumer_queues()))

    run_process(parser, build, argv)


class RelayProcess:
    """A relay run until stopped (``run_process``)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        self.relay.run(self.stopping)
        log.info("relay %s stopped after %.0fs", self.relay.app.CONTEXT, time.monotonic() - started)

    def stop(self) -> None:
        self.stopping.set()


if __name__ == "__main__":
    main()
