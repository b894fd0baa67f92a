"""``crm account`` (administrators): open accounts, change roles, disable and enable them, reset
passwords; ``crm service-account`` for processes and internal systems (client credentials);
``crm keys`` on identity's machine: rotate the signing keys and retire old ones."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from contracts.rpc import PERSON_ROLES
from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show
from crm_cli.selling import given

COMMANDS = ("account", "service-account")
SERVICE = "identity"


def add_commands(commands: Any) -> None:
    account = commands.add_parser(
        "account",
        help="people's accounts (administrators): create, role, disable, enable, reset-password, show, list",
        description="An account is a person who signs in: its user id, role (agent, manager, "
        "service_desk, operator, admin) and, for an agent, the agent id of the sales force. A new "
        "account, or one whose password is reset, gets a temporary password (printed once) that "
        "its owner changes at the first 'crm login'. Disabling an account refuses its tokens "
        "everywhere within seconds; an agent's departure disables theirs by itself.",
    )
    actions = account.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="open an account; prints its temporary password once")
    create.add_argument("user_id")
    create.add_argument("--name", required=True, help="the person's name, as shown")
    create.add_argument("--role", required=True, choices=PERSON_ROLES)
    create.add_argument("--agent-id", help="an agent's id in the sales force (agents only)")
    role = actions.add_parser("role", help="change an account's role (its tokens are refused from now)")
    role.add_argument("user_id")
    role.add_argument("--role", required=True, choices=PERSON_ROLES)
    role.add_argument("--agent-id")
    role.add_argument("--reason", required=True)
    for name, text in (
        ("disable", "refuse the account's sign-ins and tokens"),
        ("enable", "let it sign in again"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("user_id")
        action.add_argument("--reason", required=True)
    reset = actions.add_parser("reset-password", help="a temporary password, to change at the next sign-in")
    reset.add_argument("user_id")
    show = actions.add_parser("show", help="one account")
    show.add_argument("user_id")
    listing = actions.add_parser("list", help="every account, by user id")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--cursor")

    service = commands.add_parser(
        "service-account",
        help="accounts of processes and internal systems: create, rotate-secret",
        description="A service account signs in with its client id and secret (printed once) and "
        "may call only the operations of its scopes (<service>.<operation>), as the role 'system'.",
    )
    service_actions = service.add_subparsers(dest="action", required=True, metavar="ACTION")
    made = service_actions.add_parser("create", help="prints the client secret once")
    made.add_argument("user_id", help="service:<name>")
    made.add_argument("--name", required=True)
    made.add_argument("--scope", dest="scopes", action="append", required=True, help="<service>.<operation>")
    rotate = service_actions.add_parser("rotate-secret", help="a new client secret; the old one stops")
    rotate.add_argument("user_id")


def add_key_commands(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="identity's signing keys, on identity's machine: list, rotate, retire",
        description="Tokens are signed with identity's Ed25519 keys (CRM_KEYS_DIR) and verified "
        "with the public key set beside them. 'rotate' publishes a new key that starts signing two "
        "minutes later (every process reads the set first); 'retire KID' drops an old key once the "
        "tokens it signed have expired (ten minutes).",
    )
    keys.add_argument("action", choices=["list", "rotate", "retire"])
    keys.add_argument("kid", nargs="?", help="retire: the key's id")
    keys.add_argument("--keys-dir", default=os.environ.get("CRM_KEYS_DIR", ".run/identity/keys"))


def keys_command(args: argparse.Namespace) -> None:
    from crm_shared.tokens import KeyRing

    ring = KeyRing(Path(args.keys_dir))
    if args.action == "rotate":
        key = ring.rotate()
        print(f"new key {key.kid}: published now, signing in two minutes")
    elif args.action == "retire":
        if not args.kid:
            raise SystemExit("retire needs the key's id: see 'crm keys list'")
        ring.retire(args.kid)
        print(f"key {args.kid} retired")
    active = ring.active().kid if ring.signing_keys() else None
    for key in ring.signing_keys():
        print(f"  {key.kid}{'  (signing)' if key.kid == active else ''}")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match (args.command, args.action):
        case ("account", "create"):
            return "create_account", given(
                user_id=args.user_id, display_name=args.name, role=args.role, agent_id=args.agent_id
            )
        case ("account", "role"):
            return "change_role", given(
                user_id=args.user_id, role=args.role, agent_id=args.agent_id, reason=args.reason
            )
        case ("account", "disable" | "enable"):
            return f"{args.action}_account", {"user_id": args.user_id, "reason": args.reason}
        case ("account", "reset-password"):
            return "reset_password", {"user_id": args.user_id}
        case ("account", "show"):
            return "get_account", {"user_id": args.user_id}
        case ("account", "list"):
            return "list_accounts", given(limit=args.limit, cursor=args.cursor)
        case ("service-account", "create"):
            return "create_service_account", {
                "user_id": args.user_id,
                "display_name": args.name,
                "scopes": args.scopes,
            }
        case ("service-account", "rotate-secret"):
            return "rotate_client_secret", {"user_id": args.user_id}
    raise SystemExit(f"unknown action {args.action}")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    return call_and_show(
        client, SERVICE, request_for(args), lambda result: print(json.dumps(result, indent=2))
    )
