"""Who is calling. Every RPC carries a caller token signed by identity (``crm_shared.tokens``:
EdDSA JWTs, verified with identity's public keys); a call without a valid token is refused."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from crm_shared.errors import PermissionDenied


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


# The people who run the platform: they see every customer and act on the system itself.
OPERATOR_ROLES = (Role.OPERATOR, Role.ADMIN)


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
        return self.role in OPERATOR_ROLES

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise PermissionDenied(f"role '{self.role}' may not do this; allowed roles: {allowed}")


class TokenSigner(Protocol):
    """Whatever signs caller tokens: identity's key ring (``crm_shared.tokens.KeyRing``), which
    only identity holds (and the tests, which run their own identity's keys)."""

    def issue(self, caller: Caller, ttl_seconds: int = ..., session_id: str | None = None) -> str: ...


def issue_token(caller: Caller, signer: TokenSigner, ttl_seconds: int | None = None) -> str:
    return signer.issue(caller) if ttl_seconds is None else signer.issue(caller, ttl_seconds)
