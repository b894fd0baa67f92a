"""Server-side sessions: the browser holds only a random session id (an HttpOnly, Secure,
SameSite=Strict cookie); the tokens identity gave at sign-in stay here, with the session's CSRF
token. The access token is renewed with the refresh token before it expires; a session ends at
sign-out, after ``IDLE_SECONDS`` unused, or when identity refuses to renew it."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

IDLE_SECONDS = 30 * 60
RENEW_MARGIN_SECONDS = 60


@dataclass
class Session:
    session_id: str
    user_id: str
    role: str
    agent_id: str | None
    display_name: str
    access_token: str
    refresh_token: str
    access_expires: float
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.time)
    # One renewal at a time: identity rotates the refresh token and ends the whole session when
    # an old one comes back, so two requests renewing at once would sign the person out.
    renewing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def sees_everything(self) -> bool:
        return self.role in ("operator", "admin")


def access_expiry(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


class Sessions:
    def __init__(
        self, renew: Callable[[str], dict[str, Any] | None], clock: Callable[[], float] = time.time
    ) -> None:
        """``renew``: identity's ``refresh_session`` for a refresh token (None: refused)."""
        self.renew = renew
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, signed_in: dict[str, Any]) -> Session:
        account = signed_in["account"]
        session = Session(
            session_id=secrets.token_urlsafe(32),
            user_id=account["user_id"],
            role=account["role"],
            agent_id=account.get("agent_id"),
            display_name=account.get("display_name") or account["user_id"],
            access_token=signed_in["access_token"],
            refresh_token=signed_in["refresh_token"],
            access_expires=access_expiry(signed_in["access_token"]),
        )
        with self._lock:
            self._forget_idle()
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, its access token fresh (renewed if need be)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        now = self.clock()
        if session is None or now - session.last_seen > IDLE_SECONDS:
            self.close(session_id)
            return None
        if session.access_expires - RENEW_MARGIN_SECONDS < now:
            with session.renewing:
                # Another request may have renewed it while this one waited.
                if session.access_expires - RENEW_MARGIN_SECONDS < self.clock():
                    renewed = self.renew(session.refresh_token)
                    if renewed is None:
                        self.close(session_id)
                        return None
                    session.access_token = renewed["access_token"]
                    session.refresh_token = renewed["refresh_token"]
                    session.access_expires = access_expiry(renewed["access_token"])
        session.last_seen = now
        return session

    def close(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.pop(session_id, None)

    def _forget_idle(self) -> None:
        now = self.clock()
        for sid in [sid for sid, s in self._sessions.items() if now - s.last_seen > IDLE_SECONDS]:
            del self._sessions[sid]
