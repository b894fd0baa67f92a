"""Property-based fuzzing of every RPC through the running services: generated payloads never cause
an unhandled exception or a dead worker; every rejection is a structured error; a rejected command
appends nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_cli.client import CrmClient
from crm_cli.system import System
from tests.e2e.conftest import CLOSE, COMPLAINT, SALE, Stores
from tests.support import customer_payload

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)

REFUSALS = {
    "validation_failed",
    "not_found",
    "permission_denied",
    "duplicate_customer",
    "invalid_state",
    "concurrency_conflict",
}


def valid_payloads(known: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("customer", "register_customer"): customer_payload(),
        ("customer", "get_customer"): {"customer_id": known["customer_id"]},
        ("sales", "sell_policy"): {"customer_id": known["customer_id"], **SALE},
        ("sales", "get_policy"): {"policy_number": known["policy_number"]},
        ("service_desk", "open_complaint"): {"customer_id": known["customer_id"], **COMPLAINT},
        ("service_desk", "close_complaint"): {"ticket_id": known["ticket_id"], **CLOSE},
        ("service_desk", "get_ticket"): {"ticket_id": known["ticket_id"]},
        ("analytics", "get_customer_360"): {"customer_id": known["customer_id"]},
    }


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """A valid payload with one to three fields dropped, replaced by any JSON, or added."""
    result: dict[str, Any] = dict(payload)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "add" or not result:
            result[draw(st.text(max_size=12))] = draw(json_values)
        else:
            key = draw(st.sampled_from(sorted(result)))
            if action == "drop":
                del result[key]
            else:
                result[key] = draw(json_values)
    return result


RPCS = [
    ("customer", "register_customer"),
    ("customer", "get_customer"),
    ("sales", "sell_policy"),
    ("sales", "get_policy"),
    ("service_desk", "open_complaint"),
    ("service_desk", "close_complaint"),
    ("service_desk", "get_ticket"),
    ("analytics", "get_customer_360"),
]


def check_reply(reply: Any, stores: Stores, before: dict[str, int]) -> None:
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if reply["ok"]:
        return
    error = reply["error"]
    assert error["code"] in REFUSALS, error  # never internal_error, never unauthenticated
    assert isinstance(error["message"], str) and error["correlation_id"]
    for problem in error.get("fields", []):
        assert {"field", "rule", "message"} <= set(problem), problem
        assert all(isinstance(problem[k], str) and problem[k] for k in ("field", "rule"))
    if error["code"] == "validation_failed":
        assert error["fields"], error
    assert stores.positions() == before, "a rejected command appended events"


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[m for _, m in RPCS])
def test_fuzzed_payloads_get_structured_answers(
    operator_rpc: CrmClient, stores: Stores, known: dict[str, str], service: str, method: str
) -> None:
    base = valid_payloads(known)[(service, method)]

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=json_values | mutated(base))
    def fuzz(payload: Any) -> None:
        before = stores.positions()
        check_reply(operator_rpc.call(service, method, payload), stores, before)

    fuzz()


def test_the_services_survived_the_fuzzing(system: System, operator_rpc: CrmClient) -> None:
    assert not system.dead(), f"crashed: {system.dead()}"
    assert operator_rpc.call("customer", "ping", {}) == {"ok": True, "result": "pong"}
    system.wait_ready(timeout=30)  # every service still answers, not just its process alive
