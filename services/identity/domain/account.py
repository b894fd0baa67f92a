"""Accounts: the people who use the CRM (an agent, a manager, the service desk, operators, admins)
and the service accounts of processes and internal systems, each with its role, its credentials
and its state. Pure: no I/O; hashing is done by the application, which hands the hashes in.

- **Passwords** (``password_problems``): at least 12 characters, not one character repeated, not
  a commonly used password, not containing the user id. Length and a blocklist, as NIST SP
  800-63B recommends, rather than rules of composition.
- **Lockout**: ``LOCK_AFTER`` failed sign-ins in a row lock the account for ``LOCKED_FOR`` (wall
  clock); a sign-in while locked fails whatever the password, and the answer never says so (it
  would tell that the account exists).
- **Revocation**: disabling an account, changing its role or resetting its password revokes every
  token issued before (``tokens_issued_before``, wall-clock seconds): services refuse them within
  seconds."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from crm_shared.auth import Role
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import FieldError, InvalidState, ValidationFailed

ACCOUNT_NAMESPACE = uuid.UUID("c4a1e7d2-93b5-4f68-8a0c-5e2d9b7f1c36")
LOCK_AFTER = 5
LOCKED_FOR = 15 * 60.0
MIN_PASSWORD = 12
MAX_PASSWORD = 256
# The most used passwords of public breach lists, at least 12 characters long; compared folded.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "qwertyuiopasdf",
        "qwertyuiop123",
        "password1234",
        "password12345",
        "passwordpassword",
        "iloveyou1234",
        "administrator",
        "welcome12345",
        "changeme1234",
        "letmein12345",
        "abcdefghijkl",
        "111111111111",
        "000000000000",
        "aaaaaaaaaaaa",
        "1q2w3e4r5t6y",
        "zaq12wsxcde3",
        "football1234",
        "baseball1234",
    }
)


class AccountKind(StrEnum):
    PERSON = "person"
    SERVICE = "service"


def password_problems(password: str, user_id: str) -> list[FieldError]:
    """What is wrong with a new password (empty: nothing)."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(FieldError("new_password", "length", f"at least {MIN_PASSWORD} characters"))
    if len(password) > MAX_PASSWORD:
        problems.append(FieldError("new_password", "length", f"at most {MAX_PASSWORD} characters"))
    if password and len(set(password)) == 1:
        problems.append(FieldError("new_password", "repeated", "not one character repeated"))
    if password.casefold() in COMMON_PASSWORDS:
        problems.append(FieldError("new_password", "common", "a commonly used password: choose another"))
    if user_id and user_id.casefold() in password.casefold():
        problems.append(FieldError("new_password", "contains_user_id", "must not contain the user id"))
    return problems


def require_good_password(password: str, user_id: str) -> None:
    problems = password_problems(password, user_id)
    if problems:
        raise ValidationFailed("the new password is too weak: see 'fields'", fields=problems)


class Account(CrmAggregate):
    class Created(CrmAggregate.Created):
        EVENT_TYPE = "identity.account_created"
        # Credentials never leave identity.
        PRIVATE = frozenset({"password_hash", "secret_hash"})
        user_id: str
        display_name: str
        kind: str
        role: str
        agent_id: str | None
        # A service account's operations ("<service>.<operation>"); empty for people.
        scopes: list[str]
        password_hash: str | None
        secret_hash: str | None
        must_change_password: bool

    class RoleChanged(CrmAggregate.Event):
        EVENT_TYPE = "identity.account_role_changed"
        user_id: str
        role: str
        agent_id: str | None
        reason: str
        tokens_issued_before: float

        def apply(self, account: Account) -> None:
            account.role = self.role
            account.agent_id = self.agent_id

    class Disabled(CrmAggregate.Event):
        EVENT_TYPE = "identity.account_disabled"
        user_id: str
        reason: str
        tokens_issued_before: float

        def apply(self, account: Account) -> None:
            account.disabled = True

    class Enabled(CrmAggregate.Event):
        EVENT_TYPE = "identity.account_enabled"
        user_id: str
        reason: str

        def apply(self, account: Account) -> None:
            account.disabled = False
            account.failures = 0
            account.locked_until = None

    class PasswordReset(CrmAggregate.Event):
        EVENT_TYPE = "identity.password_reset"
        PRIVATE = frozenset({"password_hash"})
        user_id: str
        password_hash: str
        tokens_issued_before: float

        def apply(self, account: Account) -> None:
            account.password_hash = self.password_hash
            account.must_change_password = True
            account.failures = 0
            account.locked_until = None

    class PasswordChanged(CrmAggregate.Event):
        EVENT_TYPE = "identity.password_changed"
        PRIVATE = frozenset({"password_hash"})
        user_id: str
        password_hash: str

        def apply(self, account: Account) -> None:
            account.password_hash = self.password_hash
            account.must_change_password = False
            account.failures = 0
            account.locked_until = None

    class ClientSecretRotated(CrmAggregate.Event):
        EVENT_TYPE = "identity.client_secret_rotated"
        PRIVATE = frozenset({"secret_hash"})
        user_id: str
        secret_hash: str
        tokens_issued_before: float

        def apply(self, account: Account) -> None:
            account.secret_hash = self.secret_hash

    class ScopesChanged(CrmAggregate.Event):
        EVENT_TYPE = "identity.account_scopes_changed"
        user_id: str
        scopes: list[str]
        tokens_issued_before: float

        def apply(self, account: Account) -> None:
            account.scopes = list(self.scopes)

    class SignedIn(CrmAggregate.Event):
        EVENT_TYPE = "identity.signed_in"
        user_id: str
        kind: str
        session_id: str | None

        def apply(self, account: Account) -> None:
            account.failures = 0
            account.locked_until = None
            account.last_signed_in = self.timestamp

    class SignInFailed(CrmAggregate.Event):
        EVENT_TYPE = "identity.sign_in_failed"
        user_id: str
        failures: int
        # Wall-clock seconds until which the account refuses sign-ins (after LOCK_AFTER).
        locked_until: float | None

        def apply(self, account: Account) -> None:
            account.failures = self.failures
            account.locked_until = self.locked_until

    def __init__(
        self,
        user_id: str,
        display_name: str,
        kind: str,
        role: str,
        agent_id: str | None,
        scopes: list[str],
        password_hash: str | None,
        secret_hash: str | None,
        must_change_password: bool,
    ) -> None:
        self.user_id = user_id
        self.display_name = display_name
        self.kind = kind
        self.role = role
        self.agent_id = agent_id
        self.scopes = list(scopes)
        self.password_hash = password_hash
        self.secret_hash = secret_hash
        self.must_change_password = must_change_password
        self.disabled = False
        self.failures = 0
        self.locked_until: float | None = None
        self.last_signed_in: datetime | None = None

    @staticmethod
    def id_for(user_id: str) -> uuid.UUID:
        """One account per user id, whatever its case."""
        return uuid.uuid5(ACCOUNT_NAMESPACE, user_id.casefold())

    @classmethod
    def create_person(
        cls,
        *,
        user_id: str,
        display_name: str,
        role: Role,
        agent_id: str | None,
        password_hash: str,
        must_change_password: bool,
        meta: CommandMeta,
    ) -> Account:
        if role == Role.SYSTEM:
            raise ValidationFailed.single("role", "service_only", "system is the role of service accounts")
        if (role == Role.AGENT) != bool(agent_id):
            raise ValidationFailed.single(
                "agent_id", "agents_only", "an agent's account names the agent id; no other account does"
            )
        return cls._create(
            cls.Created,
            id=cls.id_for(user_id),
            meta=meta.as_event_meta(),
            user_id=user_id,
            display_name=display_name,
            kind=AccountKind.PERSON.value,
            role=role.value,
            agent_id=agent_id,
            scopes=[],
            password_hash=password_hash,
            secret_hash=None,
            must_change_password=must_change_password,
        )

    @classmethod
    def create_service(
        cls, *, user_id: str, display_name: str, scopes: list[str], secret_hash: str, meta: CommandMeta
    ) -> Account:
        if not user_id.startswith("service:"):
            raise ValidationFailed.single(
                "user_id", "format", "a service account's id starts with 'service:'"
            )
        return cls._create(
            cls.Created,
            id=cls.id_for(user_id),
            meta=meta.as_event_meta(),
            user_id=user_id,
            display_name=display_name,
            kind=AccountKind.SERVICE.value,
            role=Role.SYSTEM.value,
            agent_id=None,
            scopes=sorted(set(scopes)),
            password_hash=None,
            secret_hash=secret_hash,
            must_change_password=False,
        )

    @property
    def is_service(self) -> bool:
        return self.kind == AccountKind.SERVICE

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def _person_only(self, doing: str) -> None:
        if self.is_service:
            raise InvalidState(f"{self.user_id} is a service account: it has no {doing}")

    def change_role(
        self, role: Role, agent_id: str | None, reason: str, now: float, meta: CommandMeta
    ) -> None:
        self._person_only("role to change (it has its scopes)")
        if role == Role.SYSTEM:
            raise ValidationFailed.single("role", "service_only", "system is the role of service accounts")
        if (role == Role.AGENT) != bool(agent_id):
            raise ValidationFailed.single(
                "agent_id", "agents_only", "an agent's account names the agent id; no other account does"
            )
        if (role.value, agent_id) == (self.role, self.agent_id):
            raise InvalidState(f"{self.user_id} is {role.value} already")
        self.trigger_event(
            self.RoleChanged,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            role=role.value,
            agent_id=agent_id,
            reason=reason,
            tokens_issued_before=now,
        )

    def disable(self, reason: str, now: float, meta: CommandMeta) -> bool:
        """False if disabled already."""
        if self.disabled:
            return False
        self.trigger_event(
            self.Disabled,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            reason=reason,
            tokens_issued_before=now,
        )
        return True

    def enable(self, reason: str, meta: CommandMeta) -> bool:
        if not self.disabled:
            return False
        self.trigger_event(self.Enabled, meta=meta.as_event_meta(), user_id=self.user_id, reason=reason)
        return True

    def reset_password(self, password_hash: str, now: float, meta: CommandMeta) -> None:
        """A one-time password the person must change at their next sign-in."""
        self._person_only("password")
        self.trigger_event(
            self.PasswordReset,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            password_hash=password_hash,
            tokens_issued_before=now,
        )

    def change_password(self, password_hash: str, meta: CommandMeta) -> None:
        self._person_only("password")
        self.trigger_event(
            self.PasswordChanged, meta=meta.as_event_meta(), user_id=self.user_id, password_hash=password_hash
        )

    def rotate_secret(self, secret_hash: str, now: float, meta: CommandMeta) -> None:
        if not self.is_service:
            raise InvalidState(f"{self.user_id} is a person's account: it signs in with a password")
        self.trigger_event(
            self.ClientSecretRotated,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            secret_hash=secret_hash,
            tokens_issued_before=now,
        )

    def change_scopes(self, scopes: list[str], now: float, meta: CommandMeta) -> bool:
        """A service account's operations; False if they are these already."""
        if not self.is_service:
            raise InvalidState(f"{self.user_id} is a person's account: it has a role, not scopes")
        wanted = sorted(set(scopes))
        if wanted == self.scopes:
            return False
        self.trigger_event(
            self.ScopesChanged,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            scopes=wanted,
            tokens_issued_before=now,
        )
        return True

    def record_sign_in(self, session_id: str | None, meta: CommandMeta) -> None:
        self.trigger_event(
            self.SignedIn,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            kind=self.kind,
            session_id=session_id,
        )

    def record_failure(self, now: float, meta: CommandMeta) -> None:
        """A wrong password (or one tried while locked): the count goes on; the ``LOCK_AFTER``-th
        in a row locks the account for ``LOCKED_FOR`` from now."""
        failures = self.failures + 1
        locked_until = now + LOCKED_FOR if failures >= LOCK_AFTER else self.locked_until
        self.trigger_event(
            self.SignInFailed,
            meta=meta.as_event_meta(),
            user_id=self.user_id,
            failures=failures,
            locked_until=locked_until,
        )

    def view(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "kind": self.kind,
            "role": self.role,
            "agent_id": self.agent_id,
            "scopes": list(self.scopes),
            "disabled": self.disabled,
            "must_change_password": self.must_change_password,
            "last_signed_in": self.last_signed_in.isoformat() if self.last_signed_in else None,
            "version": self.version,
        }
