"""Setting up identity on a new installation, and keeping its own accounts current on every start
(``make run`` and the tests run it before the processes start): the signing keys and the public key
set, a service account per process that calls others (its client secret in a file only its owner
reads, its scopes as the process declaration says), and a first administrator, whose random
password is answered once, when it is made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from crm_shared.auth import Caller, Role
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta
from crm_shared.tokens import KeyRing
from services.identity.application import IdentityApplication
from services.identity.domain import Account, secret_hash
from services.identity.passwords import client_secret

FIRST_ADMIN = "admin"
BOOTSTRAP = Caller("service:identity-bootstrap", Role.ADMIN, kind="service")


def client_secret_file(secrets_dir: Path, user_id: str) -> Path:
    return secrets_dir / f"{user_id.removeprefix('service:')}.client"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)


def bootstrap(
    settings: Settings, service_accounts: Mapping[str, Sequence[str]], secrets_dir: Path
) -> str | None:
    """Keys, service accounts and their secret files; the first administrator (``admin``) if it
    was never made. Returns that administrator's password when it was made now."""
    KeyRing.ensure(settings.keys_dir).publish(settings.public_keys_file)
    app = IdentityApplication.from_settings(settings)
    try:
        now = app.wall()
        for user_id, scopes in service_accounts.items():
            secret_file = client_secret_file(secrets_dir, user_id)
            account = app.account(user_id)
            meta = CommandMeta.new(BOOTSTRAP)
            if account is None:
                secret = client_secret()
                app.save(
                    Account.create_service(
                        user_id=user_id,
                        display_name=f"The {user_id.removeprefix('service:')} process",
                        scopes=list(scopes),
                        secret_hash=secret_hash(secret),
                        meta=meta,
                    )
                )
                _write_private(secret_file, secret)
                continue
            if account.disabled:
                account.enable("started again by its installation", meta)
            account.change_scopes(list(scopes), now, meta)
            if (
                not secret_file.exists()
                or secret_hash(secret_file.read_text().strip()) != account.secret_hash
            ):
                secret = client_secret()
                account.rotate_secret(secret_hash(secret), now, meta)
                _write_private(secret_file, secret)
            if account.pending_events:
                app.save(account)
        if app.account(FIRST_ADMIN) is not None:
            return None
        password = client_secret()[:24]
        app.create_account(
            {
                "user_id": FIRST_ADMIN,
                "display_name": "First administrator",
                "role": "admin",
                "password": password,
            },
            CommandMeta.new(BOOTSTRAP),
        )
        return password
    finally:
        app.close()
