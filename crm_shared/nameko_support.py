"""Nameko dependency providers shared by the thin service entrypoints. Only entrypoint modules,
this one and ``nameko_hardening`` import nameko."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc

import crm_shared.nameko_hardening  # noqa: F401  (patches nameko's RPC consumer on import)
from contracts.rpc import Ping
from crm_shared.config import Settings
from crm_shared.errors import CrmError, DependencyUnavailable, NotFound, PermissionDenied
from crm_shared.rpc import RequestContext

log = logging.getLogger("crm.nameko")
LOOKUP_TIMEOUT_SECONDS = 10


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


class CrmService:
    """What every CRM service answers besides its own operations: ``ping``, a signed no-op that
    health checks and load balancers use (it needs a valid caller token like everything else)."""

    request: RequestContext = Request()

    @rpc
    def ping(self, payload: Any = None) -> dict:
        return self.request.run("ping", Ping, {} if payload is None else payload, lambda _d, _m: "pong")
