"""Settings, from environment variables. Embedded defaults serve a single machine; nothing secret
has a default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crm_shared.clock import Clock, FileClock, utc_now

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
    # POSTGRES_* connection settings and CRM_CREATE_TABLES, for a PostgreSQL event store.
    postgres: Mapping[str, str]
    # The business's time zone (IANA name): what a "day" is in daily plans and day reports.
    timezone: str = "Asia/Shanghai"
    # Tests that run real processes move their time through this file (crm_shared.clock).
    clock_file: Path | None = None
    # Identity's private signing keys (identity alone reads them), and the public key set every
    # process verifies caller tokens with.
    keys_dir: Path = Path(".run/identity/keys")
    public_keys_file: Path = Path(".run/identity/jwks.json")
    # This process's own service account (client credentials), for the calls it makes itself.
    client_id: str | None = None
    client_secret: str | None = None

    def clock(self) -> Clock:
        return FileClock(self.clock_file) if self.clock_file else utc_now

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """From ``environ`` (the process environment by default)."""
        env = os.environ if environ is None else environ
        event_store = env.get("CRM_EVENT_STORE", "sqlite")
        if event_store not in ("sqlite", "postgres"):
            raise ConfigError(f"CRM_EVENT_STORE must be 'sqlite' or 'postgres', not {event_store!r}")
        return cls(
            amqp_uri=env.get("AMQP_URI", DEFAULT_AMQP_URI),
            mongo_uri=env.get("MONGO_URI", DEFAULT_MONGO_URI),
            mongo_database=env.get("MONGO_DATABASE", "crm"),
            data_dir=Path(env.get("CRM_DATA_DIR", ".run/data")),
            event_store=event_store,
            postgres={k: v for k, v in env.items() if k.startswith("POSTGRES_") or k == "CRM_CREATE_TABLES"},
            timezone=env.get("CRM_TIMEZONE", "Asia/Shanghai"),
            clock_file=Path(env["CRM_TEST_CLOCK_FILE"]) if env.get("CRM_TEST_CLOCK_FILE") else None,
            keys_dir=Path(env.get("CRM_KEYS_DIR", ".run/identity/keys")),
            public_keys_file=Path(env.get("CRM_PUBLIC_KEYS_FILE", ".run/identity/jwks.json")),
            client_id=env.get("CRM_CLIENT_ID") or None,
            client_secret=_client_secret(env),
        )


def _client_secret(env: Mapping[str, str]) -> str | None:
    if env.get("CRM_CLIENT_SECRET"):
        return env["CRM_CLIENT_SECRET"]
    path = env.get("CRM_CLIENT_SECRET_FILE")
    return Path(path).read_text().strip() if path else None
