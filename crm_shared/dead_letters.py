"""Operators' view of dead letters: list them with their reasons, requeue them to the queue they
came from once the cause is fixed, or discard them. Requeued messages go straight to that queue
(default exchange), so other subscribers of ``crm.events`` do not see them twice. The dead-letter
queues are the consumers' and the installation's to declare: here they are only looked at (a
queue not there holds nothing)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange

from crm_shared.messaging import dead_letter_queue

default_exchange = Exchange("", type="direct")


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    routing_key: str
    reason: str
    event_type: str | None
    body_preview: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _describe(message: Any) -> DeadLetter:
    headers = message.headers or {}
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        event_type = json.loads(body).get("event_type")
    except Exception:  # whatever made it a dead letter: not JSON, not an object, nested too deep
        event_type = None
    return DeadLetter(
        message_id=message.properties.get("message_id"),
        routing_key=headers.get("x-crm-original-routing-key", ""),
        # Ours when a consumer set it aside; the broker's (e.g. delivery_limit) otherwise.
        reason=headers.get("x-crm-dead-letter-reason")
        or str(headers.get("x-first-death-reason") or "rejected by the consumer"),
        event_type=event_type,
        body_preview=body[:200].decode("utf-8", "replace"),
    )


def _waiting(conn: Connection, queue_name: str) -> int:
    """How many dead letters the queue holds (0 when it is not there)."""
    from amqp.exceptions import NotFound

    channel = conn.channel()
    try:
        _, waiting, _ = channel.queue_declare(f"{queue_name}.dead", passive=True)
    except NotFound:
        return 0
    channel.close()
    return int(waiting)


def list_dead_letters(amqp_uri: str, queue_name: str, limit: int = 1000) -> list[DeadLetter]:
    """Look without taking: the messages stay in the dead-letter queue."""
    found: list[DeadLetter] = []
    with Connection(amqp_uri) as conn:
        if not _waiting(conn, queue_name):
            return found
        channel = conn.channel()
        queue = dead_letter_queue(queue_name).bind(channel)
        held = []
        while len(found) < limit and (message := queue.get(no_ack=False)) is not None:
            found.append(_describe(message))
            held.append(message)
        for message in held:
            message.requeue()
        channel.close()
    return found


def requeue_dead_letters(amqp_uri: str, queue_name: str, message_ids: set[str] | None = None) -> int:
    """Move dead letters (all, or those with the given message ids) back to their queue."""
    return _take(amqp_uri, queue_name, message_ids, requeue=True)


def discard_dead_letters(amqp_uri: str, queue_name: str, message_ids: set[str]) -> int:
    """Drop the dead letters with the given message ids for good (an operator decided they are of
    no use: a test message, an event of a customer erased since)."""
    return _take(amqp_uri, queue_name, message_ids, requeue=False)


def _take(amqp_uri: str, queue_name: str, message_ids: set[str] | None, *, requeue: bool) -> int:
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        # At most what is there now: a message that is still bad comes straight back, and must
        # not be moved round again and again.
        waiting = _waiting(conn, queue_name)
        if not waiting:
            return 0
        channel = conn.channel()
        queue = dead_letter_queue(queue_name).bind(channel)
        producer = conn.Producer(channel=conn.channel())
        skipped = []
        for _ in range(waiting):
            if (message := queue.get(no_ack=False)) is None:
                break
            if message_ids is not None and message.properties.get("message_id") not in message_ids:
                skipped.append(message)
                continue
            if requeue:
                headers = {
                    k: v
                    for k, v in (message.headers or {}).items()
                    if not k.startswith("x-crm-") and k != "x-death"
                }
                producer.publish(
                    message.body,
                    exchange=default_exchange,
                    routing_key=queue_name,
                    headers=headers,
                    delivery_mode=2,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    message_id=message.properties.get("message_id"),
                )
            message.ack()
            moved += 1
        for message in skipped:
            message.requeue()
        channel.close()
    return moved
