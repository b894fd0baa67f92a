"""Identity's rules without a store: the password policy and hashing, the lockout, tokens issued
and verified across a key rotation, and the tokens that must be refused (an unknown key, ``alg:
none``, an HMAC token, altered claims, expired, revoked)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher

from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import Unauthenticated
from crm_shared.tokens import (
    ACCESS_TOKEN_SECONDS,
    KeyRing,
    PublicKeys,
    Revocations,
    TokenVerifier,
)
from services.identity.application import IdentityApplication
from services.identity.domain import Account, password_problems
from services.identity.domain.account import LOCK_AFTER, LOCKED_FOR
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


def meta(caller: Caller = ADMIN) -> CommandMeta:
    return CommandMeta.new(caller)


def anonymous() -> CommandMeta:
    return CommandMeta.new(Caller("anonymous", Role.ANONYMOUS))


def person(identity: IdentityApplication, user_id: str = "li.wei", **given: Any) -> dict[str, Any]:
    data = {"user_id": user_id, "display_name": "Li Wei", "role": "agent", "agent_id": "A-7"} | given
    return identity.create_account(data, meta())


def test_a_password_is_long_uncommon_and_not_the_user_id() -> None:
    assert password_problems("correct horse battery", "li.wei") == []
    rules = {p.rule for p in password_problems("short", "li.wei")}
    assert rules == {"length"}
    assert {p.rule for p in password_problems("a" * 14, "li.wei")} == {"repeated"}
    assert {p.rule for p in password_problems("Password1234", "li.wei")} == {"common"}
    assert {p.rule for p in password_problems("my-LI.WEI-secret", "li.wei")} == {"contains_user_id"}
    assert {p.rule for p in password_problems("x" * 300, "li.wei")} == {"length", "repeated"}


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse battery!")
    assert not passwords.verify(None, "anything at all")  # no account: the decoy, never a match
    assert not passwords.verify("not a hash", "anything at all")


def test_the_lock_starts_at_the_fifth_failure(wall: Wall) -> None:
    account = Account.create_person(
        user_id="x.y", display_name="X", role=Role.OPERATOR, agent_id=None, password_hash="h",
        must_change_password=False, meta=meta(),
    )  # fmt: skip
    for n in range(1, LOCK_AFTER + 1):
        assert not account.locked(wall())
        account.record_failure(wall(), meta())
        assert account.failures == n
    assert account.locked(wall()) and account.locked_until == pytest.approx(wall() + LOCKED_FOR)


def test_tokens_verify_across_a_key_rotation_and_retired_keys_stop(tmp_path: Path, wall: Wall) -> None:
    now = wall.now
    wall.now = now - 1_000
    ring = KeyRing.ensure(tmp_path / "keys", clock=wall)
    verifier = TokenVerifier(PublicKeys(tmp_path / "jwks.json"))
    caller = Caller("li.wei", Role.AGENT, "A-7")
    wall.now = now - 200
    before = ring.issue(caller)
    new = ring.rotate()
    # Published at once, signing only after every process has had time to read it.
    assert ring.active().kid != new.kid and new.kid in {k["kid"] for k in ring.jwks()["keys"]}
    verifier.keys._checked_at = -1e9  # the file changed: read it now (the verifier rereads each second)
    assert verifier.verify(before).user_id == "li.wei"
    wall.now = now
    after = ring.issue(caller)
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    assert verifier.verify(after).agent_id == "A-7"
    ring.retire(jwt.get_unverified_header(before)["kid"])
    fresh = TokenVerifier(PublicKeys(tmp_path / "jwks.json"))
    assert fresh.verify(after).user_id == "li.wei"
    with pytest.raises(Unauthenticated, match="key identity does not publish"):
        fresh.verify(before)
    with pytest.raises(ValueError, match="signing now"):
        ring.retire(new.kid)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_tokens_are_refused(ring: KeyRing, verifier: TokenVerifier, tmp_path: Path) -> None:
    good = ring.issue(Caller("li.wei", Role.AGENT, "A-7"))
    header, claims, signature = good.split(".")
    # alg: none, with and without the signature.
    payload = json.loads(base64.urlsafe_b64decode(claims + "=="))
    none = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': jwt.get_unverified_header(good)['kid']})}.{claims}."
    with pytest.raises(Unauthenticated, match="only EdDSA"):
        verifier.verify(none)
    # Altered claims: an agent made admin, signature kept.
    altered = f"{header}.{_b64(payload | {'role': 'admin'})}.{signature}"
    with pytest.raises(Unauthenticated, match="invalid"):
        verifier.verify(altered)
    # An HMAC token made with a secret (the old scheme), and one claiming identity's key id.
    hmac_token = jwt.encode(payload, "a-secret-anyone-could-hold-32-bytes!", algorithm="HS256")
    with pytest.raises(Unauthenticated, match="only EdDSA"):
        verifier.verify(hmac_token)
    # Signed by a key identity never published.
    stranger = KeyRing.ensure(tmp_path / "stranger")
    with pytest.raises(Unauthenticated, match="does not publish"):
        verifier.verify(stranger.issue(Caller("li.wei", Role.ADMIN)))
    for junk in ("", "abc", "a.b.c", 42, None):
        with pytest.raises(Unauthenticated):
            verifier.verify(junk)


def test_expired_and_revoked_tokens_are_refused(ring: KeyRing, wall: Wall) -> None:
    revocations = Revocations()
    verifier = TokenVerifier(PublicKeys(ring.directory.parent / "jwks.json"), revocations)
    wall.now -= ACCESS_TOKEN_SECONDS + 120  # issued long ago: expired by now
    old = ring.issue(Caller("li.wei", Role.AGENT, "A-7"))
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(old)
    wall.now = time.time() - 5
    token = ring.issue(Caller("li.wei", Role.AGENT, "A-7"), session_id="s-1")
    other = ring.issue(Caller("zhang.min", Role.AGENT, "A-8"), session_id="s-2")
    revocations.apply([{"user_id": "li.wei", "session_id": None, "at": time.time()}], None, time.time())
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(token)
    assert verifier.verify(other).user_id == "zhang.min"
    revocations.apply([{"user_id": "zhang.min", "session_id": "s-2", "at": time.time()}], None, time.time())
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(other)
    wall.now = time.time() + 1  # a new sign-in after the revocation is accepted
    assert verifier.verify(ring.issue(Caller("li.wei", Role.AGENT, "A-7"))).user_id == "li.wei"


def test_refused_client_sign_ins_are_recorded_once_per_client_a_minute_and_boundedly_in_all() -> None:
    from services.identity.throttle import RefusalThrottle

    throttle = RefusalThrottle(window=60, per_window=3)
    assert throttle.admits("billing", 0.0) and not throttle.admits("billing", 1.0)
    assert throttle.admits("claims", 2.0) and throttle.admits("policy", 3.0)
    assert not throttle.admits("a fourth id", 4.0)  # the minute's bound reached
    assert throttle.admits("billing", 60.0) and throttle.admits("a fourth id", 61.0)
