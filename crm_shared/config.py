"""Settings, from environment variables. Embedded defaults serve a single machine; nothing secret
has a default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27117/?retryWrites=false"


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    amqp_uri: str
    mongo_uri: str
    mongo_database: str
    data_dir: Path
    event_store: str
    auth_secret: bytes

    @classmethod
    def from_env(cls, *, require_secret: bool = True) -> Settings:
        """``require_secret=False`` serves tools that authenticate no caller (rebuilds)."""
        secret = os.environ.get("CRM_AUTH_SECRET", "")
        secret_file = os.environ.get("CRM_AUTH_SECRET_FILE")
        if not secret and secret_file:
            secret = Path(secret_file).read_text().strip()
        if require_secret and len(secret) < 32:
            raise ConfigError(
                "CRM_AUTH_SECRET (or CRM_AUTH_SECRET_FILE) must hold a secret of at least 32 "
                "characters; generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'"
            )
        event_store = os.environ.get("CRM_EVENT_STORE", "sqlite")
        if event_store not in ("sqlite", "postgres"):
            raise ConfigError(f"CRM_EVENT_STORE must be 'sqlite' or 'postgres', not {event_store!r}")
        return cls(
            amqp_uri=os.environ.get("AMQP_URI", DEFAULT_AMQP_URI),
            mongo_uri=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI),
            mongo_database=os.environ.get("MONGO_DATABASE", "crm"),
            data_dir=Path(os.environ.get("CRM_DATA_DIR", ".run/data")),
            event_store=event_store,
            auth_secret=secret.encode(),
        )
