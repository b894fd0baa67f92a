"""Nameko dependency providers shared by the thin service entrypoints. Only entrypoint modules and
this one import nameko."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

from crm_shared.config import Settings
from crm_shared.errors import CrmError, DependencyUnavailable, NotFound, PermissionDenied
from crm_shared.rpc import RequestContext

log = logging.getLogger("crm.nameko")
# What acking, requeueing or replying raises when the broker connection has just gone away.
LOST_CONNECTION = (OSError, OperationalError, AmqpConnectionError, RecoverableConnectionError)
LOOKUP_TIMEOUT_SECONDS = 10


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


# nameko 2.14 ignores only amqp's ConnectionError when acking on a connection that has just died;
# a socket error (connection reset while the broker restarts) escapes, kills the service container
# and leaves the process hanging. Every service imports this module, so the fix applies to all.
QueueConsumer.ack_message = _tolerate_lost_connection(QueueConsumer.ack_message)  # type: ignore[method-assign]
QueueConsumer.requeue_message = _tolerate_lost_connection(QueueConsumer.requeue_message)  # type: ignore[method-assign]

_send_reply_and_ack = RpcConsumer.handle_result


@functools.wraps(_send_reply_and_ack)
def _reply_or_leave_for_redelivery(self: Any, message: Any, result: Any, exc_info: Any) -> Any:
    try:
        return _send_reply_and_ack(self, message, result, exc_info)
    except LOST_CONNECTION as e:
        # The reply cannot reach the caller while the broker is away. The request stays
        # unacknowledged, so the broker delivers it again; commands carry an idempotency key
        # (command_id), so running it again answers without a second effect.
        log.warning("could not reply on a lost broker connection (%s); the request is redelivered", e)
        self.requeue_message(message)  # in case only the reply connection died
        return result, exc_info


RpcConsumer.handle_result = _reply_or_leave_for_redelivery  # type: ignore[method-assign]


class Request(DependencyProvider):
    """The caller's token and correlation id of the running call. The correlation id is written
    back into the worker's context so that calls to other services carry it on."""

    def setup(self) -> None:
        self.settings = Settings.from_env()

    def get_dependency(self, worker_ctx: Any) -> RequestContext:
        worker_ctx.data.setdefault("correlation_id", str(uuid.uuid4()))
        return RequestContext.from_headers(worker_ctx.data, self.settings.auth_secret)


class Application(DependencyProvider):
    """One event-sourced application per service process, built from the environment."""

    def __init__(self, factory: Callable[[Settings], Any]) -> None:
        self.factory = factory

    def setup(self) -> None:
        self.app = self.factory(Settings.from_env())

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.app


class RpcCustomerDirectory:
    """Asks the customer service, as the original caller (the token travels in the context), who
    owns a customer."""

    def __init__(self, customer_rpc: Any) -> None:
        self.customer_rpc = customer_rpc

    def owning_agent_of(self, customer_id: str) -> str:
        try:
            # Bounded: with the customer service down, a request would otherwise wait in its queue
            # while the caller gives up and retries.
            with eventlet.Timeout(LOOKUP_TIMEOUT_SECONDS):
                reply = self.customer_rpc.get_customer({"customer_id": customer_id})
        except (Exception, eventlet.Timeout) as e:
            raise DependencyUnavailable(
                f"the customer service did not answer ({type(e).__name__}); try again shortly"
            ) from e
        if reply.get("ok"):
            return str(reply["result"]["owning_agent_id"])
        error = reply.get("error", {})
        if error.get("code") == "not_found":
            raise NotFound(f"no customer {customer_id}")
        if error.get("code") == "permission_denied":
            raise PermissionDenied(error.get("message", "not allowed"))
        raise CrmError(error.get("message", "customer lookup failed"))
