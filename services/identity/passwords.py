"""Password hashing with Argon2id (``argon2-cffi``), memory-hard: a stolen store costs an attacker
64 MiB and tens of milliseconds per guess. A sign-in for an unknown user id verifies against a hash
all the same, so its answer takes as long as a wrong password's."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        # A hash of nothing anyone knows, verified against when there is no account.
        self._decoy = self.hasher.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored or self._decoy, password)) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def temporary_password() -> str:
    """A one-time password an administrator hands over: 20 characters from 120 random bits."""
    return secrets.token_urlsafe(15)


def client_secret() -> str:
    return secrets.token_urlsafe(32)
