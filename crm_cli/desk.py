"""``crm ticket``, ``crm queue``, ``crm sla-board``, ``crm survey``, ``crm call-back``,
``crm praise``, ``crm suggest`` and ``crm desk-summary``: the service desk's work from the command
line. Act as a desk person with ``--as service_desk --user YOUR_ID``."""

from __future__ import annotations

import argparse
from typing import Any

from contracts.fields import CHANNELS, PRIORITIES, TICKET_KINDS
from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show
from crm_cli.selling import given

COMMANDS = ("ticket", "queue", "sla-board", "survey", "call-back", "praise", "suggest", "desk-summary")
SERVICE = "service_desk"
SLA_MARKS = {"on_track": "on track", "warned": "WARNED", "breached": "BREACHED", "paused": "paused"}
BAR_WIDTH = 40


def _ticket_actions(commands: Any) -> None:
    ticket = commands.add_parser(
        "ticket",
        help="open, work and close tickets (inquiries, service requests, complaints)",
        description="A ticket runs on an SLA clock from opening: it stands still while waiting on the "
        "customer (ask/reply) and once resolved. At 75% of the window the assignee is warned; at the "
        "deadline the breach is recorded and the ticket escalates to its queue's lead.",
    )
    actions = ticket.add_subparsers(dest="action", required=True, metavar="ACTION")
    open_ = actions.add_parser("open", help="open a ticket; prints its id, queue and deadline")
    open_.add_argument("customer_id")
    open_.add_argument("--kind", required=True, choices=TICKET_KINDS)
    open_.add_argument("--channel", required=True, choices=CHANNELS)
    open_.add_argument(
        "--category", required=True, help="a code of 'crm ticket categories', e.g. claims.payment_delay"
    )
    open_.add_argument("--priority", required=True, choices=PRIORITIES)
    open_.add_argument("--subject", required=True)
    open_.add_argument("--description", required=True)
    actions.add_parser("show", help="one ticket, with its notes and SLA clock").add_argument("ticket_id")
    actions.add_parser("categories", help="the category tree and the queue each goes to")
    assign = actions.add_parser(
        "assign", help="to a person (--to), or back to a queue (--queue without --to)"
    )
    assign.add_argument("ticket_id")
    assign.add_argument("--to", help="the desk person's user id")
    assign.add_argument("--queue", help="another queue (default: the ticket's own)")
    note = actions.add_parser("note", help="add a note")
    note.add_argument("ticket_id")
    note.add_argument("--text", required=True)
    ask = actions.add_parser("ask", help="ask the customer for information: the clock stops until they reply")
    ask.add_argument("ticket_id")
    ask.add_argument("--question", required=True)
    reply = actions.add_parser("reply", help="record the customer's answer: the clock runs again")
    reply.add_argument("ticket_id")
    reply.add_argument("--text", required=True)
    escalate = actions.add_parser(
        "escalate", help="to level 1 (team lead), 2 (desk manager) or 3 (head of service)"
    )
    escalate.add_argument("ticket_id")
    escalate.add_argument("--level", required=True, type=int, choices=(1, 2, 3))
    escalate.add_argument("--reason", required=True)
    escalate.add_argument("--to", help="whom (level 1: the queue's lead by default)")
    resolve = actions.add_parser(
        "resolve", help="record the resolution; the customer confirms or it closes by itself"
    )
    resolve.add_argument("ticket_id")
    resolve.add_argument("--resolution", required=True)
    actions.add_parser("confirm", help="the customer agrees it is resolved: closes it").add_argument(
        "ticket_id"
    )
    reopen = actions.add_parser("reopen", help="reopen a resolved ticket, or one closed in the last 14 days")
    reopen.add_argument("ticket_id")
    reopen.add_argument("--reason", required=True)
    close = actions.add_parser(
        "close", help="close: as settled (resolved), or unresolved (withdrawn, duplicate)"
    )
    close.add_argument("ticket_id")
    close.add_argument("--reason", required=True, choices=("resolved", "withdrawn", "duplicate"))


def add_commands(commands: Any) -> None:
    _ticket_actions(commands)
    queue = commands.add_parser("queue", help="open tickets of a queue or a person, nearest to breach first")
    whose = queue.add_mutually_exclusive_group(required=True)
    whose.add_argument("--queue", help="a queue id (complaints, claims, billing, policy_service, general)")
    whose.add_argument("--assignee", help="a desk person's user id")
    queue.add_argument("--limit", type=int, default=50)
    queue.add_argument("--after", help="the 'next' the previous page printed")
    queue.add_argument("--json", action="store_true", help="print the answer as JSON")
    board = commands.add_parser("sla-board", help="unresolved tickets by SLA state, per queue and priority")
    board.add_argument("--queue")
    board.add_argument("--json", action="store_true", help="print the answer as JSON")
    survey = commands.add_parser("survey", help="the satisfaction survey of a closed complaint's call-back")
    survey_actions = survey.add_subparsers(dest="action", required=True, metavar="ACTION")
    survey_actions.add_parser("show", help="the questions to ask").add_argument("ticket_id")
    answer = survey_actions.add_parser(
        "answer", help="record the answers: --score Q01=5 for each scored question, --text Q05='...'"
    )
    answer.add_argument("ticket_id")
    answer.add_argument("--score", action="append", default=[], metavar="QID=1..5")
    answer.add_argument("--text", action="append", default=[], metavar="QID=TEXT")
    call_back = commands.add_parser("call-back", help="record the call-back after a complaint")
    call_back.add_argument("ticket_id")
    reached = call_back.add_mutually_exclusive_group(required=True)
    reached.add_argument("--reached", action="store_true", help="the customer answered")
    reached.add_argument("--not-reached", action="store_true", help="no answer")
    call_back.add_argument("--satisfied", choices=("yes", "no"), help="is the customer satisfied?")
    for name, what in (("praise", "a compliment"), ("suggest", "a suggestion")):
        feedback = commands.add_parser(name, help=f"record {what} from a customer")
        feedback.add_argument("customer_id")
        feedback.add_argument("--channel", required=True, choices=CHANNELS)
        feedback.add_argument("--text", required=True)
        feedback.add_argument("--about-agent", help="the agent it is about")
        feedback.add_argument("--about-user", help="the desk person it is about")
        feedback.add_argument("--ticket", help="the ticket it is about")
    summary = commands.add_parser(
        "desk-summary", help="the desk's day or month: call-backs, satisfaction, complaints, surveys, SLA"
    )
    who = summary.add_mutually_exclusive_group()
    who.add_argument("--person", dest="summary_user", help="one person's user id (default: the whole desk)")
    who.add_argument("--queue", help="one queue (its team)")
    when = summary.add_mutually_exclusive_group()
    when.add_argument("--date", help="YYYY-MM-DD (default: today)")
    when.add_argument("--month", help="YYYY-MM")
    summary.add_argument("--json", action="store_true", help="print the answer as JSON")


def _answers(args: argparse.Namespace) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for option, key in ((args.score, "score"), (args.text, "text")):
        for item in option:
            question, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"{item!r}: give QUESTION=VALUE, e.g. Q01=5")
            answers.append(
                {"question_id": question, key: int(value) if key == "score" and value.isdigit() else value}
            )
    return answers


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match (args.command, getattr(args, "action", None)):
        case ("ticket", "open"):
            return "open_ticket", given(
                customer_id=args.customer_id, kind=args.kind, channel=args.channel, category=args.category,
                priority=args.priority, subject=args.subject, description=args.description,
            )  # fmt: skip
        case ("ticket", "show"):
            return "get_ticket", {"ticket_id": args.ticket_id}
        case ("ticket", "categories"):
            return "list_ticket_categories", {}
        case ("ticket", "assign"):
            return "assign_ticket", {"ticket_id": args.ticket_id, "assignee_user_id": args.to} | given(
                queue_id=args.queue
            )
        case ("ticket", "note"):
            return "add_ticket_note", {"ticket_id": args.ticket_id, "text": args.text}
        case ("ticket", "ask"):
            return "request_customer_info", {"ticket_id": args.ticket_id, "question": args.question}
        case ("ticket", "reply"):
            return "record_customer_reply", {"ticket_id": args.ticket_id, "reply": args.text}
        case ("ticket", "escalate"):
            payload = {"ticket_id": args.ticket_id, "level": args.level, "reason": args.reason}
            return "escalate_ticket", payload | given(escalated_to_user_id=args.to)
        case ("ticket", "resolve"):
            return "resolve_ticket", {"ticket_id": args.ticket_id, "resolution": args.resolution}
        case ("ticket", "confirm"):
            return "confirm_resolution", {"ticket_id": args.ticket_id}
        case ("ticket", "reopen"):
            return "reopen_ticket", {"ticket_id": args.ticket_id, "reason": args.reason}
        case ("ticket", "close"):
            return "close_ticket", {"ticket_id": args.ticket_id, "reason": args.reason}
        case ("queue", _):
            whose = {"queue_id": args.queue} if args.queue else {"assignee_user_id": args.assignee}
            return "get_queue", whose | {"limit": args.limit} | given(after=args.after)
        case ("sla-board", _):
            return "get_sla_board", given(queue_id=args.queue)
        case ("survey", "show"):
            return "get_survey", {"ticket_id": args.ticket_id}
        case ("survey", "answer"):
            return "record_survey_response", {"ticket_id": args.ticket_id, "answers": _answers(args)}
        case ("call-back", _):
            satisfied = None if args.satisfied is None else args.satisfied == "yes"
            return "record_call_back", {"ticket_id": args.ticket_id, "reached": args.reached} | given(
                satisfied=satisfied
            )
        case ("praise" | "suggest", _):
            return "record_praise" if args.command == "praise" else "record_suggestion", given(
                customer_id=args.customer_id, channel=args.channel, text=args.text,
                about_agent_id=args.about_agent, about_user_id=args.about_user, ticket_id=args.ticket,
            )  # fmt: skip
        case ("desk-summary", _):
            return "get_desk_summary", given(
                user_id=args.summary_user, queue_id=args.queue, date=args.date, month=args.month
            )
    raise SystemExit(f"unknown command {args.command}")


def _left(seconds: int) -> str:
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    return f"{sign}{seconds // 86400}d{seconds % 86400 // 3600:02d}h{seconds % 3600 // 60:02d}m"


def print_queue(queue: dict[str, Any]) -> None:
    whose = f"queue {queue['queue_id']}" if queue["queue_id"] else f"assignee {queue['assignee_user_id']}"
    print(f"{whose} at {queue['at']}: {len(queue['tickets'])} open tickets, nearest to breach first")
    for t in queue["tickets"]:
        print(
            f"  {_left(t['seconds_to_breach']):>11}  {SLA_MARKS[t['sla_state']]:<8}  {t['priority']:<8} "
            f"{t['kind']:<15} {t['state']:<17} {t['ticket_id']}  {t['subject']}"
        )
    if queue["next"]:
        print(f"more: --after {queue['next']}")
    if queue["call_backs_due"]:
        print(f"call-backs due ({len(queue['call_backs_due'])}):")
        for c in queue["call_backs_due"]:
            print(f"  {c['due_at']}  ticket {c['ticket_id']}  customer {c['customer_id']}")


def _bar(counts: dict[str, int], scale: float) -> str:
    marks = {"on_track": ".", "warned": "w", "breached": "B", "paused": "p"}
    return "".join(marks[state] * round(counts[state] * scale) for state in marks)


def print_board(board: dict[str, Any]) -> None:
    """A table with a bar per row: '.' on track, 'w' warned, 'B' breached, 'p' paused."""
    widest = max([sum(row[s] for s in SLA_MARKS) for row in board["by_queue"]] or [1]) or 1
    scale = BAR_WIDTH / widest
    print(f"SLA board at {board['at']}   (bar: . on track  w warned  B breached  p paused)")
    print(f"  {'':<16} {'on track':>8} {'warned':>7} {'breached':>8} {'paused':>7}")
    for title, key, rows in (
        ("queue", "queue_id", board["by_queue"]),
        ("priority", "priority", board["by_priority"]),
    ):
        print(f" by {title}")
        for row in rows:
            print(
                f"  {row[key]:<16} {row['on_track']:>8} {row['warned']:>7} {row['breached']:>8} "
                f"{row['paused']:>7}  {_bar(row, scale)}"
            )
    total = board["total"]
    print(
        f"  {'total':<16} {total['on_track']:>8} {total['warned']:>7} {total['breached']:>8} "
        f"{total['paused']:>7}"
    )


def print_summary(summary: dict[str, Any]) -> None:
    who = summary["user_id"] or (f"queue {summary['queue_id']}" if summary["queue_id"] else "the whole desk")
    share = summary["satisfied_share"]
    within = summary["within_sla_share"]
    print(f"{who}, {summary['period']}")
    print(
        f"  call-backs made        {summary['call_backs_made']:>6}  "
        f"(not reached {summary['call_backs_not_reached']})"
    )
    print(
        f"  satisfied among them   {summary['call_backs_satisfied']:>6}"
        + (f"  ({share:.0%})" if share is not None else "")
    )
    print(f"  complaints recorded    {summary['complaints_recorded']:>6}")
    print(f"  suggestions recorded   {summary['suggestions_recorded']:>6}")
    print(f"  praise recorded        {summary['praise_recorded']:>6}")
    print(f"  surveys answered       {summary['surveys_answered']:>6}")
    print(
        f"  closed within SLA      {summary['closed_within_sla']:>6}"
        + (f"  ({within:.0%})" if within is not None else "")
    )
    print(f"  closed late            {summary['closed_late']:>6}")
    print(f"  breached               {summary['breached']:>6}")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    printer = {"queue": print_queue, "sla-board": print_board, "desk-summary": print_summary}.get(
        args.command
    )
    return call_and_show(
        client, SERVICE, request_for(args), None if getattr(args, "json", False) else printer
    )
