"""A small RPC client for the CRM services, for processes outside nameko (the ``crm`` CLI, the
tests, background processes): sends the caller's signed token, a correlation id and a command id
in each call's context."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from crm_shared.auth import Caller, TokenSigner, issue_token
from crm_shared.tokens import ACCESS_TOKEN_SECONDS


class CrmClient:
    """Use as a context manager; one client per thread (nameko proxies are not thread-safe)."""

    def __init__(
        self,
        amqp_uri: str,
        token: str = "",
        timeout: float = 30.0,
        credentials: tuple[str, str] | None = None,
        token_source: Callable[[], str] | None = None,
    ) -> None:
        """``token``: the caller's; or ``credentials`` (client id and secret) of a service account,
        with which the client signs in, and signs in again before its token expires; or a
        ``token_source`` asked before each call (a signed-in person's session, renewed by itself)."""
        self.amqp_uri = amqp_uri
        self.token = token
        self.timeout = timeout
        self.credentials = credentials
        self.token_source = token_source
        self._expires = 0.0
        self._proxy: ClusterRpcProxy | None = None
        self._cluster: Any = None

    @classmethod
    def for_service(cls, amqp_uri: str, client_id: str, client_secret: str, **kwargs: Any) -> CrmClient:
        return cls(amqp_uri, credentials=(client_id, client_secret), **kwargs)

    @classmethod
    def for_caller(cls, amqp_uri: str, caller: Caller, signer: TokenSigner, **kwargs: Any) -> CrmClient:
        """A client whose calls carry a token ``signer`` issues for ``caller`` (identity's keys:
        identity's own tools and the tests), issued again before it expires: a client may live
        longer than a token (a test session's)."""
        issued: list[tuple[str, float]] = []

        def fresh_token() -> str:
            if not issued or time.monotonic() - issued[0][1] > ACCESS_TOKEN_SECONDS / 2:
                issued[:] = [(issue_token(caller, signer), time.monotonic())]
            return issued[0][0]

        return cls(amqp_uri, fresh_token(), token_source=fresh_token, **kwargs)

    def __enter__(self) -> CrmClient:
        self._proxy = ClusterRpcProxy(
            {"AMQP_URI": self.amqp_uri, "serializer": "json"},
            context_data={"auth_token": self.token},
            timeout=self.timeout,
        )
        self._cluster = self._proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        self._proxy = None

    def use_token(self, token: str) -> None:
        """Sign the calls from now on with ``token`` (a long-running process renews its own)."""
        self.token = token
        if self._proxy is not None:
            self._proxy._worker_ctx.data["auth_token"] = token

    def call(self, service: str, method: str, payload: Any = None, *, command_id: str | None = None) -> dict:
        """Call ``service.method(payload)`` and return its result envelope. Pass the same
        ``command_id`` to retry a command safely: it takes effect at most once."""
        assert self._cluster is not None, "use CrmClient as a context manager"
        if self.credentials is not None and time.time() > self._expires - 60:
            self._sign_in(*self.credentials)
        if self.token_source is not None:
            self.use_token(self.token_source())
        context = self._proxy._worker_ctx.data  # type: ignore[union-attr]
        context["correlation_id"] = str(uuid.uuid4())
        context["command_id"] = command_id or str(uuid.uuid4())
        return getattr(getattr(self._cluster, service), method)(payload)

    def _sign_in(self, client_id: str, client_secret: str) -> None:
        context = self._proxy._worker_ctx.data  # type: ignore[union-attr]
        context["correlation_id"] = str(uuid.uuid4())
        reply = self._cluster.identity.sign_in_service(
            {"client_id": client_id, "client_secret": client_secret}
        )
        if not reply.get("ok"):
            raise PermissionError(f"identity refused the credentials of {client_id}: {reply.get('error')}")
        self.use_token(reply["result"]["access_token"])
        self._expires = time.time() + float(reply["result"]["expires_in"])
