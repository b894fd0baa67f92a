"""``crm plan``, ``crm day`` and ``crm team-day``: the agent's day, and a manager's view of a team's.

Times are given as ``YYYY-MM-DD HH:MM`` in the business's time zone (``CRM_TIMEZONE``, by default
Asia/Shanghai) or in ISO 8601 with an offset."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.fields import ACTIVITY_KINDS, ACTIVITY_OUTCOMES
from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show
from crm_cli.selling import given

COMMANDS = ("plan", "day", "team-day")
SERVICE = "sales"
STATUS_MARKS = {"done": "done", "overdue": "OVERDUE", "to_come": "to come", "cancelled": "cancelled"}


def business_zone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("CRM_TIMEZONE", "Asia/Shanghai"))


def moment(text: str) -> str:
    """A time the user typed, as ISO 8601 with its offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give YYYY-MM-DD HH:MM, or ISO 8601 with an offset"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=business_zone())).isoformat()


def add_commands(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="plan, reschedule, complete or cancel an activity in an agent's day",
        description="Activities are calls, visits, meetings, follow-ups and paperwork. Visits and "
        "meetings need the agent in person, so two of them may not overlap. Times: 'YYYY-MM-DD HH:MM' "
        "in the business's time zone (CRM_TIMEZONE), or ISO 8601 with an offset.",
    )
    actions = plan.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="plan an activity; prints its id")
    add.add_argument("--kind", required=True, choices=ACTIVITY_KINDS)
    add.add_argument("--start", required=True, type=moment)
    add.add_argument("--end", required=True, type=moment)
    add.add_argument("--purpose", required=True)
    add.add_argument("--customer", help="the customer it is with or about")
    add.add_argument("--agent", help="whose day (default: yours, with --as agent)")
    done = actions.add_parser("done", help="record an activity as done, with its outcome")
    done.add_argument("activity_id")
    done.add_argument("--outcome", required=True, choices=ACTIVITY_OUTCOMES)
    done.add_argument("--notes")
    done.add_argument("--next-step", help="what comes next, in words")
    move = actions.add_parser("move", help="reschedule an activity")
    move.add_argument("activity_id")
    move.add_argument("--start", required=True, type=moment)
    move.add_argument("--end", required=True, type=moment)
    move.add_argument("--reason", required=True)
    cancel = actions.add_parser("cancel", help="cancel an activity")
    cancel.add_argument("activity_id")
    cancel.add_argument("--reason", required=True)
    show = actions.add_parser("show", help="one activity")
    show.add_argument("activity_id")

    day = commands.add_parser("day", help="an agent's daily plan: what is done, overdue and still to come")
    day.add_argument("--agent", help="whose day (default: yours, with --as agent)")
    day.add_argument("--date", help="YYYY-MM-DD (default: today)")
    day.add_argument("--json", action="store_true", help="print the answer as JSON")

    team_day = commands.add_parser(
        "team-day", help="a team's day per agent: planned against done, overdue, opportunities moved, sold"
    )
    team_day.add_argument("team_id")
    team_day.add_argument("--date", help="YYYY-MM-DD (default: today)")
    team_day.add_argument("--json", action="store_true", help="print the answer as JSON")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match (args.command, getattr(args, "action", None)):
        case ("plan", "add"):
            return "plan_activity", given(
                agent_id=args.agent,
                customer_id=args.customer,
                kind=args.kind,
                planned_start=args.start,
                planned_end=args.end,
                purpose=args.purpose,
            )
        case ("plan", "done"):
            return "complete_activity", given(
                activity_id=args.activity_id, outcome=args.outcome, notes=args.notes, next_step=args.next_step
            )
        case ("plan", "move"):
            payload = {"activity_id": args.activity_id, "planned_start": args.start, "planned_end": args.end}
            return "reschedule_activity", payload | {"reason": args.reason}
        case ("plan", "cancel"):
            return "cancel_activity", {"activity_id": args.activity_id, "reason": args.reason}
        case ("plan", "show"):
            return "get_activity", {"activity_id": args.activity_id}
        case ("day", _):
            return "get_daily_plan", given(agent_id=args.agent, date=args.date)
        case ("team-day", _):
            return "get_team_day", given(team_id=args.team_id, date=args.date)
    raise SystemExit(f"unknown command {args.command}")


def _clock(text: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(text).astimezone(zone).strftime("%H:%M")


def print_day(plan: dict[str, Any]) -> None:
    zone = ZoneInfo(plan["timezone"])
    counts = plan["counts"]
    print(
        f"{plan['agent_id']}  {plan['date']} ({plan['timezone']}):  {counts['done']} done, "
        f"{counts['overdue']} overdue, {counts['to_come']} to come, {counts['cancelled']} cancelled"
    )
    for entry in plan["activities"]:
        when = f"{_clock(entry['planned_start'], zone)}-{_clock(entry['planned_end'], zone)}"
        clash = f"  (overlaps {', '.join(entry['clashes_with'])})" if entry["clashes_with"] else ""
        print(f"  {when}  {STATUS_MARKS[entry['status']]:<9}  {entry['kind']:<9}  {entry['purpose']}{clash}")
        print(f"               {entry['activity_id']}  customer {entry['customer_id'] or '-'}")
    if plan["carried_over"]:
        print(f"still planned from earlier days ({len(plan['carried_over'])}):")
        for entry in plan["carried_over"]:
            print(
                f"  {entry['planned_start'][:10]}  {entry['kind']:<9}  {entry['purpose']}  "
                f"{entry['activity_id']}"
            )


def print_team_day(day: dict[str, Any]) -> None:
    print(f"team {day['team_id']}  {day['date']} ({day['timezone']})")
    print(
        f"  {'agent':<16} {'planned':>7} {'done':>5} {'overdue':>7} {'cancelled':>9} "
        f"{'opps moved':>10} {'sold':>5} {'premium':>12}"
    )
    for row in [*day["agents"], {"agent_id": "total", **day["totals"]}]:
        print(
            f"  {row['agent_id']:<16} {row['planned']:>7} {row['done']:>5} {row['overdue']:>7} "
            f"{row['cancelled']:>9} {row['opportunities_moved']:>10} {row['policies_sold']:>5} "
            f"{row['premium_sold']:>12}"
        )


def run(args: argparse.Namespace, client: CrmClient) -> int:
    printer = {"day": print_day, "team-day": print_team_day}.get(args.command)
    return call_and_show(
        client, SERVICE, request_for(args), None if getattr(args, "json", False) else printer
    )
