"""Operators' view of dead letters: list them with their reasons, and requeue them to the queue they
came from once the cause is fixed. Requeued messages go straight to that queue (default exchange),
so other subscribers of ``crm.events`` do not see them twice."""

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


def list_dead_letters(amqp_uri: str, queue_name: str, limit: int = 1000) -> list[DeadLetter]:
    """Look without taking: the messages stay in the dead-letter queue."""
    found: list[DeadLetter] = []
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        queue = dead_letter_queue(queue_name).bind(channel)
        queue.declare()
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
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue = dead_letter_queue(queue_name).bind(channel)
        queue.declare()
        producer = conn.Producer(channel=conn.channel())
        skipped = []
        # At most what is there now: a message that is still bad comes straight back, and must
        # not be moved round again and again.
        _, waiting, _ = channel.queue_declare(queue.name, passive=True)
        for _ in range(waiting):
            if (message := queue.get(no_ack=False)) is None:
                break
            if message_ids is not None and message.properties.get("message_id") not in message_ids:
                skipped.append(message)
                continue
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
