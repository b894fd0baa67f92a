"""``crm contact`` and ``crm consent``: the ways to reach a customer, how they like to be contacted,
and what they agreed to be contacted for."""

from __future__ import annotations

import argparse
import json
from typing import Any

from contracts.fields import CONSENT_PURPOSES, CONSENT_SOURCES, CONTACT_CHANNELS, MESSAGING_SERVICES
from crm_cli.client import CrmClient
from crm_cli.ownership import print_failure

COMMANDS = ("contact", "consent")


def add_commands(commands: Any) -> None:
    contact = commands.add_parser(
        "contact",
        help="add or remove a customer's phones, emails, postal addresses and messaging ids; set how "
        "they like to be contacted",
        description="A customer has the phone, email and address of their profile and any number of "
        "further contact points, each with a label ('home', 'work') and one preferred per kind. "
        "'list' shows them with the contact preferences; 'add' takes exactly one of --phone, "
        "--email, --address (with --city, --province and --postal-code) or --messaging; 'remove' "
        "takes the contact point id that 'list' shows; 'preferences' sets the preferred channel, "
        "the best time to call and do-not-call (only what you give changes).",
    )
    actions = contact.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the customer's contact points and preferences")
    listing.add_argument("customer_id")

    add = actions.add_parser("add", help="add a contact point")
    add.add_argument("customer_id")
    value = add.add_mutually_exclusive_group(required=True)
    value.add_argument("--phone", help="a mobile (13912345678), a landline (010-12345678) or +44...")
    value.add_argument("--email")
    value.add_argument("--address", help="the street line of a postal address")
    value.add_argument(
        "--messaging", metavar="SERVICE:HANDLE", help=f"services: {', '.join(MESSAGING_SERVICES)}"
    )
    add.add_argument("--city")
    add.add_argument("--province")
    add.add_argument("--postal-code", help="six digits; required for a postal address")
    add.add_argument("--label", default="main", help="what it is: home, work, ... (default: main)")
    add.add_argument("--preferred", action="store_true", help="make it the preferred one of its kind")

    remove = actions.add_parser("remove", help="remove a contact point")
    remove.add_argument("customer_id")
    remove.add_argument("contact_point_id")
    remove.add_argument("--reason", required=True)

    prefs = actions.add_parser(
        "preferences", help="set the preferred channel, best time to call, do-not-call"
    )
    prefs.add_argument("customer_id")
    prefs.add_argument("--channel", choices=[*CONTACT_CHANNELS, "none"], help="the preferred channel")
    prefs.add_argument("--call-between", metavar="HH:MM-HH:MM", help="best time to call, or 'any'")
    call = prefs.add_mutually_exclusive_group()
    call.add_argument("--do-not-call", dest="do_not_call", action="store_true", default=None)
    call.add_argument("--may-call", dest="do_not_call", action="store_false")
    prefs.add_argument("--reason", required=True)

    consent = commands.add_parser(
        "consent",
        help="record a consent given or withdrawn, show a customer's consents, or check before contacting",
        description="Consents are kept per channel and purpose (service: about the customer's own "
        "policies and tickets; marketing: offers). 'grant' and 'withdraw' record one with its source "
        "(a form number, a call recording id, a web page); 'show' prints the consent in force for "
        "every channel and purpose, with --history every consent recorded; 'check' answers whether "
        "the customer may be contacted on a channel for a purpose now, and why. Anything that "
        "contacts a customer for marketing must check first.",
    )
    consent_actions = consent.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("grant", "record a consent the customer gave"),
        ("withdraw", "record a withdrawal"),
    ):
        given = consent_actions.add_parser(action, help=text)
        given.add_argument("customer_id")
        given.add_argument("--channel", required=True, choices=CONTACT_CHANNELS)
        given.add_argument("--purpose", required=True, choices=CONSENT_PURPOSES)
        given.add_argument("--source", required=True, choices=CONSENT_SOURCES, help="where it comes from")
        given.add_argument("--reference", required=True, help="the form number, recording id or web page")
        given.add_argument("--given-at", help="when the customer gave it (ISO 8601 with offset); default now")
    show = consent_actions.add_parser("show", help="the consents in force")
    show.add_argument("customer_id")
    show.add_argument("--history", action="store_true", help="also every consent recorded")
    check = consent_actions.add_parser("check", help="may the customer be contacted now?")
    check.add_argument("customer_id")
    check.add_argument("--channel", required=True, choices=CONTACT_CHANNELS)
    check.add_argument("--purpose", required=True, choices=CONSENT_PURPOSES)


def _contact_point(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "customer_id": args.customer_id,
        "label": args.label,
        "preferred": args.preferred,
    }
    if args.phone:
        return {**payload, "kind": "phone", "phone": args.phone}
    if args.email:
        return {**payload, "kind": "email", "email": args.email}
    if args.messaging:
        service, _, handle = args.messaging.partition(":")
        if not handle:
            raise SystemExit("--messaging takes SERVICE:HANDLE, e.g. wechat:zhang_san_88")
        return {**payload, "kind": "messaging", "messaging": {"service": service, "handle": handle}}
    if not (args.city and args.province and args.postal_code):
        raise SystemExit("a postal address needs --city, --province and --postal-code beside --address")
    address = {
        "line1": args.address,
        "city": args.city,
        "province": args.province,
        "postal_code": args.postal_code,
    }
    return {**payload, "kind": "postal_address", "address": address}


def _preferences(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {"customer_id": args.customer_id, "reason": args.reason}
    if args.channel:
        payload["preferred_channel"] = None if args.channel == "none" else args.channel
    if args.call_between:
        start, _, end = args.call_between.partition("-")
        payload["best_time_to_call"] = None if args.call_between == "any" else {"from": start, "to": end}
    if args.do_not_call is not None:
        payload["do_not_call"] = args.do_not_call
    return payload


def _print_contacts(customer: dict[str, Any]) -> None:
    print(f"profile: phone {customer['mobile_phone']}, email {customer['email'] or '-'}")
    for point in customer["contact_points"]:
        star = "*" if point["preferred"] else " "
        value = point["value"]
        shown = value if isinstance(value, str) else ", ".join(str(v) for v in value.values() if v)
        print(f"{star} {point['contact_point_id']}  {point['kind']:<14} {point['label']:<10} {shown}")
    prefs = customer["contact_preferences"]
    window = prefs["best_time_to_call"]
    print(
        f"preferred channel: {prefs['preferred_channel'] or '-'}; best time to call: "
        f"{window['from'] + '-' + window['to'] if window else 'any'}; do not call: "
        f"{'yes' if prefs['do_not_call'] else 'no'}"
    )


def _print_consents(result: dict[str, Any], history: bool) -> None:
    for state in result["current"]:
        source = state["source"]
        origin = f"  ({source['kind']} {source['reference']}, given {state['given_at']})" if source else ""
        print(f"{state['channel']:<10} {state['purpose']:<10} {state['status']:<10}{origin}")
    if history:
        print("history:")
        for record in result["history"]:
            who = record["recorded_by"]
            print(
                f"  {record['recorded_at']}  {record['channel']} {record['purpose']} {record['status']} "
                f"given {record['given_at']} ({record['source']['kind']} {record['source']['reference']}) "
                f"by {who['user_id']} ({who['role']})"
            )


def run(args: argparse.Namespace, client: CrmClient) -> int:
    if args.command == "contact":
        if args.action == "list":
            reply = client.call("customer", "get_customer", {"customer_id": args.customer_id})
            if reply["ok"]:
                _print_contacts(reply["result"])
                return 0
            return print_failure(reply)
        method, payload = {
            "add": lambda: ("add_contact_point", _contact_point(args)),
            "remove": lambda: (
                "remove_contact_point",
                {
                    "customer_id": args.customer_id,
                    "contact_point_id": args.contact_point_id,
                    "reason": args.reason,
                },
            ),
            "preferences": lambda: ("set_contact_preferences", _preferences(args)),
        }[args.action]()
    elif args.action == "show":
        reply = client.call("customer", "get_consents", {"customer_id": args.customer_id})
        if reply["ok"]:
            _print_consents(reply["result"], args.history)
            return 0
        return print_failure(reply)
    elif args.action == "check":
        method = "may_contact"
        payload = {"customer_id": args.customer_id, "channel": args.channel, "purpose": args.purpose}
    else:
        method = "record_consent"
        payload = {
            "customer_id": args.customer_id,
            "channel": args.channel,
            "purpose": args.purpose,
            "status": "granted" if args.action == "grant" else "withdrawn",
            "source": {"kind": args.source, "reference": args.reference},
        }
        if args.given_at:
            payload["given_at"] = args.given_at
    reply = client.call("customer", method, payload)
    if not reply["ok"]:
        return print_failure(reply)
    print(json.dumps(reply["result"], indent=2, ensure_ascii=False))
    return 0
