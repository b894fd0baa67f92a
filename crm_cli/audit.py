"""``crm audit`` (administrators): who did what to which record, when and why, from every context's
events, sign-ins and refused sign-ins included."""

from __future__ import annotations

import argparse
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show
from crm_cli.planning import moment
from crm_cli.selling import given

COMMANDS = ("audit",)
SERVICE = "analytics"


def add_commands(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="the audit log: who did what to which record, when and why (administrators)",
        description="Newest first. One of --user (what a person or a service account did), "
        "--customer (what was done to a customer's records) or --account (what happened to an "
        "account: created, signed in, failed, disabled); times 'YYYY-MM-DD HH:MM' or ISO 8601.",
    )
    subject = audit.add_mutually_exclusive_group()
    subject.add_argument("--user", dest="user_id")
    subject.add_argument("--customer", dest="customer_id")
    subject.add_argument("--account")
    audit.add_argument("--since", type=moment)
    audit.add_argument("--until", type=moment)
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--cursor", help="the 'next' the previous page printed")
    audit.add_argument("--json", action="store_true", help="print the answer as JSON")


def print_page(page: dict[str, Any]) -> None:
    for e in page["entries"]:
        subject = e["customer_id"] or e["account"] or e.get("detail") or e["aggregate_id"]
        reason = f"  ({e['reason']})" if e.get("reason") else ""
        print(f"  {e['at'][:19]}  {e['user_id']:<28} {e['event_type']:<34} {subject}{reason}")
    if page["next_cursor"]:
        print(f"next: --cursor '{page['next_cursor']}'")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    request = given(
        user_id=args.user_id,
        customer_id=args.customer_id,
        account=args.account,
        since=args.since,
        until=args.until,
        limit=args.limit,
        cursor=args.cursor,
    )
    return call_and_show(client, SERVICE, ("get_audit_log", request), None if args.json else print_page)
