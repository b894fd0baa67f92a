"""RabbitMQ topology shared by publishers and consumers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from kombu import Connection, Exchange, Queue, binding

from contracts.events import EVENTS_EXCHANGE

log = logging.getLogger(__name__)

events_exchange = Exchange(EVENTS_EXCHANGE, type="topic", durable=True)
dead_letter_exchange = Exchange("crm.dead-letters", type="topic", durable=True)
# The same exchanges as queues' bindings name them: declared by the installation and the relays
# (``declare_topology``), never by a consumer or a service, which may not configure them.
_events_bound = Exchange(EVENTS_EXCHANGE, type="topic", durable=True, no_declare=True)
_dead_letters_bound = Exchange(dead_letter_exchange.name, type="topic", durable=True, no_declare=True)


def broker_connection(amqp_uri: str, *, confirm_publish: bool = False, heartbeat: int = 30) -> Connection:
    """``heartbeat=0`` for a connection nobody drains between publishes (heartbeats are only
    answered while draining)."""
    options: dict[str, Any] = {"confirm_publish": True} if confirm_publish else {}
    return Connection(amqp_uri, heartbeat=heartbeat, transport_options=options, connect_timeout=5)


# A consumer of crm.events sets a bad message aside itself, with the reason; the broker's limit is
# the backstop for a message that kills the consumer's process before it can (out of memory, say).
# Higher than the RPC limit: every kill -9 or lost connection returns the whole prefetch once.
EVENT_DELIVERY_LIMIT = 20


def quorum_queue_arguments(name: str, delivery_limit: int) -> dict[str, Any]:
    """A quorum queue, whose broker counts every delivery (also those to a consumer that died) and
    dead-letters a message past ``delivery_limit`` to ``<name>.dead``."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange.name,
        "x-dead-letter-routing-key": name,
    }


def consumer_queue_arguments(name: str) -> dict[str, Any]:
    return quorum_queue_arguments(name, EVENT_DELIVERY_LIMIT)


def consumer_queue(name: str, binding_keys: str | tuple[str, ...] = "#") -> Queue:
    """A durable quorum queue on ``crm.events``, bound to the event types (routing keys) given,
    whose dead letters go to ``<name>.dead``."""
    if isinstance(binding_keys, str):
        return Queue(
            name,
            exchange=_events_bound,
            routing_key=binding_keys,
            durable=True,
            queue_arguments=consumer_queue_arguments(name),
        )
    return Queue(
        name,
        bindings=[binding(_events_bound, routing_key=key) for key in binding_keys],
        durable=True,
        queue_arguments=consumer_queue_arguments(name),
    )


# How often the broker hands one request to a consumer before it dead-letters it: a request that
# kills its process every time must not take every replica down in turn, for ever.
RPC_DELIVERY_LIMIT = 5


def rpc_queue_arguments(name: str) -> dict[str, Any]:
    """A service's RPC request queue."""
    return quorum_queue_arguments(name, RPC_DELIVERY_LIMIT)


def dead_letter_queue(name: str) -> Queue:
    return Queue(f"{name}.dead", exchange=_dead_letters_bound, routing_key=name, durable=True)


# Queue name -> the routing keys it is bound to.
ConsumerQueues = Mapping[str, str | tuple[str, ...]]
# A binding older versions gave every consumer queue, removed where it is not declared.
ALL_EVENTS = "#"


def ensure_exchanges(connection: Connection) -> None:
    """The exchanges a consumer's queues are bound to: there already (the installation or a relay
    declared them) or, where this connection may, declared now (a test on a bare broker). A
    passive check that fails closes its channel: each uses a channel of its own."""
    from amqp.exceptions import NotFound

    for exchange in (events_exchange, dead_letter_exchange):
        check = connection.channel()
        try:
            check.exchange_declare(exchange.name, exchange.type, passive=True)
        except NotFound:
            exchange.declare(channel=connection.channel())
        finally:
            if check.is_open:
                check.close()


def declare_topology(connection: Connection, consumers: ConsumerQueues) -> None:
    channel = connection.default_channel
    events_exchange.declare(channel=channel)
    dead_letter_exchange.declare(channel=channel)
    for name, binding_key in consumers.items():
        declare_consumer(channel, name, binding_key)


def declare_consumer(channel: Any, name: str, binding_keys: str | tuple[str, ...] = "#") -> None:
    """A consumer's durable queue on ``crm.events`` and its dead-letter queue."""
    consumer_queue(name, binding_keys).bind(channel).declare()
    dead_letter_queue(name).bind(channel).declare()
    keys = (binding_keys,) if isinstance(binding_keys, str) else binding_keys
    if ALL_EVENTS not in keys:
        # Unbinding what is not bound is no error; a queue upgraded from "#" takes only its types.
        channel.queue_unbind(name, exchange=events_exchange.name, routing_key=ALL_EVENTS)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def broker_reachable(amqp_uri: str, timeout: float = 3.0) -> str | None:
    """None when the broker accepts a connection, otherwise what went wrong."""
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1)
    except OSError as e:
        return str(e)
    except Exception as e:  # kombu wraps transport errors in many types
        return f"{type(e).__name__}: {e}"
    return None


class PublishRefused(RuntimeError):
    """The broker nacked a message: it did not take responsibility for it."""


class PipelinedPublisher:
    """Publishes with publisher confirms, many messages in flight at once: ``publish`` sends without
    waiting, ``wait_for_confirms`` returns once the broker confirmed every message sent so far (and
    raises ``PublishRefused`` if it refused any). Confirming one message at a time costs a round trip
    (and, for a quorum queue, an fsync) per message; a window of them shares both."""

    def __init__(self, connection: Connection, exchange: Exchange, *, confirm_timeout: float = 30.0) -> None:
        self.connection = connection
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.sent = 0  # delivery tags run from 1 on a channel in confirm mode
        self.confirmed = 0
        self._acked_out_of_order: set[int] = set()
        self.refused = 0

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.confirmed = max(self.confirmed, delivery_tag)
        else:
            self._acked_out_of_order.add(delivery_tag)
        while self.confirmed + 1 in self._acked_out_of_order:
            self.confirmed += 1
            self._acked_out_of_order.discard(self.confirmed)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.refused += 1
        self._on_ack(delivery_tag, multiple)

    def publish(self, body: bytes, routing_key: str, **properties: Any) -> None:
        message = self.channel.prepare_message(
            body,
            content_type=properties.pop("content_type", "application/json"),
            content_encoding=properties.pop("content_encoding", "utf-8"),
            headers=properties.pop("headers", None),
            properties={"delivery_mode": 2, **properties},
        )
        # _basic_publish never waits, even on a connection opened with confirm_publish (where
        # basic_publish is the one-at-a-time confirming variant).
        self.channel._basic_publish(message, exchange=self.exchange.name, routing_key=routing_key)
        self.sent += 1

    def wait_for_confirms(self) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while self.confirmed < self.sent:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the broker confirmed {self.confirmed} of {self.sent} messages")
            try:
                self.connection.drain_events(timeout=min(left, 1.0))
            except TimeoutError:
                continue
        if self.refused:
            refused, self.refused = self.refused, 0
            raise PublishRefused(f"the broker refused {refused} message(s)")

    def close(self) -> None:
        self.channel.close()


class BrokerQueues:
    """Queue depths as the broker reports them (a passive declare, which creates nothing)."""

    def __init__(self, amqp_uri: str) -> None:
        self.amqp_uri = amqp_uri

    def depth(self, queue: str) -> tuple[int, int]:
        """(messages waiting to be delivered, consumers) of ``queue``; (0, 0) if it does not exist."""
        with broker_connection(self.amqp_uri, heartbeat=0) as connection:
            try:
                _, waiting, consumers = connection.default_channel.queue_declare(queue, passive=True)
            except Exception:  # no such queue: nothing was ever bound or consumed there
                return 0, 0
        return int(waiting), int(consumers)
