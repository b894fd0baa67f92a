"""Hardening of nameko 2.14's RPC consumer, so that no request, whatever its properties and body, can
crash a service container or be redelivered forever.

nameko kills the whole container on any exception in a managed thread, and several lie on the
request path: a request without ``reply_to`` (``KeyError`` in ``Responder``), a body its decoder
refuses, headers of unexpected types (``call_id_stack`` is joined as strings), or an acknowledgement
on a connection that has just died. It also answers errors with its own serialised exceptions
(``exc_path``, Python class names). Here every RPC request is taken over at the consumer:

- a request that cannot be answered (no usable ``reply_to`` or ``correlation_id``) is acknowledged
  and dropped with a log line naming why;
- one that can is answered with the structured error envelope of ``crm_shared.rpc``, whatever went
  wrong: undecodable body, unknown operation, wrong arguments, a failure outside the handler;
- only the context headers the CRM uses reach the worker, as strings;
- the RPC queues are quorum queues with a delivery limit: a request that kills its process again and
  again (out of memory, a crash in native code) is dead-lettered to ``rpc-<service>.dead`` by the
  broker after ``RPC_DELIVERY_LIMIT`` deliveries instead of taking every replica down in turn.

Importing this module applies the patches; ``crm_shared.nameko_support`` imports it, and every
service imports that."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, LOGIN_METHOD_CONFIG_KEY
from nameko.exceptions import ContainerBeingKilled, MethodNotFound
from nameko.messaging import HEADER_PREFIX, QueueConsumer
from nameko.rpc import RpcConsumer, get_rpc_exchange

from crm_shared.errors import ValidationFailed
from crm_shared.messaging import dead_letter_queue, rpc_queue_arguments
from crm_shared.rpc import error_envelope, internal_error_envelope

log = logging.getLogger("crm.nameko")

# What acking, requeueing or replying raises when the broker connection has just gone away.
LOST_CONNECTION = (OSError, OperationalError, AmqpConnectionError, RecoverableConnectionError)
# The context headers a CRM call carries; nothing else reaches a worker.
CONTEXT_HEADERS = ("auth_token", "correlation_id", "command_id")
MAX_HEADER_LENGTH = 4096
MAX_ROUTING_KEY_LENGTH = 255


class Unanswerable(Exception):
    """The request gives no way to send an answer back."""


def _tolerate_lost_connection(method: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    @functools.wraps(method)
    def settle(self: Any, message: Any) -> None:
        try:
            method(self, message)
        except LOST_CONNECTION as e:
            # The broker reclaims an unacknowledged message when its connection drops and delivers
            # it again; failing here would only kill the whole container.
            log.warning("could not settle a message on a lost broker connection (%s)", e)

    return settle


# nameko ignores only amqp's ConnectionError when acking on a connection that has just died; a
# socket error (connection reset while the broker restarts) escapes and kills the container.
QueueConsumer.ack_message = _tolerate_lost_connection(QueueConsumer.ack_message)  # type: ignore[method-assign]
QueueConsumer.requeue_message = _tolerate_lost_connection(QueueConsumer.requeue_message)  # type: ignore[method-assign]


# -- what a request says about itself -----------------------------------------------------------


def _short_text(value: object, limit: int = MAX_HEADER_LENGTH) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


def reply_address(message: Any) -> tuple[str, str]:
    """Where and under which correlation id the answer goes; raises ``Unanswerable``."""
    properties = message.properties or {}
    reply_to = _short_text(properties.get("reply_to"), MAX_ROUTING_KEY_LENGTH)
    if reply_to is None:
        raise Unanswerable("it has no usable reply_to property")
    correlation_id = _short_text(properties.get("correlation_id"), MAX_ROUTING_KEY_LENGTH)
    if correlation_id is None:
        raise Unanswerable("it has no usable correlation_id property")
    return reply_to, correlation_id


def context_data(message: Any) -> dict[str, str]:
    """The CRM context headers of a request, as strings; anything else is left out."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    found: dict[str, str] = {}
    for key in CONTEXT_HEADERS:
        value = _short_text(headers.get(f"{HEADER_PREFIX}.{key}"))
        if value is not None:
            found[key] = value
    return found


def _correlation_id(message: Any) -> str:
    return context_data(message).get("correlation_id") or str(uuid.uuid4())


def call_arguments(body: object) -> tuple[list[Any], dict[str, Any]]:
    """nameko's request body is ``{"args": [...], "kwargs": {...}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("args"), list):
        raise ValidationFailed.single(
            "_request", "format", 'the request body must be a JSON object {"args": [...], "kwargs": {}}'
        )
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValidationFailed.single("_request", "format", "the request's kwargs must be an object")
    return body["args"], kwargs


# -- answering -----------------------------------------------------------------------------------


def _publish_reply(consumer: RpcConsumer, message: Any, envelope: dict[str, Any]) -> None:
    """Send ``envelope`` as the result (never as a nameko error) to the request's reply queue, in
    JSON whatever the request's content type was."""
    reply_to, correlation_id = reply_address(message)
    config = consumer.container.config
    # No publisher confirm: waiting for one costs a quarter of a command's time in the service,
    # and buys nothing a caller relies on. The reply queue is not durable, so a confirmed reply
    # dies with the broker all the same; a caller whose reply is lost times out and retries with
    # the same command_id, and gets the first answer again (crm_shared.commands).
    publisher = Publisher(
        config[AMQP_URI_CONFIG_KEY],
        use_confirms=False,
        ssl=config.get(AMQP_SSL_CONFIG_KEY),
        login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
    )
    publisher.publish(
        {"result": envelope, "error": None},
        serializer="json",
        exchange=get_rpc_exchange(config),
        routing_key=reply_to,
        correlation_id=correlation_id,
    )


def _answer_and_ack(consumer: RpcConsumer, message: Any, envelope: dict[str, Any]) -> None:
    try:
        _publish_reply(consumer, message, envelope)
    except Unanswerable as e:
        log.warning("dropped an RPC request on %s: %s", _routing_key(message), e)
    except LOST_CONNECTION as e:
        # The caller cannot hear us while the broker is away. The request stays unacknowledged and
        # is delivered again; commands carry an idempotency key, so running it again is harmless.
        log.warning("could not reply on a lost broker connection (%s); the request is redelivered", e)
        consumer.queue_consumer.requeue_message(message)
        return
    except Exception:
        log.exception("could not reply to an RPC request on %s; dropping it", _routing_key(message))
    consumer.queue_consumer.ack_message(message)


def _routing_key(message: Any) -> str:
    return str((message.delivery_info or {}).get("routing_key", "?"))[:MAX_ROUTING_KEY_LENGTH]


def _envelope_for_failure(exc: BaseException, correlation_id: str, where: str) -> dict[str, Any]:
    if isinstance(exc, ValidationFailed):
        return error_envelope(exc, correlation_id)
    log.error("%s failed unexpectedly (correlation_id=%s)", where, correlation_id, exc_info=exc)
    return internal_error_envelope(correlation_id)


# -- the patched consumer ------------------------------------------------------------------------


def _setup(self: RpcConsumer) -> None:
    _original_setup(self)
    self.queue.queue_arguments = rpc_queue_arguments(self.queue.name)


def _handle_message(self: RpcConsumer, body: Any, message: Any) -> None:
    """Runs in a managed thread: nothing may escape it."""
    try:
        reply_address(message)
    except Unanswerable as e:
        log.warning("dropped an RPC request on %s: %s", _routing_key(message), e)
        self.queue_consumer.ack_message(message)
        return
    data = context_data(message)
    correlation_id = data.setdefault("correlation_id", str(uuid.uuid4()))
    try:
        try:
            provider = self.get_provider_for_method(_routing_key(message))
        except MethodNotFound:
            service, _, operation = _routing_key(message).partition(".")
            raise ValidationFailed.single(
                "_operation", "unknown_operation", f"the {service} service has no operation {operation!r}"
            ) from None
        args, kwargs = call_arguments(body)
        try:
            provider.check_signature(args, kwargs)
        except Exception:
            raise ValidationFailed.single(
                "_payload", "signature", f"call {provider.method_name} with exactly one payload object"
            ) from None
        try:
            self.container.spawn_worker(
                provider,
                args,
                kwargs,
                context_data=data,
                handle_result=partial(provider.handle_result, message),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)
    except Exception as e:
        _answer_and_ack(self, message, _envelope_for_failure(e, correlation_id, _routing_key(message)))


def _handle_result(self: RpcConsumer, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
    """The worker's answer. The service methods return envelopes themselves; an exception raised
    around them (a dependency failing to start, say) becomes an ``internal_error`` envelope."""
    if exc_info is not None:
        result = _envelope_for_failure(exc_info[1], _correlation_id(message), _routing_key(message))
    _answer_and_ack(self, message, result)
    return result, None


def _refuse_undecodable(queue_consumer: QueueConsumer, provider: Any, message: Any, exc: Exception) -> None:
    """kombu could not decode a body (a content type not accepted, broken JSON, nesting too deep)."""
    if isinstance(provider, RpcConsumer):
        refusal = ValidationFailed.single(
            "_request",
            "encoding",
            f"the request body must be JSON (content type application/json, UTF-8): {type(exc).__name__}",
        )
        queue_consumer.container.spawn_managed_thread(
            partial(_answer_and_ack, provider, message, error_envelope(refusal, _correlation_id(message))),
            identifier="refuse_undecodable",
        )
        return
    log.warning("dropped an undecodable message on %s (%s)", _routing_key(message), type(exc).__name__)
    queue_consumer.ack_message(message)


def _get_consumers(self: QueueConsumer, consumer_cls: Any, channel: Any) -> Any:
    """nameko's ``get_consumers`` with a decode-error handler, and the dead-letter queue of every
    RPC queue declared beside it."""
    for provider in self._providers:
        if isinstance(provider, RpcConsumer):
            dead_letter_queue(provider.queue.name).bind(channel).declare()
        consumer = consumer_cls(
            queues=[provider.queue],
            callbacks=[partial(self.handle_message, provider)],
            accept=self.accept,
            on_decode_error=partial(_refuse_undecodable, self, provider),
        )
        consumer.qos(prefetch_count=self.prefetch_count)
        self._consumers[provider] = consumer
    return self._consumers.values()


_original_setup = RpcConsumer.setup
RpcConsumer.setup = _setup  # type: ignore[method-assign]
RpcConsumer.handle_message = _handle_message  # type: ignore[method-assign]
RpcConsumer.handle_result = _handle_result  # type: ignore[method-assign]
QueueConsumer.get_consumers = _get_consumers  # type: ignore[method-assign]
