"""Who is calling. Every RPC carries a signed caller token (HMAC-SHA256 over its claims with a secret
shared by the services); a call without a valid token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from enum import StrEnum

from crm_shared.errors import PermissionDenied, Unauthenticated

DEFAULT_TOKEN_TTL_SECONDS = 8 * 3600
MAX_TOKEN_TTL_SECONDS = 24 * 3600


class Role(StrEnum):
    AGENT = "agent"
    MANAGER = "manager"
    SERVICE_DESK = "service_desk"
    OPERATOR = "operator"
    ADMIN = "admin"
    # Internal systems (the core policy and claims systems, process managers): they report facts
    # (payments, lapses, claims) and create follow-up work, and read no one's personal data.
    SYSTEM = "system"
    # Whoever calls the few operations that need no token (signing in): allowed nothing else.
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    user_id: str
    role: Role
    agent_id: str | None = None
    # A person signed in, or a service account (a process, an internal system) by its client
    # credentials; a service account may call only the operations in its ``scopes``.
    kind: str = "person"
    scopes: tuple[str, ...] = ()
    # The sign-in session a person's token belongs to, and when the token was issued (revocations
    # refuse tokens issued before them).
    session_id: str | None = None
    issued_at: float | None = None

    def as_actor(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "role": self.role.value, "agent_id": self.agent_id}

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.OPERATOR, Role.ADMIN)

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise PermissionDenied(f"role '{self.role}' may not do this; allowed roles: {allowed}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())


def issue_token(caller: Caller, secret: bytes, ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS) -> str:
    claims = asdict(caller) | {"role": caller.role.value, "exp": int(time.time()) + ttl_seconds}
    body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{_signature(secret, body)}"


def verify_token(token: object, secret: bytes, now: float | None = None) -> Caller:
    if not isinstance(token, str) or not token:
        raise Unauthenticated("no caller token: send a signed token in the 'auth_token' context header")
    body, _, signature = token.partition(".")
    if not body.isascii() or not signature.isascii():
        raise Unauthenticated("caller token is malformed: not ASCII")
    if not signature or not hmac.compare_digest(signature, _signature(secret, body)):
        raise Unauthenticated("caller token signature is invalid")
    try:
        claims = json.loads(_unb64(body))
        caller = Caller(
            user_id=str(claims["user_id"]),
            role=Role(claims["role"]),
            agent_id=claims.get("agent_id"),
        )
        expires = float(claims["exp"])
    except (ValueError, KeyError, TypeError, UnicodeError) as e:
        raise Unauthenticated(f"caller token is malformed: {e}") from None
    if expires - (time.time() if now is None else now) > MAX_TOKEN_TTL_SECONDS:
        raise Unauthenticated("caller token lives longer than the 24 hours allowed")
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("caller token has expired: ask for a new one")
    if caller.role == Role.AGENT and not caller.agent_id:
        raise Unauthenticated("an agent's token must name the agent id")
    return caller
