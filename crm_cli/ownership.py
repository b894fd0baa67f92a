"""``crm transfer-book``, ``crm customers`` and ``crm customer ID --history``: whose customers are
whose, and handing a book over with a progress bar until it is done."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.progress import ProgressBar
from crm_cli.sales_force import successor_of

COMMANDS = ("transfer-book", "customers", "book-transfer")


def add_commands(commands: Any) -> None:
    transfer = commands.add_parser(
        "transfer-book",
        help="hand an agent's whole book to successors, with a progress bar until done",
        description="Start a book transfer and follow it until every customer is moved. The book "
        "goes to --successor-agent, round robin over a team (--round-robin), or to a team's pool "
        "(--pool); the team is the agent's own unless --team names another. Ctrl-C stops watching, "
        "not the transfer: follow it again with 'crm book-transfer TRANSFER_ID'.",
    )
    transfer.add_argument("from_agent")
    whom = transfer.add_mutually_exclusive_group(required=True)
    whom.add_argument("--successor-agent")
    whom.add_argument("--round-robin", action="store_true")
    whom.add_argument("--pool", action="store_true")
    transfer.add_argument("--team")
    transfer.add_argument("--reason", required=True)
    transfer.add_argument("--undo", metavar="TRANSFER_ID", help="undo this transfer instead (needs --reason)")

    follow = commands.add_parser("book-transfer", help="show a book transfer (and follow it with --follow)")
    follow.add_argument("transfer_id")
    follow.add_argument("--follow", action="store_true", help="a progress bar until it is done")

    customers = commands.add_parser(
        "customers",
        help="list an agent's customers, in pages",
        description="Every customer of the agent, ordered by customer id, one line of JSON each; "
        "--page-size and --cursor fetch one page only.",
    )
    customers.add_argument("--agent", required=True, help="the owning agent (or a team's pool: T-1.pool)")
    customers.add_argument("--page-size", type=int, default=500)
    customers.add_argument("--cursor", help="the next_cursor of the previous page")
    customers.add_argument("--one-page", action="store_true", help="only the page at --cursor")


def call_and_show(
    client: Any, service: str, request: tuple[str, dict[str, Any]], printer: Callable[[Any], None] | None
) -> int:
    """Send ``request`` (method, payload); print the answer with ``printer`` (JSON without one),
    or the failure with what to fix."""
    method, payload = request
    reply = client.call(service, method, payload)
    if not reply.get("ok"):
        return print_failure(reply)
    if printer is None:
        print(json.dumps(reply["result"], indent=2, ensure_ascii=False))
    else:
        printer(reply["result"])
    return 0


def print_failure(reply: dict[str, Any]) -> int:
    print(json.dumps(reply, indent=2, ensure_ascii=False), file=sys.stderr)
    for problem in reply.get("error", {}).get("fields", []):
        print(f"  {problem['field']}: {problem['rule']} - {problem['message']}", file=sys.stderr)
    return 1


def _follow(client: CrmClient, transfer_id: str) -> int:
    first = client.call("customer", "get_book_transfer", {"transfer_id": transfer_id})
    if not first["ok"]:
        return print_failure(first)
    status = first["result"]
    undoing = status["state"] in ("undoing", "undone")
    bar = ProgressBar(status["total"], f"transfer {transfer_id[:8]}", unit="customers")
    done = status["moved_back"] if undoing else status["moved"]
    bar.advance(done)
    while status["state"] in ("running", "undoing"):
        time.sleep(0.5)
        status = client.call("customer", "get_book_transfer", {"transfer_id": transfer_id})["result"]
        now = status["moved_back"] if undoing else status["moved"]
        bar.total = max(bar.total, status["total"])
        bar.advance(now - done)
        done = now
    bar.finish()
    print(json.dumps(status, indent=2, ensure_ascii=False))
    return 0


def run(args: argparse.Namespace, client: CrmClient) -> int:
    if args.command == "transfer-book":
        if args.undo:
            reply = client.call(
                "customer", "undo_book_transfer", {"transfer_id": args.undo, "reason": args.reason}
            )
        else:
            reply = client.call(
                "customer",
                "transfer_book",
                {"from_agent_id": args.from_agent, "successor": successor_of(args), "reason": args.reason},
            )
        if not reply["ok"]:
            return print_failure(reply)
        return _follow(client, reply["result"]["transfer_id"])
    if args.command == "book-transfer":
        if args.follow:
            return _follow(client, args.transfer_id)
        reply = client.call("customer", "get_book_transfer", {"transfer_id": args.transfer_id})
        if not reply["ok"]:
            return print_failure(reply)
        print(json.dumps(reply["result"], indent=2, ensure_ascii=False))
        return 0
    cursor = args.cursor
    while True:
        payload = {"owning_agent_id": args.agent, "page_size": args.page_size, "cursor": cursor}
        reply = client.call("customer", "list_customers", payload)
        if not reply["ok"]:
            return print_failure(reply)
        for customer in reply["result"]["customers"]:
            print(json.dumps(customer, ensure_ascii=False))
        cursor = reply["result"]["next_cursor"]
        if cursor is None or args.one_page:
            if cursor:
                print(f"next page: --cursor {cursor}", file=sys.stderr)
            return 0


def print_history(customer: dict[str, Any]) -> None:
    """``crm customer ID --history``: who owned the customer, since when, and why."""
    print(f"{customer['customer_id']}  {customer['full_name']}")
    print(f"  registered {customer['registered_at']}")
    for change in customer.get("ownership_history", []):
        by = change["changed_by"]
        transfer = f" (book transfer {change['transfer_id']})" if change.get("transfer_id") else ""
        print(
            f"  {change['changed_at']}  {change['from_agent_id']} -> {change['to_agent_id']}{transfer}\n"
            f"      by {by.get('user_id')} ({by.get('role')}): {change['reason']}"
        )
    print(f"  owned now by {customer['owning_agent_id']}")
