"""The identity context: accounts, sign-in, the tokens every service trusts, and what revokes them.

- Administrators open, change, disable and enable accounts and reset passwords; an agent's
  departure from the sales force disables the agent's accounts by itself (``disable_departed``).
- People sign in with a password (``sign_in``): a short-lived access token signed with identity's
  private key and a refresh token (``refresh_session``, rotated on each use); service accounts sign
  in with client credentials (``sign_in_service``) and get tokens limited to their scopes.
- Every sign-in, failure and refused sign-in is an event, so the audit shows it. A refusal never
  tells whether the user id exists: unknown, wrong, locked and disabled answer alike, after the same
  work.
- Tokens are timed by the wall clock (not the business clock a test may move): they are checked by
  other machines."""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

from crm_shared.auth import OPERATOR_ROLES, Caller, Role
from crm_shared.clock import Clock, utc_now
from crm_shared.commands import Decision, command
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta, use_event_clock
from crm_shared.errors import (
    ConcurrencyConflict,
    CrmError,
    FieldError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
)
from crm_shared.eventstore import CrmApplication, event_store_env
from crm_shared.secret_files import ensure_secret
from crm_shared.tokens import ACCESS_TOKEN_SECONDS, KeyRing
from services.identity.domain import (
    Account,
    OperatorAction,
    RefusedSignIn,
    Session,
    require_good_password,
    secret_hash,
)
from services.identity.passwords import Passwords, client_secret, temporary_password
from services.identity.tables import IdentityTables
from services.identity.throttle import RefusalThrottle

ADMINS = (Role.ADMIN,)
# Who may follow the revocations: every service (its scope says so), operators and admins.
FOLLOWS_REVOCATIONS = "identity.list_revocations"
REFUSED = (
    "sign-in refused: the user id or the password is wrong, or the account is locked or disabled. "
    "After repeated failures wait 15 minutes, or ask an administrator to reset your password"
)
AUDIT_KEY_FILE = "audit.key"


class PasswordChangeRequired(CrmError):
    """The password was right, and is a temporary one: change it (``change_password``) first."""

    code = "password_change_required"


def refused() -> Unauthenticated:
    return Unauthenticated(REFUSED)


def unknown_account(user_id: str) -> NotFound:
    return NotFound(
        f"no account {user_id}",
        fields=[FieldError("user_id", "unknown_account", "no such account")],
    )


def _audit_key(directory: Path) -> bytes:
    """The key that hashes unknown user ids in the audit (made once, readable by identity)."""
    return ensure_secret(directory / AUDIT_KEY_FILE).read_bytes()


class IdentityApplication(CrmApplication):
    CONTEXT = "identity"

    def __init__(
        self,
        env: Any = None,
        clock: Clock = utc_now,
        zone: Any = None,
        *,
        keys: KeyRing | None = None,
        audit_key: Callable[[], bytes] | None = None,
        passwords: Callable[[], Passwords] = Passwords,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``audit_key`` and ``passwords`` are made when first needed: the relay of identity's
        store reads events only, and has no business with its secrets."""
        super().__init__(env, clock, zone)
        self._keys = keys
        self._audit_key = audit_key
        self._passwords = passwords
        self.wall = wall
        self.refusals = RefusalThrottle()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        use_event_clock(settings.clock())
        return cls(
            env=event_store_env(cls.CONTEXT, settings),
            clock=settings.clock(),
            zone=ZoneInfo(settings.timezone),
            keys=KeyRing(settings.keys_dir),
            audit_key=lambda: _audit_key(settings.keys_dir.parent),
        )

    @property
    def keys(self) -> KeyRing:
        if self._keys is None:
            raise RuntimeError("this identity application reads events only: it has no signing keys")
        return self._keys

    @functools.cached_property
    def audit_key(self) -> bytes:
        if self._audit_key is None:
            raise RuntimeError("this identity application reads events only: it has no audit key")
        return self._audit_key()

    @functools.cached_property
    def passwords(self) -> Passwords:
        return self._passwords()

    @functools.cached_property
    def tables(self) -> IdentityTables:
        return IdentityTables(self)

    def create_own_tables(self) -> None:
        self.tables.create_tables()

    def account(self, user_id: str) -> Account | None:
        return self.find(Account, Account.id_for(user_id))

    def _known(self, user_id: str) -> Account:
        account = self.account(user_id)
        if account is None:
            raise unknown_account(user_id)
        return account

    # Administration ---------------------------------------------------------------------------

    @command
    def create_account(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """A person's account; without a password given, a temporary one (answered once) that must
        be changed at the first sign-in."""
        meta.actor.require_role(*ADMINS)
        user_id = data["user_id"]
        password = data.get("password")
        if password is not None:
            require_good_password(password, user_id)
        given = password or temporary_password()
        account = Account.create_person(
            user_id=user_id,
            display_name=data["display_name"],
            role=Role(data["role"]),
            agent_id=data.get("agent_id"),
            password_hash=self.passwords.hash(given),
            must_change_password=password is None,
            meta=meta,
        )
        answer = account.view() | {"temporary_password": None if password else given}
        return Decision(answer, (account,), explain_conflict=lambda: self._refuse_existing(user_id))

    def _refuse_existing(self, user_id: str) -> None:
        if self.account(user_id) is not None:
            raise ValidationFailed.single("user_id", "already_exists", f"an account {user_id} exists already")

    @command
    def create_service_account(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """A process's or an internal system's account: its client secret is answered once."""
        meta.actor.require_role(*ADMINS)
        secret = client_secret()
        account = Account.create_service(
            user_id=data["user_id"],
            display_name=data["display_name"],
            scopes=data["scopes"],
            secret_hash=secret_hash(secret),
            meta=meta,
        )
        answer = account.view() | {"client_id": account.user_id, "client_secret": secret}
        return Decision(answer, (account,), explain_conflict=lambda: self._refuse_existing(data["user_id"]))

    @command
    def change_role(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*ADMINS)
        account = self._known(data["user_id"])
        account.change_role(Role(data["role"]), data.get("agent_id"), data["reason"], self.wall(), meta)
        return Decision(account.view(), (account,))

    @command
    def disable_account(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*ADMINS)
        account = self._known(data["user_id"])
        if account.user_id == meta.actor.user_id:
            raise ValidationFailed.single(
                "user_id", "yourself", "an administrator does not disable their own account"
            )
        changed = account.disable(data["reason"], self.wall(), meta)
        return Decision(account.view(), (account,) if changed else ())

    @command
    def enable_account(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*ADMINS)
        account = self._known(data["user_id"])
        changed = account.enable(data["reason"], meta)
        return Decision(account.view(), (account,) if changed else ())

    @command
    def reset_password(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """A one-time password (answered once) the person must change at their next sign-in; their
        tokens are revoked, and the lockout lifted."""
        meta.actor.require_role(*ADMINS)
        account = self._known(data["user_id"])
        given = temporary_password()
        account.reset_password(self.passwords.hash(given), self.wall(), meta)
        return Decision(account.view() | {"temporary_password": given}, (account,))

    @command
    def rotate_client_secret(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*ADMINS)
        account = self._known(data["user_id"])
        secret = client_secret()
        account.rotate_secret(secret_hash(secret), self.wall(), meta)
        return Decision(account.view() | {"client_secret": secret}, (account,))

    @command
    def record_operator_action(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """An operator's action on the platform, recorded under the operator's own name (the
        caller) for the audit: a rebuild started, a dead letter requeued or discarded."""
        meta.actor.require_role(*OPERATOR_ROLES)
        action = OperatorAction.record(data["action"], data["target"], data["outcome"], meta)
        return Decision({"action_id": str(action.id)}, (action,))

    @command
    def disable_departed(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """``data``: a ``sales.agent_departed`` envelope: the agent's accounts are disabled."""
        payload = data["payload"]
        self.tables.catch_up()
        reason = f"agent {payload['agent_id']} departed on {payload['departed_on']}: {payload['reason']}"
        changed: list[Account] = []
        for user_id in self.tables.accounts_of_agent(payload["agent_id"]):
            account = self.account(user_id)
            if account is not None and account.disable(reason, self.wall(), meta):
                changed.append(account)
        return Decision(
            {"agent_id": payload["agent_id"], "disabled": [a.user_id for a in changed]}, tuple(changed)
        )

    # Signing in (no token needed) -------------------------------------------------------------

    def _attempted(self, user_id: str) -> str:
        return hmac.new(self.audit_key, user_id.casefold().encode(), hashlib.sha256).hexdigest()[:32]

    def sign_in(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        user_id, password = data["user_id"], data["password"]
        account = self.account(user_id)
        if account is None or account.is_service:
            self.passwords.verify(None, password)  # the same work as a wrong password
            self.save(RefusedSignIn.record(self._attempted(user_id), meta))
            raise refused()
        right = self.passwords.verify(account.password_hash, password)
        now = self.wall()
        if not right or account.disabled or account.locked(now):
            account.record_failure(now, meta)
            self.save_or_conflict(account)
            raise refused()
        if account.must_change_password:
            raise PasswordChangeRequired(
                "your password is a temporary one: choose your own with change_password ('crm login' asks)",
            )
        return self._signed_in(account, meta, now)

    def _signed_in(self, account: Account, meta: CommandMeta, now: float) -> dict[str, Any]:
        secret = client_secret()
        session = Session.start(account.user_id, secret, now, meta)
        account.record_sign_in(session.session_id, meta)
        self.save_or_conflict(account, session)
        return self._tokens(account, session, secret)

    def _tokens(self, account: Account, session: Session, secret: str) -> dict[str, Any]:
        caller = Caller(account.user_id, Role(account.role), account.agent_id)
        return {
            "access_token": self.keys.issue(caller, ACCESS_TOKEN_SECONDS, session.session_id),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": f"{session.session_id}.{secret}",
            "refresh_expires_at": session.expires_at,
            "account": account.view(),
        }

    def change_password(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """With the password now (a temporary one too): a new one of the caller's own."""
        user_id = data["user_id"]
        account = self.account(user_id)
        if account is None or account.is_service:
            self.passwords.verify(None, data["current_password"])
            self.save(RefusedSignIn.record(self._attempted(user_id), meta))
            raise refused()
        now = self.wall()
        if not self.passwords.verify(account.password_hash, data["current_password"]) or (
            account.disabled or account.locked(now)
        ):
            account.record_failure(now, meta)
            self.save_or_conflict(account)
            raise refused()
        if data["new_password"] == data["current_password"]:
            raise ValidationFailed.single(
                "new_password", "unchanged", "choose a password other than the one now"
            )
        require_good_password(data["new_password"], account.user_id)
        account.change_password(self.passwords.hash(data["new_password"]), meta)
        self.save_or_conflict(account)
        return {"user_id": account.user_id, "changed": True}

    def _session_of(self, refresh_token: str) -> tuple[Session, str]:
        session_id, _, secret = refresh_token.partition(".")
        session = self.find(Session, Session.id_for(session_id)) if secret else None
        if session is None:
            raise Unauthenticated("the refresh token is unknown or has ended: sign in again")
        return session, secret

    def refresh_session(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        session, secret = self._session_of(data["refresh_token"])
        account = self.account(session.user_id)
        now = self.wall()
        if account is None or account.disabled:
            raise Unauthenticated("the account is disabled: ask an administrator")
        new_secret = client_secret()
        try:
            session.refresh(secret, new_secret, now, meta)
        except Unauthenticated:
            if session.pending_events:  # a copied secret ended the session: record that
                self.save(session)
            raise
        try:
            self.save(session)
        except Exception as e:  # refreshed at the same moment by another request: one wins
            raise ConcurrencyConflict("the session was refreshed at the same moment: sign in again") from e
        return self._tokens(account, session, new_secret)

    def sign_out(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        session, secret = self._session_of(data["refresh_token"])
        if not hmac.compare_digest(secret_hash(secret), session.secret_hash):
            raise Unauthenticated("the refresh token is not this session's current one")
        ended = session.end("signed_out", self.wall(), meta)
        if ended:
            self.save(session)
        return {"signed_out": True}

    def sign_in_service(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """Client credentials: an access token of the service account's scopes (no refresh:
        sign in again)."""
        account = self.account(data["client_id"])
        given = secret_hash(data["client_secret"])
        if (
            account is None
            or not account.is_service
            or account.disabled
            or not hmac.compare_digest(given, account.secret_hash or "")
        ):
            attempted = self._attempted(data["client_id"])
            if self.refusals.admits(attempted, self.wall()):
                self.save(RefusedSignIn.record(attempted, meta, "client_credentials_refused"))
            raise refused()
        caller = Caller(account.user_id, Role.SYSTEM, kind="service", scopes=tuple(account.scopes))
        return {
            "access_token": self.keys.issue(caller, ACCESS_TOKEN_SECONDS),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
        }

    # Queries ------------------------------------------------------------------------------------

    def get_account(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        caller = meta.actor
        if caller.role not in ADMINS and caller.user_id.casefold() != data["user_id"].casefold():
            raise PermissionDenied("only administrators see other people's accounts")
        return self._known(data["user_id"]).view()

    def list_accounts(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*ADMINS)
        self.tables.catch_up()
        rows = self.tables.page(data.get("cursor"), data["limit"] + 1)
        page = rows[: data["limit"]]
        return {
            "accounts": [
                {k: r[k] for k in ("user_id", "display_name", "kind", "role", "agent_id")}
                | {"disabled": bool(r["disabled"])}
                for r in page
            ],
            "next_cursor": page[-1]["user_id"] if len(rows) > data["limit"] else None,
        }

    def list_revocations(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """The tokens revoked since ``since`` (wall-clock seconds; by default as far back as an
        access token lives): per account or session, the moment before which tokens it issued
        are refused."""
        caller = meta.actor
        if not (caller.sees_everything or FOLLOWS_REVOCATIONS in caller.scopes):
            raise PermissionDenied("services (and operators) follow the revocations")
        now = self.wall()
        since = data.get("since")
        since = now - ACCESS_TOKEN_SECONDS if since is None else float(since)
        self.tables.catch_up()
        return {
            "revocations": [
                {"user_id": r["user_id"], "session_id": r["session_id"] or None, "at": float(r["at"])}
                for r in self.tables.revocations_since(since)
            ],
            "as_of": now,
        }

    def get_signing_keys(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """The public key set (JWKS) tokens are verified with."""
        return self.keys.jwks()
