"""A request that kills every process it reaches is set aside by the broker after a bounded number
of deliveries, and operators see it with ``crm dead-letters``."""

from __future__ import annotations

import uuid

from kombu import Connection, Exchange, Queue

from crm_shared.dead_letters import list_dead_letters
from crm_shared.messaging import (
    RPC_DELIVERY_LIMIT,
    dead_letter_exchange,
    dead_letter_queue,
    rpc_queue_arguments,
)
from tests.support import wait_until


def test_a_request_whose_consumer_dies_every_time_is_dead_lettered_after_the_limit(amqp_uri: str) -> None:
    name = f"rpc-poison-{uuid.uuid4().hex[:8]}"
    exchange = Exchange("nameko-rpc", type="topic", durable=True)
    queue = Queue(
        name,
        exchange=exchange,
        routing_key=f"{name}.*",
        durable=True,
        queue_arguments=rpc_queue_arguments(name),
    )
    deliveries = 0
    with Connection(amqp_uri) as setup:
        dead_letter_exchange.declare(channel=setup.default_channel)
        dead_letter_queue(name).bind(setup.default_channel).declare()
        queue.bind(setup.default_channel).declare()
        setup.Producer().publish(
            b'{"args": [{}], "kwargs": {}}',
            exchange=exchange,
            routing_key=f"{name}.get_customer",
            content_type="application/json",
            message_id="the-poison",
            reply_to="someone",
            correlation_id="c-1",
        )
    # Each "process" takes the request and dies before acknowledging it: its connection drops.
    for _ in range(RPC_DELIVERY_LIMIT + 3):
        with Connection(amqp_uri) as worker:
            message = queue.bind(worker.channel()).get(no_ack=False)
        if message is None:
            break
        deliveries += 1
    assert deliveries == RPC_DELIVERY_LIMIT + 1  # the first delivery and the redeliveries allowed
    letters = wait_until(lambda: list_dead_letters(amqp_uri, name), timeout=10, what="the dead letter")
    assert [(d.message_id, d.reason) for d in letters] == [("the-poison", "delivery_limit")]
    with Connection(amqp_uri) as cleanup:
        queue.bind(cleanup.default_channel).delete()
        dead_letter_queue(name).bind(cleanup.default_channel).delete()


def test_an_empty_classic_queue_of_an_older_version_is_replaced_by_a_quorum_queue() -> None:
    from crm_cli.system import fresh_vhost, prepare_queues, system_queues

    queues = system_queues(["customer", "sales"])
    with fresh_vhost() as uri, Connection(uri) as conn:
        conn.channel().queue_declare("rpc-customer", durable=True, auto_delete=False)
        conn.channel().queue_declare("analytics.customer_360", durable=True, auto_delete=False)
        prepare_queues(uri, queues)
        prepare_queues(uri, queues)  # idempotent
        for name, arguments in queues.items():
            declared = conn.channel().queue_declare(
                name, durable=True, auto_delete=False, arguments=arguments
            )
            assert declared.queue == name  # same arguments: accepted as it is


def test_a_classic_queue_of_an_older_version_that_holds_messages_is_left_with_instructions() -> None:
    import pytest

    from crm_cli.system import fresh_vhost, prepare_queues, system_queues

    with fresh_vhost() as uri, Connection(uri) as conn:
        conn.channel().queue_declare("analytics.customer_360", durable=True, auto_delete=False)
        conn.Producer().publish(b"{}", routing_key="analytics.customer_360")
        with pytest.raises(SystemExit, match="still holds 1 message"):
            prepare_queues(uri, system_queues([]))
