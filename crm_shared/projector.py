"""Runs a projector: consumes one durable queue on ``crm.events`` with manual acks and applies the
messages in batches: what the broker has prefetched is applied together (one read and one bulk write
in the read model), and each message is acknowledged only after its effect is durably stored. A
message that is not a valid contract message, or whose handling keeps failing (a version gap, say),
goes to the queue's dead-letter queue with the reason in its headers; the messages after it keep
flowing. A failure of the read-model store itself (unreachable) is not the messages' fault: the batch
is retried until the store is back, so nothing is skipped."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
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
    ensure_exchanges,
)

log = logging.getLogger("crm.projector")

# How long a dead letter's publish waits for the broker's confirm. A confirm that never comes (a
# broker blocking publishers, a lost frame) would otherwise wedge the consumer for good, with no
# error; past this, the runner reconnects and the unacknowledged messages come again (the dead
# letter may then be stored twice: a dead letter is at least once).
DEAD_LETTER_CONFIRM_SECONDS = 10.0

# Applies envelopes together; one outcome per envelope, in order: None when its effect is stored
# (or it had none), the exception when it could not be applied. Raises when the store failed as a
# whole.
BatchHandler = Callable[[list[dict[str, Any]]], list[BaseException | None]]


class ProjectorRunner:
    def __init__(
        self,
        amqp_uri: str,
        queue_name: str,
        handle: BatchHandler,
        *,
        binding_key: str | tuple[str, ...] = "#",
        is_transient: Callable[[BaseException], bool] = lambda _e: False,
        max_attempts: int = 3,
        prefetch: int = 200,
        linger_seconds: float = 0.005,
        max_batch_age_seconds: float = 0.05,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.queue = consumer_queue(queue_name, binding_key)
        self.dead_letters = dead_letter_queue(queue_name)
        self.handle = handle
        self.is_transient = is_transient
        self.max_attempts = max_attempts
        self.prefetch = prefetch
        # A batch is applied when the broker has sent nothing for ``linger_seconds``, when it holds
        # the whole prefetch, or when its first message has waited ``max_batch_age_seconds``.
        self.linger_seconds = linger_seconds
        self.max_batch_age_seconds = max_batch_age_seconds
        self.stop_event = threading.Event()
        self.processed = 0

    def declare(self, connection: Connection) -> None:
        ensure_exchanges(connection)
        declare_consumer(connection.default_channel, self.queue.name, self.queue.routing_key)

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
                    batch: list[Message] = []
                    with Consumer(
                        channel,
                        queues=[self.queue],
                        # on_message hands over the raw message: kombu decodes nothing (a body
                        # that lies about its content type cannot wedge the consumer, and
                        # nothing is ever unpickled).
                        on_message=batch.append,
                        no_ack=False,
                    ):
                        log.info("projector consuming %s", self.queue.name)
                        backoff = 0.5
                        first_at = 0.0
                        while not self.stop_event.is_set():
                            try:
                                connection.drain_events(timeout=self.linger_seconds if batch else 1)
                            except TimeoutError:  # socket.timeout: nothing arrived
                                if not batch:
                                    connection.heartbeat_check()
                                    continue
                            else:
                                if not batch:  # a frame that completed no message
                                    continue
                                first_at = first_at or time.monotonic()
                                young = time.monotonic() - first_at < self.max_batch_age_seconds
                                if len(batch) < self.prefetch and young:
                                    continue
                            taken = batch[:]
                            batch.clear()
                            first_at = 0.0
                            self._apply_batch(taken, dead_letter_producer)
            except Exception:
                if self.stop_event.is_set():
                    return
                log.exception("projector on %s lost the broker; reconnecting", self.queue.name)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        self.stop_event.set()

    def _apply_batch(self, messages: list[Message], producer: Producer) -> None:
        valid: list[tuple[Message, dict[str, Any]]] = []
        for message in messages:
            try:
                valid.append((message, parse_message(json.loads(message.body))))
            except ValidationError as e:
                self._dead_letter(message, producer, f"invalid message: {e}")
            except Exception as e:  # not JSON, not UTF-8, nested too deep to decode: never a retry
                self._dead_letter(message, producer, f"invalid message: {type(e).__name__}: {str(e)[:200]}")
        if not valid:
            return
        outcomes = self._handle([envelope for _, envelope in valid])
        if outcomes is None:
            return  # stopping: unacknowledged, the broker delivers them again after the restart
        applied = []
        for (message, envelope), outcome in zip(valid, outcomes, strict=True):
            if outcome is None:
                applied.append(message)
            elif not self._retry_alone(message, envelope, producer, outcome):
                return  # stopping: the applied ones come again and change nothing
        if applied:
            # One ack for the batch: every message of it is now stored, dead-lettered (each acked
            # on its own) or applied, and the later deliveries have higher tags.
            max(applied, key=lambda m: m.delivery_tag).ack(multiple=True)
            self.processed += len(applied)

    def _handle(self, envelopes: list[dict[str, Any]]) -> list[BaseException | None] | None:
        """The handler's outcomes; waits out an unreachable store (None if stopped meanwhile). Any
        other failure of the whole batch becomes every message's outcome, to be retried alone."""
        while True:
            try:
                return self.handle(envelopes)
            except Exception as e:
                if not self.is_transient(e):
                    return [e] * len(envelopes)
                if self.stop_event.is_set():
                    return None
                log.warning("read model store unavailable (%s); retrying", e)
                self.stop_event.wait(1.0)

    def _retry_alone(
        self, message: Message, envelope: dict[str, Any], producer: Producer, failure: BaseException
    ) -> bool:
        """Apply one message alone until it is stored or dead-lettered (True), or the runner stops
        (False, unacknowledged)."""
        attempts = 0  # failures that were the message's own, not the store's
        while True:
            if self.is_transient(failure):
                if self.stop_event.is_set():
                    return False
                self.stop_event.wait(1.0)
            else:
                attempts += 1
                if attempts >= self.max_attempts:
                    log.error(
                        "event %s failed %d times; dead-lettering it (correlation_id=%s)",
                        envelope.get("event_id"),
                        attempts,
                        envelope.get("correlation_id"),
                        exc_info=failure,
                    )
                    self._dead_letter(message, producer, f"{type(failure).__name__}: {failure}")
                    return True
            outcomes = self._handle([envelope])
            if outcomes is None:
                return False
            if (outcome := outcomes[0]) is None:
                message.ack()
                self.processed += 1
                return True
            failure = outcome

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
            confirm_timeout=DEAD_LETTER_CONFIRM_SECONDS,
        )
        log.warning("dead-lettered a message from %s: %s", self.queue.name, reason)
        message.ack()
