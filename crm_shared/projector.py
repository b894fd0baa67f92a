"""Runs a projector: consumes one durable queue on ``crm.events`` with manual acks, one message at
a time in queue order. A message is acknowledged only after its effect is stored. A message that is
not a valid contract message, or whose handling keeps failing, goes to the queue's dead-letter queue
with the reason in its headers; the messages after it keep flowing. A failure of the read-model
store itself (unreachable) is not the message's fault: the message is retried until the store is
back, so nothing is skipped."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from kombu import Connection, Consumer, Message, Producer
from marshmallow import ValidationError

from contracts.events import parse_message
from crm_shared.messaging import (
    broker_connection,
    consumer_queue,
    dead_letter_exchange,
    dead_letter_queue,
    declare_consumer,
)

log = logging.getLogger("crm.projector")

Handler = Callable[[dict[str, Any]], Any]


class ProjectorRunner:
    def __init__(
        self,
        amqp_uri: str,
        queue_name: str,
        handle: Handler,
        *,
        is_transient: Callable[[BaseException], bool] = lambda _e: False,
        max_attempts: int = 3,
        prefetch: int = 50,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.queue = consumer_queue(queue_name)
        self.dead_letters = dead_letter_queue(queue_name)
        self.handle = handle
        self.is_transient = is_transient
        self.max_attempts = max_attempts
        self.prefetch = prefetch
        self.stop_event = threading.Event()
        self.processed = 0

    def declare(self, connection: Connection) -> None:
        declare_consumer(connection.default_channel, self.queue.name)

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                # Dead letters go out on a connection of their own, with confirms, so a dead
                # letter is stored before the message it replaces is acknowledged. (Waiting for a
                # confirm on the consuming connection would dispatch further deliveries
                # re-entrantly from inside the callback.)
                with (
                    broker_connection(self.amqp_uri) as connection,
                    broker_connection(
                        self.amqp_uri, confirm_publish=True, heartbeat=0
                    ) as dead_letter_connection,
                ):
                    connection.ensure_connection(max_retries=1)
                    self.declare(connection)
                    channel = connection.channel()
                    channel.basic_qos(0, self.prefetch, False)
                    dead_letter_producer = Producer(dead_letter_connection.default_channel)
                    with Consumer(
                        channel,
                        queues=[self.queue],
                        # on_message hands over the raw message: kombu decodes nothing (a body
                        # that lies about its content type cannot wedge the consumer, and
                        # nothing is ever unpickled).
                        on_message=partial(self._on_message, dead_letter_producer),
                        no_ack=False,
                    ):
                        log.info("projector consuming %s", self.queue.name)
                        backoff = 0.5
                        while not self.stop_event.is_set():
                            try:
                                connection.drain_events(timeout=1)
                            except TimeoutError:  # socket.timeout: nothing arrived
                                connection.heartbeat_check()
            except Exception:
                if self.stop_event.is_set():
                    return
                log.exception("projector on %s lost the broker; reconnecting", self.queue.name)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        self.stop_event.set()

    def _on_message(self, producer: Producer, message: Message) -> None:
        try:
            envelope = parse_message(json.loads(message.body))
        except ValidationError as e:
            self._dead_letter(message, producer, f"invalid message: {e}")
            return
        except Exception as e:  # not JSON, not UTF-8, nested too deep to decode: never a retry
            self._dead_letter(message, producer, f"invalid message: {type(e).__name__}: {str(e)[:200]}")
            return
        attempts = 0
        while True:
            try:
                self.handle(envelope)
                break
            except Exception as e:
                if self.is_transient(e):
                    if self.stop_event.is_set():
                        return  # unacknowledged: the broker delivers it again after the restart
                    log.warning("read model store unavailable (%s); retrying", e)
                    self.stop_event.wait(1.0)
                    continue
                attempts += 1
                if attempts >= self.max_attempts:
                    log.exception(
                        "event %s failed %d times; dead-lettering it (correlation_id=%s)",
                        envelope.get("event_id"),
                        attempts,
                        envelope.get("correlation_id"),
                    )
                    self._dead_letter(message, producer, f"{type(e).__name__}: {e}")
                    return
        message.ack()
        self.processed += 1

    def _dead_letter(self, message: Message, producer: Producer, reason: str) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-crm-dead-letter-reason": reason[:1000],
                "x-crm-original-routing-key": message.delivery_info.get("routing_key", ""),
                "x-crm-queue": self.queue.name,
            }
        )
        producer.publish(
            message.body,
            exchange=dead_letter_exchange,
            routing_key=self.queue.name,
            headers=headers,
            delivery_mode=2,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            message_id=message.properties.get("message_id"),
        )
        log.warning("dead-lettered a message from %s: %s", self.queue.name, reason)
        message.ack()
