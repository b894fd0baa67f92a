"""``crm profile``: change a customer's profile, or show every change of the record."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import print_failure

COMMANDS = ("profile",)


def add_commands(commands: Any) -> None:
    profile = commands.add_parser(
        "profile",
        help="change a customer's profile (only what differs is recorded), or show its history",
        description="Give the fields to change and a --reason; a field given with the value it has "
        "is not a change, and an update that changes nothing records nothing. With --history, print "
        "every change of the record: what, from, to, who, when and why.",
    )
    profile.add_argument("customer_id")
    profile.add_argument("--history", action="store_true", help="print the record's change history")
    profile.add_argument("--name", dest="full_name")
    profile.add_argument("--phone", dest="mobile_phone", help="11-digit mobile number")
    profile.add_argument("--email")
    profile.add_argument("--birth-date", dest="date_of_birth", help="YYYY-MM-DD; must match the national id")
    profile.add_argument("--street")
    profile.add_argument("--city")
    profile.add_argument("--province")
    profile.add_argument("--postal-code")
    profile.add_argument("--reason", help="why (needed for a change)")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    if args.history:
        reply = client.call("customer", "get_customer_history", {"customer_id": args.customer_id})
        if not reply["ok"]:
            return print_failure(reply)
        for change in reply["result"]["changes"]:
            who = change["who"]
            print(f"{change['when']}  {change['what']}  by {who.get('user_id')} ({who.get('role')})")
            for field in change["changes"]:
                print(f"    {field['field']}: {field['from']!r} -> {field['to']!r}")
            if change["why"]:
                print(f"    why: {change['why']}")
        return 0
    payload: dict[str, Any] = {"customer_id": args.customer_id, "reason": args.reason}
    for name in ("full_name", "mobile_phone", "email", "date_of_birth"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    if args.street or args.city or args.province:
        if not (args.street and args.city and args.province):
            raise SystemExit("a new address needs --street, --city and --province together")
        payload["address"] = {"line1": args.street, "city": args.city, "province": args.province}
        if args.postal_code:
            payload["address"]["postal_code"] = args.postal_code
    reply = client.call("customer", "update_profile", payload)
    if not reply["ok"]:
        return print_failure(reply)
    print(json.dumps(reply["result"], indent=2, ensure_ascii=False))
    return 0
