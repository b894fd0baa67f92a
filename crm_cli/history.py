"""A write side's public event history over its ``read_history`` RPC, page by page: what
``crm rebuild`` replays (``services.analytics.rebuild.HistorySource``)."""

from __future__ import annotations

from typing import Any

from crm_cli.client import CrmClient


class RpcHistory:
    def __init__(self, client: CrmClient, service: str) -> None:
        self.client = client
        self.service = service

    def public_history(self, after: int, limit: int) -> dict[str, Any]:
        reply = self.client.call(self.service, "read_history", {"after": after, "limit": limit})
        if not reply.get("ok"):
            error = reply.get("error", {})
            raise RuntimeError(
                f"the {self.service} service refused to read its history: {error.get('message', reply)}"
            )
        result: dict[str, Any] = reply["result"]
        return result

    def max_position(self) -> int:
        return int(self.public_history(0, 1)["max_position"])
