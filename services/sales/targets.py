"""Campaign targets as analytics answers them (``analytics.list_segment_targets``): the sales
side of that RPC, for whichever caller (a nameko proxy in the service, a standalone client in the
campaign launcher)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_shared.errors import CrmError, DependencyUnavailable


class RpcSegmentTargets:
    """A ``TargetSource`` over ``list_segment_targets``; ``call`` sends one request and answers
    the reply envelope."""

    def __init__(self, call: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.call = call

    def page(
        self, scheme: str, segment: str, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        result = self._ask(
            {
                "scheme": scheme,
                "segment": segment,
                "owning_agent_id": owner,
                "after_customer_id": after,
                "limit": limit,
            }
        )
        return list(result["targets"]), result["last_customer_id"] if result["more"] else None

    def size_of(self, scheme: str, segment: str) -> int | None:
        size = self._ask({"scheme": scheme, "segment": segment, "limit": 1})["segment_size"]
        return None if size is None else int(size)

    def _ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = self.call(payload)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            if error.get("code") in ("dependency_unavailable", "internal_error"):
                raise DependencyUnavailable(f"analytics could not list the target: {error.get('message')}")
            raise CrmError(f"analytics refused to list the target: {error.get('message')}")
        result: dict[str, Any] = reply["result"]
        return result
