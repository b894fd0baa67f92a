"""``crm duplicates`` and ``crm merge``: find the customers who may be the same person, and merge a
duplicate into the record that stays."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import print_failure

COMMANDS = ("duplicates", "merge")


def add_commands(commands: Any) -> None:
    duplicates = commands.add_parser(
        "duplicates",
        help="list the customers who may be the same person as this one",
        description="Besides the national id, which is registered once, a customer may exist twice "
        "under two ids: same mobile phone, or same name and date of birth (spelling, spaces, case "
        "and full-width letters aside). Lists those you may see, with the reasons, and counts those "
        "not those outside your scope (ask the service desk, who sees all). Registration answers the "
        "same list without refusing.",
    )
    duplicates.add_argument("customer_id")
    duplicates.add_argument("--json", action="store_true", help="print the reply as JSON")

    merge = commands.add_parser(
        "merge",
        help="merge a duplicate customer into the one that stays",
        description="The duplicate's record is marked merged into the survivor's: from then on every "
        "command given the duplicate's id (a profile change, a sale, a complaint) is refused with "
        "customer_merged naming the survivor, and the survivor's 360 view holds the policies, "
        "tickets and history of both. A record that holds merged duplicates is never merged into "
        "another: merge the other way round. Managers (within their teams), the service desk, operators "
        "and admins may merge. A merge is not undone: check with 'crm duplicates' first.",
    )
    merge.add_argument("survivor_id", help="the customer that stays")
    merge.add_argument("duplicate_id", help="the customer merged into it")
    merge.add_argument("--reason", required=True, help="why they are the same person")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    if args.command == "duplicates":
        reply = client.call("customer", "find_duplicates", {"customer_id": args.customer_id})
        if not reply["ok"]:
            return print_failure(reply)
        result = reply["result"]
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
            return 0
        for found in result["possible_duplicates"]:
            reasons = ", ".join(r.replace("_", " ") for r in found["reasons"])
            print(f"{found['customer_id']}  owned by {found['owning_agent_id']}  ({reasons})")
        if not result["possible_duplicates"]:
            print("no possible duplicates you may see (the service desk sees every customer's)")
        return 0
    reply = client.call(
        "customer",
        "merge_customers",
        {"survivor_id": args.survivor_id, "duplicate_id": args.duplicate_id, "reason": args.reason},
    )
    if not reply["ok"]:
        return print_failure(reply)
    print(f"merged {args.duplicate_id} into {args.survivor_id}")
    return 0
