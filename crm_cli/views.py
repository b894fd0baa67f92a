"""``crm 360``, ``crm timeline``, ``crm find`` and ``crm projections``: the analytics read models
from the command line (the customer 360 view now or as of a moment, the paged timeline, search,
and how far behind each read model is)."""

from __future__ import annotations

import argparse
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show

COMMANDS = ("360", "timeline", "find", "projections")
SERVICE = "analytics"


def add_commands(commands: Any) -> None:
    view = commands.add_parser(
        "360",
        help="print a customer's 360 view from analytics (now, or --as-of a past moment)",
        description="The customer 360 view: profile, contacts, consents, owner and ownership history, "
        "policies with status history and claims, opportunities, last and next activity, tickets "
        "with SLA state, satisfaction. With --as-of, the view as it was then, from the customer's "
        "event history.",
    )
    view.add_argument("customer_id")
    view.add_argument("--as-of", help="a moment with its offset, e.g. 2027-03-01T09:30:00+08:00")
    timeline = commands.add_parser("timeline", help="every interaction with a customer, newest first")
    timeline.add_argument("customer_id")
    timeline.add_argument("--limit", type=int, default=20)
    timeline.add_argument("--cursor", help="the 'next' the previous page printed")
    timeline.add_argument("--json", action="store_true", help="print the answer as JSON")
    find = commands.add_parser(
        "find",
        help="find customers by name prefix, mobile, last four of the national id, or owning agent",
        description="Every criterion given must hold; at least one is needed. Names match by prefix, "
        "ignoring case and full-width forms. Agents find their own customers, managers their "
        "teams', the service desk, operators and admins everyone's.",
    )
    find.add_argument("--name")
    find.add_argument("--mobile", dest="mobile_phone")
    find.add_argument("--id-last4", dest="national_id_last4")
    find.add_argument("--owner", dest="owning_agent_id")
    find.add_argument("--limit", type=int, default=20)
    find.add_argument("--cursor", help="the 'next' the previous page printed")
    find.add_argument("--json", action="store_true", help="print the answer as JSON")
    projections = commands.add_parser(
        "projections", help="each read model's lag (events waiting, seconds behind) and rebuilds"
    )
    projections.add_argument("--json", action="store_true", help="print the answer as JSON")


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {name: value for name in names if (value := getattr(args, name, None)) is not None}


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match args.command:
        case "360":
            return "get_customer_360", {"customer_id": args.customer_id, **_given(args, "as_of")}
        case "timeline":
            return "get_customer_timeline", {
                "customer_id": args.customer_id,
                "limit": args.limit,
                **_given(args, "cursor"),
            }
        case "find":
            return "find_customers", {
                "limit": args.limit,
                **_given(args, "name", "mobile_phone", "national_id_last4", "owning_agent_id", "cursor"),
            }
    return "get_projections", {}


def print_timeline(result: dict[str, Any]) -> None:
    for entry in result["entries"]:
        details = ", ".join(f"{k}={v}" for k, v in entry["details"].items())
        who = entry["actor"].get("user_id", "?")
        print(f"{entry['at'][:19]}  {entry['event_type']:<36} {who:<16} {details}")
    if not result["entries"]:
        print("no interactions recorded")
    if result["next_cursor"]:
        print(f"next: --cursor {result['next_cursor']}")


def print_found(result: dict[str, Any]) -> None:
    for c in result["customers"]:
        name = "(erased)" if c["erased"] else c["full_name"]
        print(
            f"{c['customer_id']}  {name:<24} {c['mobile_phone'] or '-':<14} "
            f"{c['national_id_masked'] or '-':<20} {c['owning_agent_id'] or '-'}"
        )
    if not result["customers"]:
        print("no customer matches in your scope")
    if result["next_cursor"]:
        print(f"next: --cursor {result['next_cursor']}")


def print_projections(result: dict[str, Any]) -> None:
    print(f"{'read model':<20} {'consumers':>9} {'waiting':>9} {'behind s':>9} {'applied':>10}  rebuilding")
    for p in result["projections"]:
        behind = "?" if p["behind_seconds"] is None else f"{p['behind_seconds']:.2f}"
        print(
            f"{p['name']:<20} {p['consumers']:>9} {p['waiting_events']:>9,} {behind:>9} "
            f"{p['applied_events']:>10,}  {p['rebuilding_into'] or '-'}"
        )
        if not p["consumers"]:
            print(f"  nothing consumes {p['queue']}: start the projector ('make run' does)")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    printer = {"timeline": print_timeline, "find": print_found, "projections": print_projections}.get(
        args.command
    )
    return call_and_show(
        client, SERVICE, request_for(args), None if getattr(args, "json", False) else printer
    )
