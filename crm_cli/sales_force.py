"""``crm team``, ``crm agent`` and ``crm reassign``: the sales force, and who owns a customer."""

from __future__ import annotations

import argparse
from typing import Any

COMMANDS = ("team", "agent", "reassign")


def add_commands(commands: Any) -> None:
    team = commands.add_parser("team", help="create, show or re-staff a sales team")
    team_actions = team.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = team_actions.add_parser("create", help="create a team (before registering its agents)")
    create.add_argument("team_id", help="e.g. T-HZ-01")
    create.add_argument("--name", required=True)
    create.add_argument("--branch", required=True)
    create.add_argument("--manager", help="the user id of the team's manager")
    show = team_actions.add_parser("show", help="a team with its agents")
    show.add_argument("team_id")
    appoint = team_actions.add_parser("appoint-manager", help="give the team a new manager")
    appoint.add_argument("team_id")
    appoint.add_argument("--manager", required=True, help="the new manager's user id")
    appoint.add_argument("--reason", required=True)

    agent = commands.add_parser("agent", help="register, move, record the departure of, or show an agent")
    agent_actions = agent.add_subparsers(dest="action", required=True, metavar="ACTION")
    register = agent_actions.add_parser("register", help="register an agent in a team")
    register.add_argument("agent_id", help="e.g. A-1001")
    register.add_argument("--name", required=True)
    register.add_argument("--team", required=True)
    register.add_argument("--hired-on", required=True, help="YYYY-MM-DD")
    move = agent_actions.add_parser("move", help="move an agent to another team")
    move.add_argument("agent_id")
    move.add_argument("--team", required=True)
    move.add_argument("--reason", required=True)
    depart = agent_actions.add_parser(
        "depart",
        help="record that an agent left, and who takes over the book",
        description="Record an agent's departure. The book goes to --successor-agent, or round robin "
        "over the active agents of a team (--round-robin), or to a team's unassigned pool (--pool); "
        "the team is the agent's own unless --team names another.",
    )
    depart.add_argument("agent_id")
    depart.add_argument("--departed-on", required=True, help="YYYY-MM-DD")
    depart.add_argument("--reason", required=True)
    whom = depart.add_mutually_exclusive_group(required=True)
    whom.add_argument("--successor-agent", help="one agent takes the whole book")
    whom.add_argument("--round-robin", action="store_true", help="share the book over a team")
    whom.add_argument("--pool", action="store_true", help="hand the book to a team's pool")
    depart.add_argument("--team", help="the team of a round robin or a pool (default: the agent's own)")
    show_agent = agent_actions.add_parser("show", help="an agent, with status and team")
    show_agent.add_argument("agent_id")

    reassign = commands.add_parser("reassign", help="give one customer a new owning agent")
    reassign.add_argument("customer_id")
    reassign.add_argument("--to", required=True, dest="new_agent", help="the new owning agent")
    reassign.add_argument("--reason", required=True)


def successor_of(args: argparse.Namespace) -> dict[str, Any]:
    """The successor rule of --successor-agent, --round-robin or --pool (with --team)."""
    if args.successor_agent:
        return {"kind": "agent", "agent_id": args.successor_agent}
    return {"kind": "round_robin" if args.round_robin else "pool", "team_id": args.team}


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    match (args.command, getattr(args, "action", None)):
        case ("team", "create"):
            payload = {"team_id": args.team_id, "name": args.name, "branch": args.branch}
            return "sales", "create_team", payload | {"manager_user_id": args.manager}
        case ("team", "show"):
            return "sales", "get_team", {"team_id": args.team_id}
        case ("team", "appoint-manager"):
            payload = {"team_id": args.team_id, "manager_user_id": args.manager, "reason": args.reason}
            return "sales", "appoint_team_manager", payload
        case ("agent", "register"):
            payload = {"agent_id": args.agent_id, "name": args.name, "team_id": args.team}
            return "sales", "register_agent", payload | {"hired_on": args.hired_on}
        case ("agent", "move"):
            return (
                "sales",
                "move_agent",
                {"agent_id": args.agent_id, "team_id": args.team, "reason": args.reason},
            )
        case ("agent", "depart"):
            payload = {"agent_id": args.agent_id, "departed_on": args.departed_on, "reason": args.reason}
            return "sales", "record_agent_departure", payload | {"successor": successor_of(args)}
        case ("agent", "show"):
            return "sales", "get_agent", {"agent_id": args.agent_id}
        case ("reassign", _):
            payload = {"customer_id": args.customer_id, "new_agent_id": args.new_agent, "reason": args.reason}
            return "customer", "reassign_customer", payload
    raise SystemExit(f"unknown command {args.command} {getattr(args, 'action', '')}")
