"""Nameko dependency providers shared by the thin service entrypoints. Only entrypoint modules,
this one and ``nameko_hardening`` import nameko."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer

import crm_shared.nameko_hardening  # noqa: F401  (patches nameko's RPC consumer on import)
from contracts.rpc import Ping, ReadHistory
from crm_shared.access import SCOPE_TTL_SECONDS
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta
from crm_shared.errors import (
    CrmError,
    CustomerMerged,
    DependencyUnavailable,
    FieldError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
)
from crm_shared.eventstore import CrmApplication
from crm_shared.heartbeat import HeartbeatSender
from crm_shared.local_tables import yield_between_batches
from crm_shared.process import process_name
from crm_shared.rpc import RequestContext
from crm_shared.tokens import PublicKeys, Revocations, TokenVerifier

log = logging.getLogger("crm.nameko")
# A long catch-up of a store's tables (sqlite3 does not yield) lets the hub run between batches.
yield_between_batches(lambda: eventlet.sleep(0))
LOOKUP_TIMEOUT_SECONDS = 10


# The tokens identity revoked, as this process has heard of them (``CrmService.follow_revocations``):
# until it has heard once, it accepts no token (a token revoked a minute before a restart must not
# pass while the service starts).
REVOCATIONS = Revocations(require_sync=True)
REVOCATION_POLL_SECONDS = float(os.environ.get("CRM_REVOCATION_POLL_SECONDS", "1.0"))


class Request(DependencyProvider):
    """The caller's token and correlation id of the running call, verified with identity's public
    keys and the revocations heard of. The correlation id is written back into the worker's
    context so that calls to other services carry it on."""

    def setup(self) -> None:
        self.settings = Settings.from_env()
        self.verifier = TokenVerifier(PublicKeys(self.settings.public_keys_file), REVOCATIONS)

    def get_dependency(self, worker_ctx: Any) -> RequestContext:
        worker_ctx.data.setdefault("correlation_id", str(uuid.uuid4()))
        return RequestContext.from_headers(worker_ctx.data, self.verifier, self.container.service_name)


class OwnCredentials(DependencyProvider):
    """The service's own account (client credentials, from the settings): a token for the calls
    it makes by itself, not for a caller (following the revocations), renewed before it expires."""

    def setup(self) -> None:
        self.settings = Settings.from_env()
        self.token: str | None = None
        self.expires = 0.0

    def get_dependency(self, worker_ctx: Any) -> OwnToken:
        return OwnToken(self, worker_ctx)


class OwnToken:
    def __init__(self, provider: OwnCredentials, worker_ctx: Any) -> None:
        self.provider = provider
        self.worker_ctx = worker_ctx

    def sign(self, identity_rpc: Any) -> None:
        """Signs the worker's next calls with the service's own token (signing in when needed)."""
        provider, settings = self.provider, self.provider.settings
        if not settings.client_id or not settings.client_secret:
            raise Unauthenticated(
                "this process has no client credentials (CRM_CLIENT_ID, CRM_CLIENT_SECRET_FILE)"
            )
        if provider.token is None or time.time() > provider.expires - 60:
            credentials = {"client_id": settings.client_id, "client_secret": settings.client_secret}
            reply = bounded_call(identity_rpc.sign_in_service, credentials, "identity")
            if not reply.get("ok"):
                raise Unauthenticated(f"identity refused this service's credentials: {reply.get('error')}")
            provider.token = reply["result"]["access_token"]
            provider.expires = time.time() + float(reply["result"]["expires_in"])
        self.worker_ctx.data["auth_token"] = provider.token


class Heartbeat(DependencyProvider):
    """The service process beats on ``crm.heartbeats`` while it runs (``crm_shared.heartbeat``)."""

    sender: HeartbeatSender | None = None

    def start(self) -> None:
        amqp_uri = Settings.from_env().amqp_uri
        self.sender = HeartbeatSender(amqp_uri, process_name(self.container.service_name)).start()

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()

    def kill(self) -> None:
        self.stop()


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


def bounded_call(
    method: Any, payload: dict[str, Any], service: str, timeout: float = LOOKUP_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """One RPC to another service, as the original caller (the token travels in the context),
    given up after ``timeout`` seconds: with that service down, a request would otherwise wait in
    its queue while the caller gives up and retries."""
    try:
        with eventlet.Timeout(timeout):
            reply: dict[str, Any] = method(payload)
    except (Exception, eventlet.Timeout) as e:
        raise DependencyUnavailable(
            f"the {service} service did not answer ({type(e).__name__}); try again shortly"
        ) from e
    return reply


def raise_for(reply: dict[str, Any], what: str) -> None:
    if reply.get("ok"):
        return
    error = reply.get("error", {})
    if error.get("code") == "not_found":
        raise NotFound(f"no {what}")
    if error.get("code") == "permission_denied":
        raise PermissionDenied(error.get("message", "not allowed"))
    if error.get("code") == "customer_merged":
        raise CustomerMerged(
            error.get("message", f"{what} was merged"),
            fields=[FieldError(**f) for f in error.get("fields", [])],
            details={"survivor_id": error["survivor_id"]},
        )
    raise CrmError(error.get("message", f"{what}: lookup failed"))


class RpcCustomerDirectory:
    """Asks the customer service who owns a customer (as the caller: a customer outside the
    caller's scope is not found). One per request: a customer asked about twice in one request (a
    quote needs the owner and the birth date) is fetched once."""

    def __init__(self, customer_rpc: Any) -> None:
        self.customer_rpc = customer_rpc
        self._answers: dict[str, dict[str, Any]] = {}

    def _customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self._answers:
            reply = bounded_call(self.customer_rpc.get_customer, {"customer_id": customer_id}, "customer")
            raise_for(reply, f"customer {customer_id}")
            self._answers[customer_id] = reply["result"]
        return self._answers[customer_id]

    def owning_agent_of(self, customer_id: str) -> str:
        return str(self._customer(customer_id)["owning_agent_id"])

    def birth_date_of(self, customer_id: str) -> date | None:
        born = self._customer(customer_id)["date_of_birth"]
        return date.fromisoformat(born) if born else None


class TtlCache:
    """Answers kept for ``seconds``, per process (green threads share it; nothing here yields)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, key: tuple[str, str]) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: tuple[str, str], value: Any, asked_at: float) -> None:
        """``asked_at``: when the question was sent (``time.monotonic()``), so an answer that took
        long to come is not trusted for longer than ``seconds`` after it was true."""
        if len(self._entries) > 100_000:  # bounded: forget everything rather than grow
            self._entries.clear()
        self._entries[key] = (asked_at + self.seconds, value)


# A registration for an agent whose departure this process has not seen yet is moved by the book
# transfer, which sweeps the book until it is empty and at least twice this long.
_SCOPE = TtlCache(SCOPE_TTL_SECONDS)


class RpcSalesForce:
    """The sales force's answers to the access rule (``crm_shared.access.TeamScope``) and to "may
    this owner own customers now", over ``sales.scope_of``, kept for ``SCOPE_TTL_SECONDS``."""

    def __init__(self, sales_rpc: Any, cache: TtlCache = _SCOPE) -> None:
        self.sales_rpc = sales_rpc
        self.cache = cache

    def _scope_of(self, owner_ids: list[str], manager_user_id: str | None = None) -> dict[str, Any]:
        payload = {"owner_ids": owner_ids, "manager_user_id": manager_user_id}
        asked_at = time.monotonic()
        reply = bounded_call(self.sales_rpc.scope_of, payload, "sales")
        raise_for(reply, "scope")
        result: dict[str, Any] = reply["result"]
        for owner in owner_ids:
            self.cache.put(("team", owner), result["teams"].get(owner), asked_at)
            if result["statuses"].get(owner) == "active":
                self.cache.put(("status", owner), "active", asked_at)
        if manager_user_id:
            self.cache.put(("managed", manager_user_id), frozenset(result["managed_team_ids"]), asked_at)
        return result

    def plan_succession(self, agent_id: str, successor: dict[str, Any]) -> dict[str, Any]:
        payload = {"agent_id": agent_id, "successor": successor}
        reply = bounded_call(self.sales_rpc.plan_succession, payload, "sales")
        if not reply.get("ok"):
            error = reply.get("error", {})
            if error.get("code") == "validation_failed":  # the caller's to fix: pass it on as it is
                raise ValidationFailed(
                    error.get("message", "invalid successor"),
                    fields=[FieldError(f["field"], f["rule"], f["message"]) for f in error.get("fields", [])],
                )
            raise_for(reply, f"succession of {agent_id}")
        result: dict[str, Any] = reply["result"]
        return result

    def team_of(self, owner_id: str) -> str | None:
        hit, team = self.cache.get(("team", owner_id))
        return team if hit else self._scope_of([owner_id])["teams"].get(owner_id)

    def owner_status(self, owner_id: str) -> str | None:
        hit, status = self.cache.get(("status", owner_id))
        return status if hit else self._scope_of([owner_id])["statuses"].get(owner_id)

    def teams_managed_by(self, user_id: str) -> frozenset[str]:
        hit, teams = self.cache.get(("managed", user_id))
        if hit:
            return frozenset(teams)
        return frozenset(self._scope_of([], user_id)["managed_team_ids"])

    def owners_in_team(self, team_id: str) -> list[str]:
        """The team's agents and its pool: every owner whose customers its manager may act on."""
        reply = bounded_call(self.sales_rpc.get_team, {"team_id": team_id}, "sales")
        raise_for(reply, "team")
        team = reply["result"]
        return [team["pool_owner_id"], *(a["agent_id"] for a in team["agents"])]


class CrmService:
    """What every CRM service answers besides its own operations: ``ping``, a signed no-op that
    health checks and load balancers use (it needs a valid caller token like everything else).
    And what every service does: follow identity's revocations each second, so a disabled
    account's tokens are refused within seconds."""

    request: RequestContext = Request()
    own_token: OwnToken = OwnCredentials()
    heartbeat = Heartbeat()
    identity_rpc = RpcProxy("identity")

    @rpc
    def ping(self, payload: Any = None) -> dict:
        return self.request.run("ping", Ping, {} if payload is None else payload, lambda _d, _m: "pong")

    @timer(interval=REVOCATION_POLL_SECONDS, eager=True)
    def follow_revocations(self) -> None:
        try:
            feed = self.revocations_since(REVOCATIONS.next_since())
        except Exception as e:  # identity not up yet, or unreachable: the next tick asks again
            if REVOCATIONS.healthy:
                log.warning("could not follow identity's revocations (%s); trying each second", e)
            REVOCATIONS.healthy = False
            return
        REVOCATIONS.apply(feed["revocations"], float(feed["as_of"]), time.time())
        REVOCATIONS.healthy = True

    def revocations_since(self, since: float | None) -> dict[str, Any]:
        self.own_token.sign(self.identity_rpc)
        # Short: a tick that waits long leaves the list unrefreshed that long.
        reply = bounded_call(self.identity_rpc.list_revocations, {"since": since}, "identity", timeout=2.0)
        raise_for(reply, "revocations")
        return reply["result"]  # type: ignore[no-any-return]


class EventSourcedService(CrmService):
    """A service with an event store of its own (its ``app``): it also answers ``read_history``,
    its public events from the store in order, which read models rebuild from (operators and
    admins only: the history holds every customer's data)."""

    app: CrmApplication

    @rpc
    def read_history(self, payload: Any) -> dict:
        return self.request.run("read_history", ReadHistory, payload, self._history)

    def _history(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        # A service account got here with the scope for it (the rebuild process's).
        if not meta.actor.sees_everything and meta.actor.kind != "service":
            raise PermissionDenied("only operators and admins read the event history")
        return self.app.public_history(data["after"], data["limit"])
