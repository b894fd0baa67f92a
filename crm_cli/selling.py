"""``crm opportunity``, ``crm pipeline``, ``crm quote``, ``crm policy`` and ``crm claim``: the sales
process and the policy's life."""

from __future__ import annotations

import argparse
from typing import Any

from contracts.fields import (
    CANCELLATION_REASONS,
    CLAIM_STATUSES,
    LOST_REASONS,
    OPPORTUNITY_SOURCES,
    OPPORTUNITY_STAGES,
    PRODUCTS,
)

COMMANDS = ("opportunity", "pipeline", "quote", "sell", "policy", "claim")


def add_commands(commands: Any) -> None:
    opportunity = commands.add_parser(
        "opportunity",
        help="open, move or show a sales opportunity",
        description="An opportunity moves new -> contacted -> needs_analysis -> proposal -> negotiation "
        "-> won (naming the policy sold), back one step from a proposal or a negotiation, or to lost "
        "from any open stage (with a reason). Each stage has a probability; the forecast is the "
        "expected premium times it.",
    )
    actions = opportunity.add_subparsers(dest="action", required=True, metavar="ACTION")
    open_ = actions.add_parser("open", help="open an opportunity with a customer (or a prospect's record)")
    open_.add_argument("customer_id")
    open_.add_argument("--product", required=True, choices=PRODUCTS)
    open_.add_argument("--premium", required=True, help="expected annual premium in yuan, e.g. 8000.00")
    open_.add_argument("--source", required=True, choices=OPPORTUNITY_SOURCES)
    open_.add_argument("--close-by", help="expected close date, YYYY-MM-DD")
    open_.add_argument("--note")
    move = actions.add_parser("move", help="move an opportunity to another stage")
    move.add_argument("opportunity_id")
    move.add_argument("--stage", required=True, choices=OPPORTUNITY_STAGES[1:])
    move.add_argument("--lost-reason", choices=LOST_REASONS, help="with --stage lost")
    move.add_argument("--policy", help="the policy sold, with --stage won")
    move.add_argument("--note")
    show = actions.add_parser("show", help="an opportunity with its stage, probability and next stages")
    show.add_argument("opportunity_id")

    pipeline = commands.add_parser(
        "pipeline", help="opportunities by stage: counts, expected and weighted premium, conversion"
    )
    whose = pipeline.add_mutually_exclusive_group(required=True)
    whose.add_argument("--agent", help="one agent's pipeline")
    whose.add_argument("--team", help="a team's pipeline (managers: their own teams)")

    quote = commands.add_parser(
        "quote",
        help="rate a quote from the product catalogue (valid 30 days); prints its id and premium",
        description="The premium comes from the catalogue in force: a rate per thousand of the sum "
        "insured by the insured's age band and the term, never below the product's minimum. Sell it "
        "with 'crm sell CUSTOMER --quote QUOTE_ID'.",
    )
    quote.add_argument("customer_id")
    quote.add_argument("--product", required=True, choices=PRODUCTS)
    quote.add_argument("--sum-insured", required=True, help="in yuan, e.g. 500000.00")
    quote.add_argument("--term", required=True, type=int, help="term in years (the catalogue lists them)")
    quote.add_argument("--start", help="cover start, YYYY-MM-DD (default: today)")

    sell = commands.add_parser(
        "sell", help="sell a policy to a customer, from a quote or on terms given; prints the policy number"
    )
    sell.add_argument("customer_id")
    sell.add_argument("--quote", help="sell this quote (its product, premium, term and start)")
    sell.add_argument("--product", choices=PRODUCTS)
    sell.add_argument("--premium", help="annual premium in yuan, e.g. 12000.00")
    sell.add_argument("--start", help="start date, YYYY-MM-DD")
    sell.add_argument("--term", type=int, help="term in years")

    policy = commands.add_parser(
        "policy",
        help="show a policy, or renew, pay, lapse, reinstate or cancel it",
        description="An active policy may be renewed (from 90 days before its end to 30 days after), "
        "paid, lapse or be cancelled; a lapsed one may be reinstated (within two years) or cancelled; "
        "a cancelled one is final. Payments and lapses come from the core policy system (--as system).",
    )
    policy_actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    show_policy = policy_actions.add_parser("show", help="a policy with its status, term and claims")
    show_policy.add_argument("policy_number")
    renew = policy_actions.add_parser("renew", help="renew for another term")
    renew.add_argument("policy_number")
    renew.add_argument("--quote", help="renew on a quote's terms")
    renew.add_argument("--term", type=int, help="years (default: the present term)")
    renew.add_argument("--premium", help="annual premium in yuan (default: the present one)")
    pay = policy_actions.add_parser("pay", help="record a premium paid (core policy system)")
    pay.add_argument("policy_number")
    pay.add_argument("--payment-id", required=True)
    pay.add_argument("--amount", required=True, help="in yuan")
    pay.add_argument("--due", required=True, help="the due date paid, YYYY-MM-DD")
    pay.add_argument("--paid-on", help="YYYY-MM-DD (default: today)")
    lapse = policy_actions.add_parser("lapse", help="record a lapse: a premium missed past its grace period")
    lapse.add_argument("policy_number")
    lapse.add_argument("--missed-due", required=True, help="the due date missed, YYYY-MM-DD")
    lapse.add_argument("--lapsed-on", help="YYYY-MM-DD (default: today)")
    reinstate = policy_actions.add_parser("reinstate", help="put a lapsed policy back in force")
    reinstate.add_argument("policy_number")
    reinstate.add_argument("--reason", required=True)
    reinstate.add_argument("--on", help="YYYY-MM-DD (default: today)")
    cancel = policy_actions.add_parser("cancel", help="cancel a policy")
    cancel.add_argument("policy_number")
    cancel.add_argument("--reason", required=True, choices=CANCELLATION_REASONS)
    cancel.add_argument("--on", help="YYYY-MM-DD (default: today)")
    cancel.add_argument("--note")

    claim = commands.add_parser(
        "claim", help="record a claim, or a later status of one (core claims system, --as system)"
    )
    claim.add_argument("policy_number")
    claim.add_argument("--claim-id", required=True)
    claim.add_argument("--loss-date", required=True, help="YYYY-MM-DD")
    claim.add_argument("--amount", required=True, help="amount claimed, in yuan")
    claim.add_argument("--status", required=True, choices=CLAIM_STATUSES)
    claim.add_argument("--paid", help="amount paid, with --status paid")


def given(**values: Any) -> dict[str, Any]:
    """The options given (a payload leaves out what the user did not say)."""
    return {k: v for k, v in values.items() if v is not None}


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    match (args.command, getattr(args, "action", None)):
        case ("opportunity", "open"):
            return (
                "sales",
                "open_opportunity",
                given(
                    customer_id=args.customer_id,
                    product=args.product,
                    expected_annual_premium=args.premium,
                    source=args.source,
                    expected_close_date=args.close_by,
                    note=args.note,
                ),
            )
        case ("opportunity", "move"):
            return (
                "sales",
                "move_opportunity",
                given(
                    opportunity_id=args.opportunity_id,
                    stage=args.stage,
                    lost_reason=args.lost_reason,
                    policy_number=args.policy,
                    note=args.note,
                ),
            )
        case ("opportunity", "show"):
            return "sales", "get_opportunity", {"opportunity_id": args.opportunity_id}
        case ("pipeline", _):
            return "sales", "get_pipeline", given(agent_id=args.agent, team_id=args.team)
        case ("quote", _):
            return (
                "sales",
                "issue_quote",
                given(
                    customer_id=args.customer_id,
                    product=args.product,
                    sum_insured=args.sum_insured,
                    term_years=args.term,
                    start_date=args.start,
                ),
            )
        case ("sell", _):
            return (
                "sales",
                "sell_policy",
                given(
                    customer_id=args.customer_id,
                    quote_id=args.quote,
                    product=args.product,
                    annual_premium=args.premium,
                    start_date=args.start,
                    term_years=args.term,
                ),
            )
        case ("policy", "show"):
            return "sales", "get_policy", {"policy_number": args.policy_number}
        case ("policy", "renew"):
            return (
                "sales",
                "renew_policy",
                given(
                    policy_number=args.policy_number,
                    quote_id=args.quote,
                    term_years=args.term,
                    annual_premium=args.premium,
                ),
            )
        case ("policy", "pay"):
            return (
                "sales",
                "record_premium_payment",
                given(
                    policy_number=args.policy_number,
                    payment_id=args.payment_id,
                    amount=args.amount,
                    due_date=args.due,
                    paid_on=args.paid_on,
                ),
            )
        case ("policy", "lapse"):
            return (
                "sales",
                "record_policy_lapse",
                given(
                    policy_number=args.policy_number,
                    missed_due_date=args.missed_due,
                    lapsed_on=args.lapsed_on,
                ),
            )
        case ("policy", "reinstate"):
            return (
                "sales",
                "reinstate_policy",
                given(policy_number=args.policy_number, reason=args.reason, reinstated_on=args.on),
            )
        case ("policy", "cancel"):
            return (
                "sales",
                "cancel_policy",
                given(
                    policy_number=args.policy_number, reason=args.reason, cancelled_on=args.on, note=args.note
                ),
            )
        case ("claim", _):
            return (
                "sales",
                "record_claim",
                given(
                    policy_number=args.policy_number,
                    claim_id=args.claim_id,
                    loss_date=args.loss_date,
                    amount_claimed=args.amount,
                    status=args.status,
                    amount_paid=args.paid,
                ),
            )
    raise SystemExit(f"unknown command {args.command}")
