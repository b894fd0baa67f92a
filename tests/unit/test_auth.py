from __future__ import annotations

import time

import pytest

from crm_shared.access import may_act_on
from crm_shared.auth import Caller, Role, issue_token, verify_token
from crm_shared.errors import Unauthenticated

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
    assert may_act_on(agent, "A-1", None)
    assert not may_act_on(agent, "A-2", None)
    assert may_act_on(Caller("op", Role.OPERATOR), "A-2", None)
    assert not may_act_on(Caller("sd", Role.SERVICE_DESK), "A-2", None)
    assert may_act_on(Caller("sd", Role.SERVICE_DESK), "A-2", None, also=(Role.SERVICE_DESK,))
    assert not may_act_on(Caller("m", Role.MANAGER), "A-2", None)  # no sales force: no team scope
