"""Identity on real event stores (SQLite and PostgreSQL): a temporary password changed before the
first sign-in, the lockout (and an answer that never tells whether an account exists), refresh
tokens rotated and a copied one ending its session, disabling revoking tokens, service accounts
signing in with client credentials, and who may manage accounts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import PermissionDenied, Unauthenticated, ValidationFailed
from crm_shared.tokens import (
    ACCESS_TOKEN_SECONDS,
    KeyRing,
    PublicKeys,
    Revocations,
    TokenVerifier,
)
from services.identity.application import IdentityApplication, PasswordChangeRequired
from services.identity.domain.account import LOCKED_FOR
from services.identity.domain.operator_action import OperatorAction
from services.identity.domain.session import RefusedSignIn
from services.identity.passwords import Passwords

ADMIN = Caller("admin-1", Role.ADMIN)
# Fast parameters for the tests' own hashing (the service uses argon2's defaults).
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Wall:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def ring(tmp_path: Path, wall: Wall) -> KeyRing:
    return KeyRing.ensure(tmp_path / "keys", clock=wall)


@pytest.fixture
def verifier(ring: KeyRing) -> TokenVerifier:
    return TokenVerifier(PublicKeys(ring.directory.parent / "jwks.json"))


@pytest.fixture
def identity(ring: KeyRing, wall: Wall, store_env: dict[str, str]) -> Iterator[IdentityApplication]:
    app = IdentityApplication(
        env=store_env, keys=ring, audit_key=lambda: b"k" * 32, passwords=lambda: Passwords(FAST), wall=wall
    )
    app.create_own_tables()
    yield app
    app.close()


def meta(caller: Caller = ADMIN) -> CommandMeta:
    return CommandMeta.new(caller)


def anonymous() -> CommandMeta:
    return CommandMeta.new(Caller("anonymous", Role.ANONYMOUS))


def person(identity: IdentityApplication, user_id: str = "li.wei", **given: Any) -> dict[str, Any]:
    data = {"user_id": user_id, "display_name": "Li Wei", "role": "agent", "agent_id": "A-7"} | given
    return identity.create_account(data, meta())


def test_a_temporary_password_must_be_changed_before_signing_in(identity: IdentityApplication) -> None:
    created = person(identity)
    temporary = created["temporary_password"]
    assert temporary and created["must_change_password"]
    with pytest.raises(PasswordChangeRequired):
        identity.sign_in({"user_id": "li.wei", "password": temporary}, anonymous())
    with pytest.raises(ValidationFailed) as weak:
        identity.change_password(
            {"user_id": "li.wei", "current_password": temporary, "new_password": "short"}, anonymous()
        )
    assert weak.value.fields[0].rule == "length"
    identity.change_password(
        {"user_id": "li.wei", "current_password": temporary, "new_password": "a long pass phrase"},
        anonymous(),
    )
    signed = identity.sign_in({"user_id": "LI.WEI", "password": "a long pass phrase"}, anonymous())
    assert signed["account"]["user_id"] == "li.wei" and signed["expires_in"] == ACCESS_TOKEN_SECONDS


def test_repeated_failures_lock_the_account_and_the_answer_never_tells(
    identity: IdentityApplication, wall: Wall
) -> None:
    person(identity, password="a long pass phrase")
    answers = set()
    for _ in range(20):
        with pytest.raises(Unauthenticated) as wrong:
            identity.sign_in({"user_id": "li.wei", "password": "not the password"}, anonymous())
        answers.add(wrong.value.message)
    for user_id in ("nobody", "li.wei"):  # unknown, and locked with the right password
        with pytest.raises(Unauthenticated) as refused:
            identity.sign_in({"user_id": user_id, "password": "a long pass phrase"}, anonymous())
        answers.add(refused.value.message)
    assert len(answers) == 1 and "nobody" not in next(iter(answers))
    account = identity.account("li.wei")
    assert account is not None and account.failures == 21 and account.locked(wall())
    wall.now += LOCKED_FOR + 1
    assert identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    assert identity.account("li.wei").failures == 0  # type: ignore[union-attr]


def test_disabling_revokes_tokens_and_refresh_rotates_and_detects_a_copy(
    identity: IdentityApplication, verifier: TokenVerifier, wall: Wall
) -> None:
    person(identity, password="a long pass phrase")
    signed = identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    assert verifier.verify(signed["access_token"]).session_id
    refreshed = identity.refresh_session({"refresh_token": signed["refresh_token"]}, anonymous())
    assert refreshed["refresh_token"] != signed["refresh_token"]
    # The old refresh token used again: someone holds a copy; the session ends.
    with pytest.raises(Unauthenticated):
        identity.refresh_session({"refresh_token": signed["refresh_token"]}, anonymous())
    with pytest.raises(Unauthenticated, match="ended"):
        identity.refresh_session({"refresh_token": refreshed["refresh_token"]}, anonymous())
    again = identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    wall.now += 1
    identity.disable_account({"user_id": "li.wei", "reason": "left"}, meta())
    feed = identity.list_revocations({"since": None}, meta(Caller("op", Role.OPERATOR)))
    revocations = Revocations()
    revocations.apply(feed["revocations"], None, wall())
    assert revocations.refuses(verifier.verify(again["access_token"]))
    with pytest.raises(Unauthenticated):
        identity.refresh_session({"refresh_token": again["refresh_token"]}, anonymous())
    with pytest.raises(Unauthenticated):
        identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())


def test_service_accounts_sign_in_with_client_credentials_for_their_scopes(
    identity: IdentityApplication, verifier: TokenVerifier
) -> None:
    made = identity.create_service_account(
        {"user_id": "service:billing", "display_name": "Billing", "scopes": ["sales.record_premium_payment"]},
        meta(),
    )
    token = identity.sign_in_service(
        {"client_id": "service:billing", "client_secret": made["client_secret"]}, anonymous()
    )
    caller = verifier.verify(token["access_token"])
    assert (caller.role, caller.kind, caller.scopes) == (
        Role.SYSTEM,
        "service",
        ("sales.record_premium_payment",),
    )
    with pytest.raises(Unauthenticated):
        identity.sign_in_service({"client_id": "service:billing", "client_secret": "guess"}, anonymous())
    # The refusal is audited, the client id keyed-hashed, and locks nothing (billing signs in on).
    refusals = [
        event
        for notification in identity.recorder.select_notifications(start=1, limit=1000)
        if isinstance(event := identity.mapper.to_domain_event(notification), RefusedSignIn.Recorded)
    ]
    assert [r.reason for r in refusals] == ["client_credentials_refused"]
    assert refusals[0].attempted_user_hash == identity._attempted("service:billing")
    assert "service:billing" not in repr(vars(refusals[0]))
    assert identity.sign_in_service(
        {"client_id": "service:billing", "client_secret": made["client_secret"]}, anonymous()
    )
    with pytest.raises(PermissionDenied):
        identity.list_revocations({"since": None}, CommandMeta.new(caller))


def test_only_admins_manage_accounts(identity: IdentityApplication) -> None:
    with pytest.raises(PermissionDenied):
        identity.create_account(
            {"user_id": "x", "display_name": "X", "role": "admin"}, meta(Caller("op", Role.OPERATOR))
        )
    with pytest.raises(ValidationFailed) as agents_only:
        person(identity, role="manager", agent_id="A-1")
    assert agents_only.value.fields[0].rule == "agents_only"
    person(identity)
    with pytest.raises(ValidationFailed) as twice:
        person(identity, user_id="LI.WEI")
    assert twice.value.fields[0].rule == "already_exists"


def test_the_account_life_role_enable_sign_out_rotate_and_list(
    identity: IdentityApplication, verifier: TokenVerifier, wall: Wall
) -> None:
    """The administrators' commands at work: a new role revokes the tokens of the old one; a
    disabled account enabled again signs in; signing out ends the session; a rotated client secret
    replaces the old one at once; the accounts list in pages."""
    person(identity, password="a long pass phrase")
    signed = identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    wall.now += 1
    changed = identity.change_role(
        {"user_id": "li.wei", "role": "service_desk", "agent_id": None, "reason": "moved to the desk"}, meta()
    )
    assert changed["role"] == "service_desk" and changed["agent_id"] is None
    revocations = Revocations()
    feed = identity.list_revocations({"since": None}, meta(Caller("op", Role.OPERATOR)))
    revocations.apply(feed["revocations"], None, wall())
    assert revocations.refuses(verifier.verify(signed["access_token"]))  # an agent's token no more
    wall.now += 1
    desk = identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    assert verifier.verify(desk["access_token"]).role == Role.SERVICE_DESK

    identity.disable_account({"user_id": "li.wei", "reason": "on leave"}, meta())
    with pytest.raises(Unauthenticated):
        identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    identity.enable_account({"user_id": "li.wei", "reason": "back from leave"}, meta())
    back = identity.sign_in({"user_id": "li.wei", "password": "a long pass phrase"}, anonymous())
    assert identity.sign_out({"refresh_token": back["refresh_token"]}, anonymous()) == {"signed_out": True}
    with pytest.raises(Unauthenticated):
        identity.refresh_session({"refresh_token": back["refresh_token"]}, anonymous())

    made = identity.create_service_account(
        {"user_id": "service:claims", "display_name": "Claims", "scopes": ["sales.record_claim"]}, meta()
    )
    rotated = identity.rotate_client_secret({"user_id": "service:claims"}, meta())
    assert rotated["client_secret"] != made["client_secret"]
    with pytest.raises(Unauthenticated):
        identity.sign_in_service(
            {"client_id": "service:claims", "client_secret": made["client_secret"]}, anonymous()
        )
    assert identity.sign_in_service(
        {"client_id": "service:claims", "client_secret": rotated["client_secret"]}, anonymous()
    )

    for n in range(5):
        person(identity, user_id=f"agent.{n}", agent_id=f"A-{n}")
    listed, cursor = [], None
    while True:
        page = identity.list_accounts({"limit": 3, "cursor": cursor}, meta())
        listed += [a["user_id"] for a in page["accounts"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(listed) == listed and set(listed) == {
        "li.wei",
        "service:claims",
        *(f"agent.{n}" for n in range(5)),
    }
    with pytest.raises(PermissionDenied):
        identity.list_accounts({"limit": 3, "cursor": None}, meta(Caller("op", Role.OPERATOR)))


def test_an_operators_action_on_the_platform_is_recorded_under_their_name(
    identity: IdentityApplication,
) -> None:
    operator = Caller("op-1", Role.OPERATOR)
    asked = {"action": "dead_letter_requeued", "target": "sales.complaints dead-1", "outcome": "1 message(s)"}
    recorded = identity.record_operator_action(asked, meta(operator))
    events = [
        identity.mapper.to_domain_event(n) for n in identity.recorder.select_notifications(start=1, limit=100)
    ]
    (action,) = [e for e in events if isinstance(e, OperatorAction.Recorded)]
    assert str(action.originator_id) == recorded["action_id"]
    assert (action.action, action.target, action.outcome) == (
        "dead_letter_requeued",
        "sales.complaints dead-1",
        "1 message(s)",
    )
    assert action.meta["actor"]["user_id"] == "op-1"
    with pytest.raises(PermissionDenied):
        identity.record_operator_action(asked, meta(Caller("li.wei", Role.AGENT, agent_id="A-7")))
