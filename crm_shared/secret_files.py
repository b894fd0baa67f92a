"""Secrets kept in files: made once, at random, readable by their owner only."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def ensure_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> Path:
    """A random secret for this machine (by default 48 random bytes, URL-safe), made once and
    kept private: readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as secret_file:
            secret_file.write(make())
    return path
