from __future__ import annotations

import time

import pytest

from crm_shared.auth import Caller, Role, issue_token, verify_token
from crm_shared.errors import PermissionDenied, Unauthenticated

SECRET = b"s" * 48


def test_a_signed_token_round_trips() -> None:
    caller = Caller("u1", Role.AGENT, "A-1")
    assert verify_token(issue_token(caller, SECRET), SECRET) == caller


def test_a_forged_token_is_refused() -> None:
    token = issue_token(Caller("u1", Role.AGENT, "A-1"), SECRET)
    forged = issue_token(Caller("u1", Role.ADMIN), b"another secret" * 4)
    with pytest.raises(Unauthenticated, match="signature"):
        verify_token(forged.split(".")[0] + "." + token.split(".")[1], SECRET)


@pytest.mark.parametrize("token", [None, "", "garbage", 42])
def test_a_missing_or_garbled_token_is_refused(token: object) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(token, SECRET)


def test_an_expired_token_is_refused() -> None:
    token = issue_token(Caller("u1", Role.OPERATOR), SECRET, ttl_seconds=10)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(token, SECRET, now=time.time() + 11)


def test_agents_reach_only_their_own_customers() -> None:
    agent = Caller("u1", Role.AGENT, "A-1")
    agent.require_customer_access("A-1", "customer c")
    with pytest.raises(PermissionDenied):
        agent.require_customer_access("A-2", "customer c")
    Caller("op", Role.OPERATOR).require_customer_access("A-2", "customer c")
    with pytest.raises(PermissionDenied):
        Caller("sd", Role.SERVICE_DESK).require_customer_access("A-2", "customer c")
    Caller("sd", Role.SERVICE_DESK).require_customer_access("A-2", "customer c", also=(Role.SERVICE_DESK,))
