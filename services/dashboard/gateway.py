"""The dashboard's calls to the services, always as the signed-in person (their token travels with
each call, so every service applies its own rules to them): one RPC client per thread of the web
server, since a nameko proxy is not thread-safe."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from crm_shared.rpc_client import CrmClient


class Gateway:
    def __init__(self, amqp_uri: str, timeout: float = 30.0) -> None:
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[CrmClient] = []
        self._lock = threading.Lock()

    def _client(self) -> CrmClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = CrmClient(self.amqp_uri, timeout=self.timeout).__enter__()
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def call(self, service: str, method: str, payload: dict[str, Any], token: str = "") -> dict[str, Any]:
        """The service's answer envelope (``{"ok": ...}``); a broken connection is dropped and the
        call made once more on a new one."""
        for attempt in (1, 2):
            client = self._client()
            client.use_token(token)
            try:
                return client.call(service, method, payload)
            except Exception:
                self._local.client = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                with contextlib.suppress(Exception):
                    client.__exit__(None, None, None)
            self._all.clear()
