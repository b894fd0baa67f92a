"""Sign-in sessions and refused sign-ins. Pure: no I/O.

A person who signs in gets a short-lived access token and a refresh token: the session's id and a
random secret, of which the session keeps only the hash. A refresh exchanges the secret for a new
one (rotation); a secret used a second time means it was copied, and ends the session. A session
lives ``SESSION_HOURS`` at most, and ends when its owner signs out or is disabled."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import Unauthenticated

SESSION_HOURS = 8
SESSION_NAMESPACE = uuid.UUID("5d8f0b2e-7a41-4c93-b6e2-1f9c3a7d0e58")
# Secrets a session remembers having given out, to tell a copied one from an unknown one.
REMEMBERED = 5


def secret_hash(secret: str) -> str:
    """Refresh and client secrets are 256 random bits: a plain hash keeps them safe at rest."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Session(CrmAggregate):
    class Started(CrmAggregate.Created):
        # Internal: ``identity.signed_in`` on the account tells the sign-in.
        session_id: str
        user_id: str
        secret_hash: str
        expires_at: float

    class Refreshed(CrmAggregate.Event):
        secret_hash: str

        def apply(self, session: Session) -> None:
            session.given = [session.secret_hash, *session.given][:REMEMBERED]
            session.secret_hash = self.secret_hash

    class Ended(CrmAggregate.Event):
        EVENT_TYPE = "identity.session_ended"
        session_id: str
        user_id: str
        # signed_out, secret_reused, expired
        reason: str
        tokens_issued_before: float

        def apply(self, session: Session) -> None:
            session.ended = True

    def __init__(self, session_id: str, user_id: str, secret_hash: str, expires_at: float) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.secret_hash = secret_hash
        self.expires_at = expires_at
        self.given: list[str] = []
        self.ended = False

    @staticmethod
    def id_for(session_id: str) -> uuid.UUID:
        return uuid.uuid5(SESSION_NAMESPACE, session_id)

    @classmethod
    def start(cls, user_id: str, secret: str, now: float, meta: CommandMeta) -> Session:
        session_id = str(meta.derived_id(SESSION_NAMESPACE))
        return cls._create(
            cls.Started,
            id=cls.id_for(session_id),
            meta=meta.as_event_meta(),
            session_id=session_id,
            user_id=user_id,
            secret_hash=secret_hash(secret),
            expires_at=now + SESSION_HOURS * 3600,
        )

    def refresh(self, secret: str, new_secret: str, now: float, meta: CommandMeta) -> None:
        """Exchanges the session's secret for ``new_secret``. A secret given out before and
        exchanged already ends the session (someone else holds a copy)."""
        given = secret_hash(secret)
        if self.ended or now >= self.expires_at:
            raise Unauthenticated("the session has ended: sign in again")
        if not hmac.compare_digest(given, self.secret_hash):
            if given in self.given:
                self.end("secret_reused", now, meta)
            raise Unauthenticated("the refresh token is not this session's current one: sign in again")
        self.trigger_event(self.Refreshed, meta=meta.as_event_meta(), secret_hash=secret_hash(new_secret))

    def end(self, reason: str, now: float, meta: CommandMeta) -> bool:
        if self.ended:
            return False
        self.trigger_event(
            self.Ended,
            meta=meta.as_event_meta(),
            session_id=self.session_id,
            user_id=self.user_id,
            reason=reason,
            tokens_issued_before=now,
        )
        return True


class RefusedSignIn(CrmAggregate):
    """A sign-in for a user id no account has: recorded for the audit, with the id keyed-hashed
    (a person who types their password in the user id field must not find it in the audit)."""

    class Recorded(CrmAggregate.Created):
        EVENT_TYPE = "identity.sign_in_refused"
        attempted_user_hash: str
        reason: str

    def __init__(self, attempted_user_hash: str, reason: str) -> None:
        self.attempted_user_hash = attempted_user_hash
        self.reason = reason

    @classmethod
    def record(
        cls, attempted_user_hash: str, meta: CommandMeta, reason: str = "unknown_account"
    ) -> RefusedSignIn:
        """``reason``: ``unknown_account``, or ``client_credentials_refused`` (an internal system's
        client id or secret wrong, or its account disabled: no lock, which would let anyone who
        knows a client id stop that system)."""
        return cls._create(
            cls.Recorded,
            id=uuid.uuid4(),
            meta=meta.as_event_meta(),
            attempted_user_hash=attempted_user_hash,
            reason=reason,
        )
