"""The relay and the projector on the real RabbitMQ and a real MongoDB wire server."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Queue

from contracts import rpc
from contracts.events import validate_message
from crm_cli.system import fresh_vhost
from crm_shared.auth import Caller
from crm_shared.dead_letters import list_dead_letters, requeue_dead_letters
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import sqlite_env
from crm_shared.messaging import encode, events_exchange
from crm_shared.projector import ProjectorRunner
from crm_shared.relay import Relay
from services.analytics.catalog import mongo_client
from services.analytics.projector import is_store_outage
from services.analytics.store import Customer360Store
from services.customer.application import CustomerApplication
from services.topology import CONSUMER_QUEUES
from tests.support import customer_payload, sales_force, wait_until


@pytest.fixture
def customers(tmp_path: Path) -> CustomerApplication:
    return CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"))


@pytest.fixture
def tap(amqp_uri: str) -> Iterator[Queue]:
    """A private queue bound to every event, to see exactly what was published."""
    queue = Queue(
        f"tap-{uuid.uuid4().hex[:8]}",
        exchange=events_exchange,
        routing_key="#",
        auto_delete=False,
        durable=False,
    )
    with Connection(amqp_uri) as conn:
        events_exchange.declare(channel=conn.default_channel)
        queue.bind(conn.default_channel).declare()
    yield queue
    with Connection(amqp_uri) as conn:
        queue.bind(conn.default_channel).delete()


def drain(amqp_uri: str, queue: Queue) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    with Connection(amqp_uri) as conn:
        bound = queue.bind(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            received.append(json.loads(message.body))
    return received


@pytest.fixture
def store(mongo_uri: str) -> Iterator[Customer360Store]:
    client = mongo_client(mongo_uri)
    yield Customer360Store(client[f"crm_test_{uuid.uuid4().hex[:8]}"])
    client.close()


@pytest.fixture
def projector(amqp_uri: str, store: Customer360Store) -> Iterator[ProjectorRunner]:
    runner = ProjectorRunner(
        amqp_uri,
        f"test.customer_360.{uuid.uuid4().hex[:8]}",
        store,
        is_transient=is_store_outage,
    )
    with Connection(amqp_uri) as conn:
        runner.declare(conn)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    yield runner
    runner.stop()
    thread.join(10)


def register_many(app: CustomerApplication, caller: Caller, count: int) -> list[str]:
    return [
        app.register_customer(
            rpc.RegisterCustomer().load(customer_payload()), CommandMeta.new(caller), sales_force()
        )["customer_id"]
        for _ in range(count)
    ]


def registered_and_renamed(
    customers: CustomerApplication, operator: Caller
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A stored registration's message, and a made-up version 2 of it that renames the customer."""
    (customer_id,) = register_many(customers, operator, 1)
    registered = next(
        m for batch in customers.notifications(0) for n in batch if (m := customers.envelope(n))
    )
    renamed = {
        **registered,
        "aggregate_version": 2,
        "event_id": str(uuid.uuid4()),
        "payload": {**registered["payload"], "full_name": "Renamed"},
    }
    return customer_id, registered, renamed


def test_relay_publishes_every_public_event_in_order_with_valid_contracts(
    amqp_uri: str, customers: CustomerApplication, operator: Caller, tap: Queue
) -> None:
    ids = register_many(customers, operator, 7)
    relay = Relay(customers, amqp_uri, batch_size=3)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        assert relay.publish_pending(conn) == 7
        assert relay.publish_pending(conn) == 0  # nothing new: the position was recorded
    assert relay.position() == customers.max_position()
    messages = wait_until(lambda: drain(amqp_uri, tap), what="published messages")
    assert [m["aggregate_id"] for m in messages] == ids
    assert all(validate_message(m) == {} for m in messages)


def test_relay_position_survives_a_restart(
    amqp_uri: str, customers: CustomerApplication, operator: Caller, tap: Queue, tmp_path: Path
) -> None:
    register_many(customers, operator, 2)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        Relay(customers, amqp_uri).publish_pending(conn)
        register_many(customers, operator, 1)
        reopened = CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"))
        assert Relay(reopened, amqp_uri).publish_pending(conn) == 1


def test_a_crash_between_publishing_and_recording_republishes_and_projects_once(
    amqp_uri: str,
    customers: CustomerApplication,
    operator: Caller,
    store: Customer360Store,
    projector: ProjectorRunner,
) -> None:
    ids = register_many(customers, operator, 4)
    relay = Relay(customers, amqp_uri)

    def crash(*_: object) -> None:
        raise RuntimeError("killed before recording the position")

    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        relay.tracking.insert_tracking, original = crash, relay.tracking.insert_tracking
        with pytest.raises(RuntimeError):
            relay.publish_pending(conn)
        relay.tracking.insert_tracking = original
        assert relay.position() == 0
        assert relay.publish_pending(conn) == 4  # published again: at least once
    wait_until(lambda: projector.processed >= 8, what="both deliveries to be processed")
    for customer_id in ids:
        doc = store.get(customer_id)
        assert doc is not None and doc["revision"] == 1  # applied once in effect


def test_redelivered_and_older_events_leave_the_document_unchanged(
    amqp_uri: str,
    store: Customer360Store,
    projector: ProjectorRunner,
    operator: Caller,
    customers: CustomerApplication,
) -> None:
    customer_id, registered, newer = registered_and_renamed(customers, operator)
    with Connection(amqp_uri) as conn:
        producer = conn.Producer(exchange=events_exchange)
        for message in (registered, newer):
            producer.publish(encode(message), routing_key=message["event_type"])
        wait_until(lambda: (store.get(customer_id) or {}).get("revision") == 2, what="2 applies")
        before = store.get(customer_id)
        for message in (newer, registered):  # a redelivery, then an older event
            producer.publish(encode(message), routing_key=message["event_type"])
        wait_until(lambda: projector.processed >= 4, what="the replays to be processed")
    assert store.get(customer_id) == before
    assert before["profile"]["full_name"] == "Renamed"


def test_a_malformed_message_is_dead_lettered_with_its_reason_and_the_rest_flow(
    amqp_uri: str,
    store: Customer360Store,
    projector: ProjectorRunner,
    operator: Caller,
    customers: CustomerApplication,
) -> None:
    (customer_id,) = register_many(customers, operator, 1)
    good = next(m for batch in customers.notifications(0) for n in batch if (m := customers.envelope(n)))
    with Connection(amqp_uri) as conn:
        producer = conn.Producer(exchange=events_exchange)
        producer.publish(b"{not json", routing_key="customer.registered")
        producer.publish(encode({**good, "aggregate_version": "one"}), routing_key="customer.registered")
        producer.publish(encode(good), routing_key=good["event_type"])
    wait_until(lambda: store.get(customer_id), what="the good event to be projected")
    dead = projector.dead_letters
    reasons: list[str] = []
    with Connection(amqp_uri) as conn:
        bound = dead.bind(conn.default_channel)

        def collect() -> bool:
            if (letter := bound.get(no_ack=True)) is not None:
                reasons.append(letter.headers["x-crm-dead-letter-reason"])
            return len(reasons) == 2

        wait_until(collect, what="two dead letters")
    assert all(r.startswith("invalid message") for r in reasons)
    assert any("aggregate_version" in r for r in reasons)
    assert any("Expecting property name" in r for r in reasons)


def test_non_object_bodies_are_dead_lettered_too(amqp_uri: str, projector: ProjectorRunner) -> None:
    with Connection(amqp_uri) as conn:
        producer = conn.Producer(exchange=events_exchange)
        # The last one is nested too deep for the JSON decoder (RecursionError).
        for body in (b"1", b"[]", b"null", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000):
            producer.publish(body, routing_key="customer.registered")
        # Bodies that lie about their type: nothing may be decoded (or unpickled) before the
        # projector looks at it, or the consumer would fail on it forever.
        producer.publish(
            b"{not json",
            routing_key="customer.registered",
            content_type="application/json",
            content_encoding="utf-8",
        )
        producer.publish(
            b"\x80\x04K\x01.",
            routing_key="customer.registered",
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
    # Generous: under a full run the projector shares two cores with every other test's processes.
    wait_until(
        lambda: len(list_dead_letters(amqp_uri, projector.queue.name)) == 7,
        timeout=120,
        what="seven dead letters",
    )
    assert projector.processed == 0


def test_a_gap_is_dead_lettered_and_applies_once_its_predecessor_has(
    amqp_uri: str,
    store: Customer360Store,
    projector: ProjectorRunner,
    operator: Caller,
    customers: CustomerApplication,
) -> None:
    customer_id, registered, renamed = registered_and_renamed(customers, operator)
    with Connection(amqp_uri) as conn:
        conn.Producer(exchange=events_exchange).publish(encode(renamed), routing_key=renamed["event_type"])
    (letter,) = wait_until(
        lambda: list_dead_letters(amqp_uri, projector.queue.name),
        what="the early version 2 to be dead-lettered",
    )
    assert "arrived before version 1" in letter.reason
    assert store.get(customer_id) is None  # nothing recorded that would hide version 1 later
    with Connection(amqp_uri) as conn:
        conn.Producer(exchange=events_exchange).publish(
            encode(registered), routing_key=registered["event_type"]
        )
    wait_until(lambda: store.get(customer_id), what="version 1")
    assert requeue_dead_letters(amqp_uri, projector.queue.name) == 1
    wait_until(
        lambda: store.get(customer_id)["profile"]["full_name"] == "Renamed", what="the requeued version 2"
    )


def test_events_published_before_the_projector_ever_ran_wait_for_it(
    amqp_uri: str, customers: CustomerApplication, operator: Caller
) -> None:
    """The relay declares the CRM's consumer queues before publishing: nothing is dropped as
    unroutable when the relay starts first."""
    with fresh_vhost() as private_uri:
        register_many(customers, operator, 3)
        stop = threading.Event()
        relay = Relay(customers, private_uri, consumers=CONSUMER_QUEUES)
        thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        thread.start()
        wait_until(lambda: relay.position() == customers.max_position(), what="the relay")
        stop.set()
        thread.join(10)
        with Connection(private_uri) as conn:
            _, waiting, _ = conn.default_channel.queue_declare(next(iter(CONSUMER_QUEUES)), passive=True)
        assert waiting == 3


def test_an_idle_relay_keeps_its_connection_and_publishes_what_comes_later(
    amqp_uri: str,
    customers: CustomerApplication,
    operator: Caller,
    tap: Queue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Heartbeats are served while idle: with a 1 s heartbeat, 4 s without a single event would
    have cost the connection twice over if the relay did not read the broker's heartbeats."""
    import logging

    relay = Relay(customers, amqp_uri, heartbeat=1)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.INFO, logger="crm.relay"):
        thread.start()
        try:
            wait_until(lambda: "connected" in caplog.text, what="the relay to connect")
            stop.wait(4)  # real time on purpose: heartbeats are the broker's clock
            ids = register_many(customers, operator, 1)
            messages = wait_until(lambda: drain(amqp_uri, tap), what="the event published")
        finally:
            stop.set()
            thread.join(10)
    assert [m["aggregate_id"] for m in messages] == ids
    assert caplog.text.count("connected at position") == 1, caplog.text
    assert "lost its broker" not in caplog.text
