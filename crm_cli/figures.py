"""``crm performance agent|team``, ``crm funnel`` and ``crm complaint-stats``: a month's figures from
analytics, as tables (``--json`` for scripts)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show

COMMANDS = ("performance", "funnel", "complaint-stats")
SERVICE = "analytics"
BAR_WIDTH = 24


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def add_commands(commands: Any) -> None:
    performance = commands.add_parser(
        "performance",
        help="an agent's or a team's month: activities, opportunities, premium, complaints, contact",
        description="Activities planned and done, opportunities opened, won and lost (conversion), "
        "premium sold and retained (renewals), their customers' complaints and satisfaction, and "
        "the share of the book contacted in the last 90 days. Agents see their own, managers their "
        "teams'.",
    )
    performance.add_argument("of", choices=["agent", "team"])
    performance.add_argument("id", help="the agent id or the team id")
    performance.add_argument("--month", default=_this_month(), help="YYYY-MM (default: this month)")
    performance.add_argument("--json", action="store_true", help="print the answer as JSON")
    for name, text in (
        ("funnel", "opportunities opened, moved, won and lost in a month, and the forecast (agent or team)"),
        (
            "complaint-stats",
            "complaints by category, channel and priority, and SLA compliance, on last month and a year ago",
        ),
    ):
        parser = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        whose = parser.add_mutually_exclusive_group()
        whose.add_argument("--agent", dest="agent_id")
        whose.add_argument("--team", dest="team_id")
        parser.add_argument("--month", default=_this_month(), help="YYYY-MM (default: this month)")
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.command == "performance":
        key = "agent_id" if args.of == "agent" else "team_id"
        return f"get_{args.of}_performance", {key: args.id, "month": args.month}
    scope = {k: v for k in ("agent_id", "team_id") if (v := getattr(args, k)) is not None}
    method = "get_funnel" if args.command == "funnel" else "get_complaint_statistics"
    return method, {"month": args.month, **scope}


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _figures_line(who: str, f: dict[str, Any]) -> str:
    a, o, p, c = f["activities"], f["opportunities"], f["premium"], f["customers"]
    return (
        f"{who:<12} {a['planned']:>7} {a['done']:>5} {_share(a['done_share']):>6} "
        f"{o['opened']:>6} {o['won']:>4} {o['lost']:>5} {_share(o['conversion']):>6} "
        f"{p['sold']:>12} {p['retained']:>12} {c['book']:>6} "
        f"{c['complaints']:>5} {c['satisfaction'] if c['satisfaction'] is not None else '-':>5} "
        f"{_share(c['contacted_share']):>9}"
    )


def print_performance(result: dict[str, Any]) -> None:
    print(f"{result.get('agent_id') or result.get('team_id')} in {result['month']}")
    print(
        f"{'':<12} {'planned':>7} {'done':>5} {'done%':>6} {'opened':>6} {'won':>4} {'lost':>5} {'conv':>6} "
        f"{'sold':>12} {'retained':>12} {'book':>6} {'compl':>5} {'sat':>5} {'contacted':>9}"
    )
    for agent in result.get("agents", []):
        print(_figures_line(agent["agent_id"], agent))
    print(_figures_line("total" if "agents" in result else result["agent_id"], result))


def print_funnel(result: dict[str, Any]) -> None:
    print(
        f"funnel in {result['month']}: {result['opened']:,} opened "
        f"(expected premium {result['expected_premium_opened']})"
    )
    largest = max(result["reached"].values(), default=0) or 1
    for stage, count in result["reached"].items():
        print(f"  {stage:<12} {count:>7,}  {'#' * round(BAR_WIDTH * count / largest)}")
    print(f"  won {result['won']:,}, lost {result['lost']:,}, conversion {_share(result['conversion'])}")
    if result["forecast"] is not None:
        print(f"forecast of open opportunities: {'month':<12} {'open':>6} {'expected':>14} {'weighted':>14}")
        for row in result["forecast"]:
            print(
                f"{'':<31} {row['month']:<12} {row['open']:>6} "
                f"{row['expected_premium']:>14} {row['weighted_premium']:>14}"
            )


def print_complaints(result: dict[str, Any]) -> None:
    c = result["complaints"]
    print(
        f"complaints in {result['month']}: {c['count']:,} (last month {c['last_month']:,}, a year ago "
        f"{c['same_month_last_year']:,}); closed within SLA {_share(result['sla_compliance']['count'])}"
    )
    for cut in ("category", "channel", "priority"):
        print(f"by {cut}:")
        for row in result[f"by_{cut}"]:
            print(
                f"  {row['value']:<28} {row['count']:>6,} {row['last_month']:>8,} "
                f"{row['same_month_last_year']:>8,}"
            )


def run(args: argparse.Namespace, client: CrmClient) -> int:
    printers = {"performance": print_performance, "funnel": print_funnel, "complaint-stats": print_complaints}
    return call_and_show(client, SERVICE, request_for(args), None if args.json else printers[args.command])
