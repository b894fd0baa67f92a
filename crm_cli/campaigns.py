"""``crm campaign create|preview|launch|pause|close|results|show|list|respond``: campaigns that take
an offer to a segment of customers through their own agents (calls in their days, with an
opportunity each) and through messages (sms, email, post), only where the customer consented,
measured against a control group that is never contacted."""

from __future__ import annotations

import argparse
import time
from typing import Any

from contracts.fields import CAMPAIGN_CHANNELS, CAMPAIGN_PURPOSES, CAMPAIGN_RESPONSES, PRODUCTS, SEGMENTS
from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show, print_failure
from crm_cli.progress import ProgressBar
from crm_cli.selling import given

COMMANDS = ("campaign",)
SERVICE = "sales"
# A preview walks the whole target: a large segment takes more than the usual half minute.
TIMEOUT = 300
BAR_WIDTH = 30
POLL_SECONDS = 1.0


def add_commands(commands: Any) -> None:
    campaign = commands.add_parser(
        "campaign",
        help="campaigns: create, preview, launch, pause, close, results",
        description="A campaign takes an offer to the customers of one segment (optionally narrowed "
        "to some agents or teams, provinces, products held or not held). Agent channels (agent_call, "
        "visit) put a call in the owning agent's day with an opportunity; sms, email and post go out "
        "through the gateways. Only customers with marketing consent for a channel are contacted on "
        "it; do-not-call customers never by an agent; a control group (a random share of those who "
        "could be reached) is never contacted, so the results can show what the campaign brought.",
    )
    actions = campaign.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="draft a campaign; prints it with its id")
    create.add_argument("--name", required=True)
    create.add_argument("--purpose", required=True, choices=CAMPAIGN_PURPOSES)
    create.add_argument(
        "--product", dest="products", action="append", required=True, choices=PRODUCTS,
        help="an offered product (repeat; the first is the opportunities' product)",
    )  # fmt: skip
    create.add_argument("--offer", required=True, help="what the agents say and the messages carry")
    create.add_argument("--scheme", required=True, choices=sorted(SEGMENTS), help="the target's scheme")
    create.add_argument("--segment", required=True, help="the target segment, e.g. high_value_at_risk")
    create.add_argument("--agent", dest="agent_ids", action="append", help="narrow to an agent's customers")
    create.add_argument("--team", dest="team_ids", action="append", help="narrow to a team's customers")
    create.add_argument("--region", dest="regions", action="append", help="narrow to a province")
    create.add_argument("--holding", action="append", choices=PRODUCTS, help="narrow to holders of a product")
    create.add_argument("--not-holding", action="append", choices=PRODUCTS, help="leave out its holders")
    create.add_argument(
        "--channel", dest="channels", action="append", required=True, choices=CAMPAIGN_CHANNELS,
        help="a channel (repeat)",
    )  # fmt: skip
    create.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    create.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    create.add_argument("--budget", required=True, help="in yuan, e.g. 50000.00")
    create.add_argument("--control-share", help="share held back as the control group (default 0.10)")
    create.add_argument("--calls-per-day", type=int, help="at most so many campaign calls in an agent's day")
    create.add_argument("--expected-premium", help="annual premium an opportunity is expected to bring")

    for name, text in (
        ("preview", "how many it would reach, per channel, after consent and do-not-call, and the spend"),
        ("show", "one campaign, with how much of its target is frozen"),
    ):
        actions.add_parser(name, help=text).add_argument("campaign_id")
    launch = actions.add_parser(
        "launch", help="freeze the target and create the work (again: resume a paused campaign)"
    )
    launch.add_argument("campaign_id")
    launch.add_argument("--no-wait", action="store_true", help="return at once instead of showing progress")
    for name, text in (("pause", "stop creating work until launched again"), ("close", "end the campaign")):
        action = actions.add_parser(name, help=text)
        action.add_argument("campaign_id")
        action.add_argument("--reason", required=True)
    results = actions.add_parser(
        "results", help="what it brought against the control group: uplift, opportunities, premium, cost"
    )
    results.add_argument("campaign_id")
    results.add_argument("--team", dest="team_id", help="the agents of one team in the by-agent table")
    listing = actions.add_parser("list", help="the campaigns you run, newest first")
    listing.add_argument("--state", choices=["draft", "launching", "running", "paused", "closed"])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="the 'next' the previous page printed")
    respond = actions.add_parser("respond", help="record what came back from a contacted customer")
    respond.add_argument("campaign_id")
    respond.add_argument("customer_id")
    respond.add_argument("--channel", required=True, choices=CAMPAIGN_CHANNELS)
    respond.add_argument("--response", required=True, choices=CAMPAIGN_RESPONSES)
    respond.add_argument("--message-id")
    respond.add_argument("--note")
    for parser in (
        create,
        launch,
        results,
        listing,
        respond,
        *(actions.choices[n] for n in ("preview", "show")),
    ):
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    for name in ("pause", "close"):
        actions.choices[name].add_argument("--json", action="store_true", help="print the answer as JSON")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match args.action:
        case "create":
            target = given(
                scheme=args.scheme,
                segment=args.segment,
                agent_ids=args.agent_ids,
                team_ids=args.team_ids,
                regions=args.regions,
                holding=args.holding,
                not_holding=args.not_holding,
            )
            return "create_campaign", given(
                name=args.name,
                purpose=args.purpose,
                products=args.products,
                offer=args.offer,
                target=target,
                channels=args.channels,
                start_date=args.start,
                end_date=args.end,
                budget=args.budget,
                control_share=args.control_share,
                daily_calls_per_agent=args.calls_per_day,
                expected_annual_premium=args.expected_premium,
            )
        case "preview" | "show" | "launch":
            method = {"preview": "preview_campaign", "show": "get_campaign", "launch": "launch_campaign"}
            return method[args.action], {"campaign_id": args.campaign_id}
        case "pause" | "close":
            return f"{args.action}_campaign", {"campaign_id": args.campaign_id, "reason": args.reason}
        case "results":
            return "get_campaign_results", given(campaign_id=args.campaign_id, team_id=args.team_id)
        case "list":
            return "list_campaigns", given(state=args.state, limit=args.limit, cursor=args.cursor)
        case "respond":
            return "record_campaign_response", given(
                campaign_id=args.campaign_id,
                customer_id=args.customer_id,
                channel=args.channel,
                response=args.response,
                message_id=args.message_id,
                note=args.note,
            )
    raise SystemExit(f"unknown action {args.action}")


def _bar(share: float) -> str:
    filled = round(max(0.0, min(share, 1.0)) * BAR_WIDTH)
    return "#" * filled + "." * (BAR_WIDTH - filled)


def print_campaign(campaign: dict[str, Any]) -> None:
    target = campaign["target"]
    narrowed = ", ".join(
        f"{name} {'/'.join(target[name])}"
        for name in ("agent_ids", "team_ids", "regions", "holding", "not_holding")
        if target[name]
    )
    frozen = campaign["frozen"]
    print(
        f"{campaign['name']}  ({campaign['purpose']}, {', '.join(campaign['products'])})  {campaign['state']}"
    )
    print(f"  id        {campaign['campaign_id']}")
    print(
        f"  target    {target['scheme']} / {target['segment']}"
        + (f"  narrowed to {narrowed}" if narrowed else "")
    )
    print(f"  channels  {', '.join(campaign['channels'])}   control share {campaign['control_share']}")
    print(f"  period    {campaign['start_date']} to {campaign['end_date']}   budget {campaign['budget']}")
    if campaign["launched_at"]:
        excluded = sum(frozen["excluded"].values())
        print(
            f"  frozen    {frozen['contacted']:,} contacted, {frozen['control']:,} control, "
            f"{excluded:,} left out "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(frozen["excluded"].items())) if excluded else "")
        )


def print_preview(preview: dict[str, Any]) -> None:
    total = preview["segment_customers"] or 1
    print(f"of {preview['segment_customers']:,} customers in the segment (as of {preview['as_of']}):")
    rows = [("contacted", preview["contacted"]), ("control group", preview["control"])]
    rows += [(f"left out: {k}", v) for k, v in sorted(preview["excluded"].items())]
    for label, n in rows:
        print(f"  {label:<28} {n:>9,}  {_bar(n / total)}")
    print("reach by channel:")
    for channel, n in preview["reach_by_channel"].items():
        print(f"  {channel:<28} {n:>9,}  {_bar(n / total)}")
    verdict = "within" if preview["within_budget"] else "OVER"
    print(
        f"estimated spend {preview['estimated_spend']} of a budget of {preview['budget']} ({verdict} budget)"
    )


def _share(rate: Any) -> str:
    return "-" if rate is None else f"{float(rate) * 100:5.1f}%"


def print_results(results: dict[str, Any]) -> None:
    overall = results["overall"]
    print(
        f"{results['name']}  {results['state']}  "
        f"measured {results['measured_from'][:10]} to {results['measured_until']}"
    )
    print(
        f"  contacted {overall['contacted']:,}: {overall['responded']:,} responded, "
        f"{overall['opportunities_opened']:,} opportunities ({overall['opportunities_won']:,} won), "
        f"{overall['customers_who_bought']:,} bought, premium {overall['premium_sold']}"
    )
    print(
        f"  control   {overall['control']:,}: {overall['control_who_bought']:,} bought, "
        f"premium {overall['control_premium_sold']}"
    )
    print(
        f"  conversion {_share(overall['treated_rate'])} contacted vs "
        f"{_share(overall['control_rate'])} control: uplift {_share(overall['uplift'])} "
        f"(95% {_share(overall['uplift_low'])} to {_share(overall['uplift_high'])})"
        + ("  significant" if overall["significant"] else "  not significant")
    )
    spend = results["spend"]
    print(
        f"  spent {spend['spent']} of {spend['budget']}; {spend['policies_won']:,} policies won; "
        f"cost per policy won {spend['cost_per_policy_won'] or '-'}"
    )
    most = max((c["reached"] for c in results["by_channel"]), default=0) or 1
    print("by channel:")
    print(
        f"  {'channel':<12} {'reached':>8} {'responded':>9} {'opps':>6} {'won':>5} {'bought':>7} "
        f"{'premium':>12}"
    )
    for c in results["by_channel"]:
        print(
            f"  {c['channel']:<12} {c['reached']:>8,} {c['responded']:>9,} {c['opportunities_opened']:>6,} "
            f"{c['opportunities_won']:>5,} {c['customers_who_bought']:>7,} {c['premium_sold']:>12}  "
            f"{_bar(c['reached'] / most)}"
        )
    for title, key, rows in (
        ("by team", "team_id", results["by_team"]),
        ("by agent", "agent_id", results["by_agent"]),
    ):
        print(f"{title}:")
        print(
            f"  {key:<16} {'contacted':>9} {'bought':>7} {'rate':>7} {'control':>8} {'bought':>7} "
            f"{'rate':>7} {'uplift':>7}"
        )
        for row in rows:
            print(
                f"  {row[key]!s:<16} {row['contacted']:>9,} {row['customers_who_bought']:>7,} "
                f"{_share(row['treated_rate']):>7} {row['control']:>8,} {row['control_who_bought']:>7,} "
                f"{_share(row['control_rate']):>7} {_share(row['uplift']):>7}"
            )


def print_list(page: dict[str, Any]) -> None:
    for c in page["campaigns"]:
        print(f"  {c['created_at'][:10]}  {c['state']:<9}  {c['campaign_id']}  {c['name']} ({c['purpose']})")
    if page["next_cursor"]:
        print(f"next: --cursor '{page['next_cursor']}'")


def _segment_size(client: CrmClient, campaign: dict[str, Any]) -> int:
    """How many customers the target's segment holds (in the owners it is narrowed to): the
    launch's total, for its progress bar."""
    target = campaign["target"]
    scopes = [{"agent_id": a} for a in target["agent_ids"]] + [{"team_id": t} for t in target["team_ids"]]
    total = 0
    for scope in scopes or [{}]:
        reply = client.call("analytics", "get_segment_counts", {"scheme": target["scheme"], **scope})
        if reply.get("ok"):
            total += next(
                (s["count"] for s in reply["result"]["segments"] if s["segment"] == target["segment"]), 0
            )
    return total


def follow_launch(client: CrmClient, campaign: dict[str, Any]) -> int:
    """Shows the launch freezing the target until it completes (or is paused or closed)."""
    bar = ProgressBar(_segment_size(client, campaign), f"launch {campaign['name'][:24]}", unit="customers")
    seen = 0
    while True:
        reply = client.call(SERVICE, "get_campaign", {"campaign_id": campaign["campaign_id"]})
        if not reply.get("ok"):
            return print_failure(reply)
        now = reply["result"]
        frozen = now["frozen"]
        done = frozen["contacted"] + frozen["control"] + sum(frozen["excluded"].values())
        bar.advance(done - seen)
        seen = done
        if now["state"] != "launching":
            bar.total = max(bar.total, seen)
            bar.finish()
            print_campaign(now)
            return 0
        time.sleep(POLL_SECONDS)


def run(args: argparse.Namespace, client: CrmClient) -> int:
    as_json = getattr(args, "json", False)
    if args.action == "launch" and not args.no_wait and not as_json:
        reply = client.call(SERVICE, *request_for(args))
        if not reply.get("ok"):
            return print_failure(reply)
        return follow_launch(client, reply["result"])
    printers = {
        "create": print_campaign,
        "show": print_campaign,
        "launch": print_campaign,
        "pause": print_campaign,
        "close": print_campaign,
        "preview": print_preview,
        "results": print_results,
        "list": print_list,
    }
    return call_and_show(client, SERVICE, request_for(args), None if as_json else printers.get(args.action))
