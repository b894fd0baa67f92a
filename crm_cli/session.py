"""``crm login`` and ``crm logout``, and the token every other command calls with.

``crm login`` signs in with the identity service (the password asked for, never on the command
line) and keeps the session in a file only its owner may read (``CRM_SESSION_FILE``, by default
``~/.config/crm/session.json``): the short-lived access token and the refresh token, with which the
CLI gets a fresh access token by itself when the old one expires. A script may pass a token of its
own instead (``--token-file`` or ``CRM_TOKEN``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import jwt

from crm_cli.client import CrmClient
from crm_shared.secret_files import ensure_secret

COMMANDS = ("login", "logout", "whoami")
SERVICE = "identity"
# An access token this close to its expiry is refreshed before use.
REFRESH_MARGIN_SECONDS = 30


def config_dir() -> Path:
    return Path(os.environ.get("CRM_CONFIG_DIR") or Path.home() / ".config" / "crm")


def session_file() -> Path:
    return Path(os.environ.get("CRM_SESSION_FILE") or config_dir() / "session.json")


def import_key() -> bytes:
    """The key that derives an import's command ids from its rows (the same rows give the same
    ids, so an import run again takes effect once), kept beside the session."""
    return ensure_secret(config_dir() / "import.key").read_bytes()


def _save(session: dict[str, Any]) -> None:
    path = session_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(session, out)
    temporary.replace(path)


def _expires(token: str) -> float:
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims.get("exp", 0))


def _keep(signed: dict[str, Any]) -> dict[str, Any]:
    session = {
        "user_id": signed["account"]["user_id"],
        "role": signed["account"]["role"],
        "access_token": signed["access_token"],
        "refresh_token": signed["refresh_token"],
        "refresh_expires_at": signed["refresh_expires_at"],
    }
    _save(session)
    return session


def token_for(args: argparse.Namespace) -> str:
    """The access token to call with: the one given (``--token-file``, ``CRM_TOKEN``), or the
    session's, refreshed when it is about to expire."""
    if getattr(args, "token_file", None):
        return Path(args.token_file).read_text().strip()
    if os.environ.get("CRM_TOKEN"):
        return os.environ["CRM_TOKEN"]
    path = session_file()
    if not path.exists():
        raise SystemExit("not signed in: run 'crm login --user YOUR_USER_ID' first")
    session = json.loads(path.read_text())
    if _expires(session["access_token"]) - REFRESH_MARGIN_SECONDS > time.time():
        return str(session["access_token"])
    if session["refresh_expires_at"] <= time.time():
        raise SystemExit("your session has expired: run 'crm login' again")
    with CrmClient(args.amqp_uri, timeout=30) as client:
        reply = client.call(SERVICE, "refresh_session", {"refresh_token": session["refresh_token"]})
    if not reply.get("ok"):
        raise SystemExit(
            f"your session could not be renewed ({reply['error']['message']}): run 'crm login' again"
        )
    return str(_keep(reply["result"])["access_token"])


def add_commands(commands: Any) -> None:
    login = commands.add_parser(
        "login",
        help="sign in; the session is kept for the next commands",
        description="Signs in with your user id and password (asked for). A temporary password, "
        "from an administrator, is changed here first. The session (access and refresh tokens) is "
        "kept in CRM_SESSION_FILE (default ~/.config/crm/session.json), readable by you alone, and "
        "renewed by itself for up to 8 hours.",
    )
    login.add_argument("--user", required=True, help="your user id")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password (and a new one) from standard input"
    )
    commands.add_parser("logout", help="end the session, here and at identity")
    commands.add_parser("whoami", help="who the session is signed in as")


def _ask(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def login(args: argparse.Namespace) -> int:
    password = _ask("password: ", args.password_stdin)
    with CrmClient(args.amqp_uri, timeout=30) as client:
        reply = client.call(SERVICE, "sign_in", {"user_id": args.user, "password": password})
        if not reply.get("ok") and reply["error"]["code"] == "password_change_required":
            print(
                "your password is a temporary one: choose your own (12 characters or more)", file=sys.stderr
            )
            new = _ask("new password: ", args.password_stdin)
            if not args.password_stdin and getpass.getpass("new password again: ") != new:
                raise SystemExit("the two new passwords differ: run 'crm login' again")
            change = {"user_id": args.user, "current_password": password, "new_password": new}
            changed = client.call(SERVICE, "change_password", change)
            if not changed.get("ok"):
                from crm_cli.ownership import print_failure

                return print_failure(changed)
            reply = client.call(SERVICE, "sign_in", {"user_id": args.user, "password": new})
    if not reply.get("ok"):
        raise SystemExit(reply["error"]["message"])
    session = _keep(reply["result"])
    print(f"signed in as {session['user_id']} ({session['role']}); session kept in {session_file()}")
    return 0


def logout(args: argparse.Namespace) -> int:
    path = session_file()
    if not path.exists():
        print("not signed in")
        return 0
    session = json.loads(path.read_text())
    with CrmClient(args.amqp_uri, timeout=30) as client:
        client.call(SERVICE, "sign_out", {"refresh_token": session["refresh_token"]})
    path.unlink()
    print("signed out")
    return 0


def whoami(args: argparse.Namespace) -> int:
    token = token_for(args)
    claims = jwt.decode(token, options={"verify_signature": False})
    print(json.dumps({k: claims.get(k) for k in ("sub", "role", "agent_id", "kind", "exp")}, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"login": login, "logout": logout, "whoami": whoami}[args.command](args)
