"""Caller tokens signed with an asymmetric key: EdDSA (Ed25519) JWTs, through PyJWT.

Only the identity service holds the private keys (``KeyRing``, a directory readable by it alone).
Every other process verifies with the public key set (``PublicKeys``: a JWKS file, read again when
it changes), so nothing but identity can mint a token. Keys carry ids (``kid``), so they rotate
without downtime: a new key is published in the key set first and signs only once
``ACTIVATION_SECONDS`` have passed, time for every process to have read the new set; old keys stay
in the set until the tokens they signed have expired.

A verified token is refused all the same if identity revoked it since it was issued
(``Revocations``: an account disabled, its role changed, its password reset, a session signed out),
so a disabled account's tokens stop working within seconds, not at expiry."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crm_shared.auth import Caller, Role
from crm_shared.errors import DependencyUnavailable, Unauthenticated

ALGORITHM = "EdDSA"
ISSUER = "crm-identity"
AUDIENCE = "crm"
# A person's access token lives minutes; the refresh token (identity's session) hours.
ACCESS_TOKEN_SECONDS = 600
# Clocks of two machines may disagree by this much.
LEEWAY_SECONDS = 30
# Longer-lived tokens are refused whoever signed them (identity issues minutes).
MAX_TOKEN_SECONDS = 24 * 3600
# A key signs only once every process has had time to read the key set that holds it.
ACTIVATION_SECONDS = 120
PUBLIC_KEYS_FILE = "jwks.json"
PRIVATE_SUFFIX = ".pem"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created_at: float

    def public_jwk(self) -> dict[str, str]:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = jwt.utils.base64url_encode(raw).decode("ascii")
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def claims_of(caller: Caller, ttl_seconds: int, now: float, session_id: str | None = None) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": caller.user_id,
        "role": caller.role.value,
        "kind": caller.kind,
        "iat": int(now),
        "exp": int(now) + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if caller.agent_id:
        claims["agent_id"] = caller.agent_id
    if caller.scopes:
        claims["scope"] = list(caller.scopes)
    if session_id:
        claims["sid"] = session_id
    return claims


class KeyRing:
    """Identity's private signing keys, one PEM file each (named by key id) in a directory only
    its owner may read, and the public key set beside them (``jwks.json``)."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.clock = clock
        self._lock = threading.Lock()

    @classmethod
    def ensure(cls, directory: Path, clock: Callable[[], float] = time.time) -> KeyRing:
        """The ring in ``directory``, with a first key made (active at once) if it holds none."""
        ring = cls(directory, clock)
        if not ring.signing_keys():
            ring.rotate(active_at_once=True)
        return ring

    def signing_keys(self) -> list[SigningKey]:
        found = []
        for path in sorted(self.directory.glob(f"*{PRIVATE_SUFFIX}")) if self.directory.exists() else []:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, Ed25519PrivateKey):
                found.append(SigningKey(path.stem, key, path.stat().st_mtime))
        return sorted(found, key=lambda k: (k.created_at, k.kid))

    def rotate(self, *, active_at_once: bool = False) -> SigningKey:
        """A new key, published in the key set now and signing after ``ACTIVATION_SECONDS``
        (at once only for a ring's very first key)."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            created = self.clock() - (ACTIVATION_SECONDS if active_at_once else 0)
            kid = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(self.clock()))}-{secrets.token_hex(4)}"
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            path = self.directory / f"{kid}{PRIVATE_SUFFIX}"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
            os.utime(path, (created, created))
            self.publish()
            return SigningKey(kid, key, created)

    def retire(self, kid: str) -> None:
        """Drops a key once the tokens it signed have expired (it must not be the active one)."""
        if self.active().kid == kid:
            raise ValueError(f"key {kid} is the one signing now: rotate first")
        (self.directory / f"{kid}{PRIVATE_SUFFIX}").unlink()
        self.publish()

    def active(self) -> SigningKey:
        """The newest key old enough to sign (every process has read the set holding it)."""
        keys = self.signing_keys()
        if not keys:
            raise RuntimeError(f"no signing key in {self.directory}: run the identity bootstrap")
        ready = [k for k in keys if self.clock() - k.created_at >= ACTIVATION_SECONDS]
        return (ready or keys)[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.signing_keys()]}

    def publish(self, path: Path | None = None) -> Path:
        """Writes the public key set (atomically; readable by every process)."""
        target = path or self.directory.parent / PUBLIC_KEYS_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.jwks(), indent=2))
        temporary.chmod(0o644)
        temporary.replace(target)
        return target

    def issue(
        self, caller: Caller, ttl_seconds: int = ACCESS_TOKEN_SECONDS, session_id: str | None = None
    ) -> str:
        key = self.active()
        return jwt.encode(
            claims_of(caller, ttl_seconds, self.clock(), session_id),
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid},
        )


class PublicKeys:
    """The public key set every process verifies with: a JWKS file, read again (at most once a
    second) when it changed or a token names a key it does not hold."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._read_mtime = -1.0
        self._checked_at = -1e9
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._lock:
            if self.clock() - self._checked_at < 1.0:
                return
            self._checked_at = self.clock()
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                return
            if mtime == self._read_mtime:
                return
            document = json.loads(self.path.read_text())
            keys = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("kid"):
                    keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk, algorithm=ALGORITHM)
            self._keys, self._read_mtime = keys, mtime

    def key(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self._keys:
            self._refresh()
        return self._keys.get(kid)


class Revocations:
    """Tokens identity revoked, as this process has heard of them: per account and per session,
    the moment from which tokens issued before it are refused. Kept only as long as a token can
    live, so the list stays small however many accounts there are."""

    def __init__(
        self, keep_seconds: float = ACCESS_TOKEN_SECONDS + LEEWAY_SECONDS, *, require_sync: bool = False
    ) -> None:
        """``require_sync``: refuse every token until the list was heard from identity once."""
        self.keep_seconds = keep_seconds
        self.require_sync = require_sync
        self.synced = False
        # Identity's clock when it last answered (the next question starts a little before it).
        self.position: float | None = None
        self.healthy = True
        self._accounts: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def next_since(self) -> float | None:
        """Where to ask from next: a little before the last answer, so that a revocation stored
        while that answer was read is not missed (applying one twice changes nothing)."""
        return None if self.position is None else self.position - 5.0

    def apply(self, entries: Iterable[Mapping[str, Any]], position: float | None, now: float) -> None:
        """``entries``: ``{"user_id", "session_id" (or None), "at": epoch seconds}``."""
        with self._lock:
            for entry in entries:
                target = self._sessions if entry.get("session_id") else self._accounts
                key = str(entry.get("session_id") or entry["user_id"])
                target[key] = max(target.get(key, 0.0), float(entry["at"]))
            horizon = now - self.keep_seconds
            for table in (self._accounts, self._sessions):
                for key in [k for k, at in table.items() if at < horizon]:
                    del table[key]
            self.position = position
            self.synced = True

    def refuses(self, caller: Caller) -> bool:
        issued = caller.issued_at or 0.0
        revoked = self._accounts.get(caller.user_id)
        if revoked is not None and issued <= revoked:
            return True
        session = self._sessions.get(caller.session_id or "")
        return session is not None and issued <= session


class TokenVerifier:
    """Who is calling: a token signed by one of identity's keys, for this audience, not expired,
    not revoked."""

    def __init__(
        self, keys: PublicKeys, revocations: Revocations | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.keys = keys
        self.revocations = revocations or Revocations()
        self.clock = clock

    def verify(self, token: object) -> Caller:
        if not isinstance(token, str) or not token:
            raise Unauthenticated(
                "no caller token: sign in ('crm login') and send the token in the 'auth_token' header"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("caller token is malformed: not a signed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"caller token is refused: only {ALGORITHM} signatures are accepted")
        kid = header.get("kid")
        key = self.keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("caller token is signed by a key identity does not publish")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("caller token has expired: sign in again (or refresh)") from None
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"caller token is invalid: {e}") from None
        if self.revocations.require_sync and not self.revocations.synced:
            raise DependencyUnavailable(
                "this service has not heard identity's revocations yet (starting, or identity is down): "
                "try again in a moment"
            )
        if float(claims["exp"]) - float(claims["iat"]) > MAX_TOKEN_SECONDS:
            raise Unauthenticated("caller token lives longer than the 24 hours allowed")
        caller = caller_of(claims)
        if self.revocations.refuses(caller):
            raise Unauthenticated("caller token was revoked (account disabled or changed, or signed out)")
        return caller


def caller_of(claims: Mapping[str, Any]) -> Caller:
    try:
        scope = claims.get("scope") or ()
        caller = Caller(
            user_id=str(claims["sub"]),
            role=Role(claims["role"]),
            agent_id=claims.get("agent_id"),
            kind=str(claims.get("kind") or "person"),
            scopes=tuple(str(s) for s in scope),
            session_id=claims.get("sid"),
            issued_at=float(claims["iat"]),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise Unauthenticated(f"caller token is malformed: {e}") from None
    if caller.role == Role.AGENT and not caller.agent_id:
        raise Unauthenticated("an agent's token must name the agent id")
    return caller
