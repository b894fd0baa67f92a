"""``crm``: the command-line client of the CRM services.

Sign in first (``crm login --user YOUR_ID``): the commands call as you, with the session's token,
renewed by itself (``crm_cli.session``). Scripts may pass a token instead (``--token-file``,
``CRM_TOKEN``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from contracts.fields import CHANNELS, PRIORITIES
from crm_cli import (
    accounts,
    audit,
    campaigns,
    churn,
    contacts,
    desk,
    erasure,
    figures,
    importing,
    merging,
    ownership,
    planning,
    record,
    sales_force,
    segments,
    selling,
    session,
    views,
)
from crm_cli.client import CrmClient
from crm_cli.system import CLIENT_AMQP_URI_FILE, REPO, rpc_consumers
from crm_shared.config import DEFAULT_AMQP_URI, DEFAULT_MONGO_URI
from crm_shared.messaging import broker_reachable

# Command groups of their own, each with its COMMANDS, add_commands() and run(args, client), and
# the SERVICE it talks to (the customer service unless it says).
GROUPS = (
    ownership,
    record,
    contacts,
    merging,
    erasure,
    planning,
    desk,
    views,
    segments,
    figures,
    campaigns,
    accounts,
    audit,
)


def default_amqp_uri() -> str:
    """``AMQP_URI``, else the client URI ``make run`` left for this machine's CLI."""
    if os.environ.get("AMQP_URI"):
        return os.environ["AMQP_URI"]
    left = REPO / ".run" / CLIENT_AMQP_URI_FILE
    return left.read_text().strip() if left.exists() else DEFAULT_AMQP_URI


def signed_client(args: argparse.Namespace, timeout: float = 30) -> CrmClient:
    """A client calling as the signed-in user (or with the token given)."""
    return CrmClient(
        args.amqp_uri, session.token_for(args), timeout=timeout, token_source=lambda: session.token_for(args)
    )


def _print(reply: dict[str, Any]) -> int:
    print(json.dumps(reply.get("result") if reply.get("ok") else reply, indent=2, ensure_ascii=False))
    if not reply.get("ok"):
        error = reply.get("error", {})
        for problem in error.get("fields", []):
            print(f"  {problem['field']}: {problem['rule']} - {problem['message']}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm",
        description="Talk to the CRM services over RPC. Every reply is printed as JSON; errors name "
        "the field and the rule that failed.",
    )
    parser.add_argument("--amqp-uri", default=default_amqp_uri(), help="default: what 'make run' left")
    parser.add_argument(
        "--token-file",
        default=os.environ.get("CRM_TOKEN_FILE"),
        help="call with the access token in this file instead of the session of 'crm login'",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    session.add_commands(commands)
    accounts.add_key_commands(commands)
    setup = commands.add_parser(
        "broker-setup",
        help="print the rabbitmqctl commands that make the CRM's broker users (for a deployment)",
        description="A RabbitMQ user per part of the system, each allowed only its job (only the "
        "relays publish events). The script reads each password from an environment variable the "
        "deployment's secret store sets; none has a default.",
    )
    setup.add_argument("--vhost", default="crm")
    setup.add_argument("--prefix", default="crm", help="user names are <prefix>.<part>")

    sales_force.add_commands(commands)
    selling.add_commands(commands)
    for group in GROUPS:
        group.add_commands(commands)

    register = commands.add_parser("register", help="register a customer; prints its id")
    register.add_argument("--name", required=True)
    register.add_argument("--national-id", required=True, help="18-character PRC resident id")
    register.add_argument("--phone", required=True, help="11-digit mobile number")
    register.add_argument("--email")
    register.add_argument("--birth-date", required=True, help="YYYY-MM-DD, as in the national id")
    register.add_argument("--street", required=True)
    register.add_argument("--city", required=True)
    register.add_argument("--province", required=True)
    register.add_argument("--postal-code")
    register.add_argument("--agent", required=True, help="the owning agent's id")

    customer = commands.add_parser("customer", help="show a customer as the customer context has it")
    customer.add_argument("customer_id")
    customer.add_argument("--history", action="store_true", help="who owned the customer, when and why")

    complain = commands.add_parser("complain", help="open a complaint; prints ticket and deadline")
    complain.add_argument("customer_id")
    complain.add_argument("--channel", required=True, choices=CHANNELS)
    complain.add_argument("--category", required=True)
    complain.add_argument("--priority", required=True, choices=PRIORITIES)
    complain.add_argument("--description", required=True)

    close = commands.add_parser("close", help="close a complaint with its resolution")
    close.add_argument("ticket_id")
    close.add_argument("--resolution", required=True)
    close.add_argument("--satisfaction", required=True, type=int, help="1 (worst) to 5 (best)")

    from services.analytics.read_models import PROJECTIONS

    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild a read model (or all) from the event stores, then switch reads to it",
        description="Replay every event of the three event stores, in order, into a fresh collection "
        "per read model (all of them from one replay), then switch reads to them. Live events keep "
        "flowing and are neither lost nor applied twice; memory stays flat however long the "
        "history. Reads each context's public events over its read_history RPC (as an operator: "
        "--as operator, the default) and writes MongoDB directly (MONGO_URI). 'crm projections' "
        "shows each model's lag and whether a rebuild is under way.",
    )
    rebuild.add_argument(
        "model",
        choices=[*sorted(PROJECTIONS), "all", "analytics"],
        help="the read model to rebuild, or all ('analytics', the older spelling, means all)",
    )
    rebuild.add_argument("--batch-size", type=int, default=1000, help="events per read and write")
    rebuild.add_argument(
        "--force",
        action="store_true",
        help="take over from a rebuild that died (drops its half-built collection)",
    )
    rebuild.add_argument("--json", action="store_true", help="print the summary as JSON")
    rebuild.add_argument("--mongo-uri", default=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI))

    verify = commands.add_parser(
        "verify",
        help="check read models against the event stores; --repair rewrites what differs",
        description="Check, customer by customer, that the customer_360 read model (the collection "
        "serving reads) has applied exactly the event versions the three event stores hold. Every "
        "stored event of a customer must be applied to that customer's document (else: missing "
        "document, missing versions); a document must hold no aggregate the stores lack, no "
        "version beyond the stored one, no aggregate of another customer, and a revision equal to "
        "the number of events applied (else: extra data, e.g. a forged document). The versions "
        "are compared, not the content beside them (a rebuild recomputes that). Safe while live "
        "traffic flows: without --repair it only reads, and a customer the projector has not "
        "caught up with yet is checked again for up to --settle-seconds before it counts as "
        "differing. Streams the stores and the collection, so memory stays flat. Refuses to run "
        "while a rebuild is under way. Reads the event stores and MongoDB directly (CRM_DATA_DIR "
        "or PostgreSQL settings, MONGO_URI, MONGO_DATABASE): run it where the services run. Exit "
        "status: 0 when nothing differs (or everything was repaired), 1 when differences remain.",
    )
    verify.add_argument("context", choices=["analytics"], help="whose read models to verify")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="recompute the differing customers' documents from the event stores and write them "
        "(compare-and-set, so concurrent projector writes are kept); delete documents of customers "
        "the stores do not know. Documents that do not differ are not touched. If very many "
        "customers differ, 'crm rebuild all' is faster",
    )
    verify.add_argument("--batch-size", type=int, default=1000, help="events or documents per read")
    verify.add_argument(
        "--settle-seconds",
        type=float,
        default=5.0,
        help="how long a customer the live projector lags behind on may take to catch up before "
        "it counts as differing",
    )
    verify.add_argument("--json", action="store_true", help="print the summary as JSON")
    verify.add_argument("--data-dir", default=os.environ.get("CRM_DATA_DIR", str(REPO / ".run" / "data")))
    verify.add_argument("--mongo-uri", default=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI))

    dead = commands.add_parser(
        "dead-letters",
        help="list or requeue messages a projector could not apply, or RPC requests set aside",
        description="Messages a projector could not apply are kept in <queue>.dead with the reason "
        "in their headers; RPC requests that killed their service again and again are set aside by "
        "the broker in rpc-<service>.dead (reason delivery_limit; use --queue rpc-customer). 'list' "
        "shows them without removing them; 'requeue' sends them back to their queue (after the "
        "cause is fixed).",
    )
    dead.add_argument("action", choices=["list", "requeue"])
    dead.add_argument(
        "--queue",
        default="analytics.customer_360",
        help="the consumer's queue: analytics.customer_360 (default) or rpc-<service>",
    )
    dead.add_argument(
        "--message-id",
        action="append",
        dest="message_ids",
        help="requeue only this message (repeatable); default: all",
    )
    dead.add_argument("--json", action="store_true")

    churn.add_commands(commands)
    segments.add_definition_commands(commands)
    erasure.add_maintenance_commands(commands)
    importing.add_commands(commands)
    return parser


def _group_of(command: str) -> Any:
    return next((group for group in GROUPS if command in group.COMMANDS), None)


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    for module in (sales_force, selling):
        if args.command in module.COMMANDS:
            return module.request_for(args)
    match args.command:
        case "register":
            address = {"line1": args.street, "city": args.city, "province": args.province}
            if args.postal_code:
                address["postal_code"] = args.postal_code
            payload: dict[str, Any] = {
                "full_name": args.name,
                "national_id": args.national_id,
                "mobile_phone": args.phone,
                "date_of_birth": args.birth_date,
                "address": address,
                "owning_agent_id": args.agent,
            }
            if args.email:
                payload["email"] = args.email
            return "customer", "register_customer", payload
        case "customer":
            return "customer", "get_customer", {"customer_id": args.customer_id}
        case "complain":
            return (
                "service_desk",
                "open_complaint",
                {
                    "customer_id": args.customer_id,
                    "channel": args.channel,
                    "category": args.category,
                    "priority": args.priority,
                    "description": args.description,
                },
            )
        case "close":
            return (
                "service_desk",
                "close_complaint",
                {
                    "ticket_id": args.ticket_id,
                    "resolution": args.resolution,
                    "satisfaction": args.satisfaction,
                },
            )
    raise SystemExit(f"unknown command {args.command}")


def rebuild_command(args: argparse.Namespace) -> None:
    from crm_cli.progress import ProgressBar
    from crm_shared.config import Settings
    from crm_shared.relay import APPLICATIONS
    from services.analytics.catalog import mongo_client
    from services.analytics.read_models import PROJECTIONS
    from services.analytics.rebuild import Rebuilder, RpcHistory

    if not 1 <= args.batch_size <= 5000:
        raise SystemExit("--batch-size: from 1 to 5000 events a page")
    for service in APPLICATIONS:
        if not rpc_consumers(args.amqp_uri, service):
            raise SystemExit(f"the {service} service is not running: a rebuild reads its history from it")
    everything = args.model in ("all", "analytics")
    chosen = list(PROJECTIONS.values()) if everything else [PROJECTIONS[args.model]]
    database = mongo_client(args.mongo_uri)[Settings.from_env().mongo_database]
    with signed_client(args, timeout=60) as client:
        sources = [RpcHistory(client.call, service) for service in APPLICATIONS]
        rebuilder = Rebuilder(database, sources, batch_size=args.batch_size)
        bar = ProgressBar(rebuilder.total_events(), f"rebuilding {', '.join(p.name for p in chosen)}")
        try:
            summary = rebuilder.rebuild(chosen, bar.advance, force=args.force)
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
    bar.finish()
    if args.json:
        print(json.dumps(summary.as_dict()))
        return
    print(
        f"{summary.events_read:,} events read in {summary.seconds:.1f}s "
        f"({summary.events_per_second:,.0f} events/s, peak memory {summary.peak_rss_mb:.0f} MB)"
    )
    for model in summary.models:
        print(
            f"rebuilt {model.model}: {model.events_projected:,} events projected into "
            f"{model.documents:,} documents; reads now use {model.collection}, {model.replaced} was dropped"
        )


def verify_command(args: argparse.Namespace) -> int:
    from crm_cli.progress import PhasedProgress
    from crm_shared.config import Settings
    from crm_shared.relay import APPLICATIONS, load_application
    from services.analytics.catalog import mongo_client
    from services.analytics.verify import Phase, Verifier

    bars = PhasedProgress()

    def progress(phase: Phase, n: int) -> None:
        bars.at(phase.label, phase.total, phase.label, phase.unit).advance(n)

    # --data-dir wins over CRM_DATA_DIR (its default).
    settings = Settings.from_env({**os.environ, "CRM_DATA_DIR": args.data_dir})
    sources = [load_application(context, settings) for context in APPLICATIONS]
    client = mongo_client(args.mongo_uri)
    verifier = Verifier(
        client[settings.mongo_database],
        sources,
        batch_size=args.batch_size,
        progress=progress,
        settle_seconds=args.settle_seconds,
    )
    try:
        summary = verifier.verify_customer_360(repair=args.repair)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    bars.finish()
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        kinds = ", ".join(
            f"{count:,} {kind}"
            for kind, count in (
                ("missing a document", summary.missing_document),
                ("missing versions", summary.missing_versions),
                ("with extra data", summary.extra_data),
            )
            if count
        )
        print(
            f"verified {summary.model} ({summary.collection}): {summary.events_checked:,} events "
            f"and {summary.documents_checked:,} documents checked in {summary.seconds:.1f}s; "
            + (f"{summary.customers_differing:,} customers differ ({kinds})" if kinds else "nothing differs")
            + (f"; {summary.repaired:,} documents repaired" if args.repair and kinds else "")
        )
        for example in summary.examples:
            kinds, reasons = "/".join(example["kinds"]), "; ".join(example["reasons"])
            print(f"  {example['customer_id']}  {kinds}  {reasons}")
        if summary.remaining:
            print("run again with --repair to rewrite them from the event stores")
    return 1 if summary.remaining else 0


def dead_letters_command(args: argparse.Namespace) -> None:
    from crm_shared.dead_letters import list_dead_letters, requeue_dead_letters

    if args.action == "list":
        letters = list_dead_letters(args.amqp_uri, args.queue)
        if args.json:
            print(json.dumps([d.as_dict() for d in letters], indent=2))
            return
        if not letters:
            print(f"no dead letters in {args.queue}.dead")
        for d in letters:
            print(f"{d.message_id or '-'}  {d.event_type or d.routing_key or '?'}  {d.reason}")
        return
    ids = set(args.message_ids) if args.message_ids else None
    moved = requeue_dead_letters(args.amqp_uri, args.queue, ids)
    print(f"requeued {moved} message(s) to {args.queue}")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "rebuild":
        rebuild_command(args)
        return
    if args.command == "compact-read-store":
        erasure.compact_read_store(args)
        return
    if args.command == "verify":
        sys.exit(verify_command(args))
    if args.command == "dead-letters":
        dead_letters_command(args)
        return
    if args.command == "churn":
        churn.backtest_command(args)
        return
    if args.command == "segment":
        segments.definition_command(args)
        return
    if args.command == "segments" and args.action == "recompute":
        segments.recompute_command(args)
        return
    if args.command == "broker-setup":
        from crm_cli import broker
        from crm_cli.system import SERVICES
        from services.topology import CONSUMING_PROCESSES

        print(
            broker.setup_script(args.vhost, args.prefix, broker.grants(SERVICES, CONSUMING_PROCESSES)), end=""
        )
        return
    if args.command == "keys":
        accounts.keys_command(args)
        return
    if args.command in session.COMMANDS:
        sys.exit(session.run(args))
    if args.command == "import":
        if not rpc_consumers(args.amqp_uri, "customer"):
            raise SystemExit("the customer service is not running; start the system with 'make run'")
        token = session.token_for(args)
        sys.exit(
            importing.run_import(
                args, lambda: CrmClient(args.amqp_uri, token, timeout=60), session.import_key()
            )
        )
    service, method, payload = (
        (getattr(group, "SERVICE", "customer"), "", {})
        if (group := _group_of(args.command))
        else request_for(args)
    )
    problem = broker_reachable(args.amqp_uri)
    if problem:
        raise SystemExit(
            f"RabbitMQ is not reachable at {args.amqp_uri} ({problem}); start the system with 'make run'"
        )
    if not rpc_consumers(args.amqp_uri, service):
        raise SystemExit(f"the {service} service is not running; start the system with 'make run'")
    try:
        # A group whose calls walk much data (a campaign's preview) says how long it waits.
        timeout = getattr(group, "TIMEOUT", 30)
        with signed_client(args, timeout) as client:
            if group is not None:
                sys.exit(group.run(args, client))
            reply = client.call(service, method, payload)
            if args.command == "customer" and args.history and reply.get("ok"):
                ownership.print_history(reply["result"])
                sys.exit(0)
    except Exception as e:
        raise SystemExit(
            f"could not reach the {service} service ({type(e).__name__}: {e}); "
            "is the system running ('make run')?"
        ) from None
    sys.exit(_print(reply))


if __name__ == "__main__":
    main()
