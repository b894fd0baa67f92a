"""``crm segments counts|members|recompute``: how many customers each segment holds (with a bar
for each, and the change on last month and on the same month a year ago), who they are, and
recomputing the segment tables over the whole book now (the nightly ``crm-segments`` does it on
its own)."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from contracts.fields import SEGMENTS
from crm_cli.client import CrmClient
from crm_cli.ownership import call_and_show
from crm_shared.config import DEFAULT_MONGO_URI

COMMANDS = ("segments",)
SERVICE = "analytics"
BAR_WIDTH = 30


def add_commands(commands: Any) -> None:
    segments = commands.add_parser(
        "segments",
        help="segment counts and members (value tiers, RFM, lifecycle, value x churn, watch list)",
        description="Schemes: value_tier (vip, important, general, low_value, potential), rfm (codes "
        "of three quintiles, 111 to 555), lifecycle (prospect to lost), value_churn (the value x "
        "churn matrix) and rfm_watch (customers whose RFM fell by two quintiles or more). Agents "
        "see their own customers, managers their teams', operators and admins everyone's. The "
        "tables are as the last recompute left them: 'crm segments recompute' runs one now.",
    )
    segments.add_argument("action", choices=["counts", "members", "recompute"])
    segments.add_argument("scheme", nargs="?", choices=sorted(SEGMENTS), help="counts and members")
    segments.add_argument("segment", nargs="?", help="members: the segment to list")
    whose = segments.add_mutually_exclusive_group()
    whose.add_argument("--agent", dest="agent_id", help="one agent's customers")
    whose.add_argument("--team", dest="team_id", help="one team's customers")
    segments.add_argument("--month", help="counts: the month (YYYY-MM), default the latest")
    segments.add_argument("--limit", type=int, default=50, help="members: a page's size")
    segments.add_argument("--cursor", help="members: the 'next' the previous page printed")
    segments.add_argument("--json", action="store_true", help="print the answer as JSON")
    segments.add_argument(
        "--mongo-uri",
        default=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI),
        help="recompute: the read-model database",
    )


def add_definition_commands(commands: Any) -> None:
    segment = commands.add_parser(
        "segment",
        help="define a segment after the fact (conditions as data), list or drop definitions",
        description="'define FILE' saves a definition (JSON: {name, description, all: [conditions]}, "
        "see services/analytics/scoring/definitions.py) and computes its members over the whole "
        "book, with a progress bar; the nightly recompute and the 360 projector keep it current. "
        "Its members then count and list as 'crm segments counts defined' and 'crm segments "
        "members defined NAME', and the 360 view shows them as the customer's tags.",
    )
    segment.add_argument("action", choices=["define", "list", "drop"])
    segment.add_argument("target", nargs="?", help="define: the definition's file; drop: its name")
    segment.add_argument("--json", action="store_true", help="print the answer as JSON")
    segment.add_argument("--mongo-uri", default=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI))


def definition_command(args: argparse.Namespace) -> None:
    from datetime import UTC
    from pathlib import Path

    from crm_cli.progress import ProgressBar
    from crm_shared.config import Settings
    from services.analytics.catalog import ReadModelCatalog, mongo_client
    from services.analytics.paging import scan
    from services.analytics.scoring.config import ScoringConfigError
    from services.analytics.scoring.definitions import DEFINED, DefinedSegments, Definition
    from services.analytics.store import CUSTOMER_360

    settings = Settings.from_env()
    database = mongo_client(args.mongo_uri)[settings.mongo_database]
    defined = DefinedSegments(database)
    if args.action == "list":
        definitions = [d.as_data() for d in defined.all()]
        print(
            json.dumps(definitions, indent=2)
            if args.json
            else "\n".join(f"{d['name']:<28} {d['description']}" for d in definitions)
            or "no segment defined yet"
        )
        return
    if not args.target:
        raise SystemExit(
            f"crm segment {args.action} needs {'a file' if args.action == 'define' else 'a name'}"
        )
    if args.action == "drop":
        gone = defined.drop(args.target)
        print(
            f"dropped {args.target}: {gone:,} members removed"
            if gone is not None
            else f"no segment {args.target}"
        )
        return
    try:
        definition = Definition.from_data(json.loads(Path(args.target).read_text()))
    except (OSError, ValueError) as e:
        raise SystemExit(f"{args.target}: {e}") from None
    except ScoringConfigError as e:
        raise SystemExit(f"{args.target}: {e}") from None
    at = settings.clock()()
    defined.save(definition, "crm segment define", at)
    source = database[ReadModelCatalog(database).targets(CUSTOMER_360).active]
    bar = ProgressBar(source.estimated_document_count(), f"computing {definition.name}", "customers")
    written = 0
    for page in scan(source, {}, None, 500):
        written += defined.sync(page, at, [definition])
        bar.advance(len(page))
    bar.finish()
    members = database["segment_members"].count_documents({"scheme": DEFINED, "segment": definition.name})
    summary = {
        "name": definition.name,
        "members": members,
        "rows_written": written,
        "at": at.astimezone(UTC).isoformat(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{definition.name}: {members:,} members (kept current from now on)")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.scheme is None:
        raise SystemExit(f"crm segments {args.action} needs a scheme: one of {', '.join(sorted(SEGMENTS))}")
    scope = {k: v for k in ("agent_id", "team_id") if (v := getattr(args, k)) is not None}
    if args.action == "counts":
        return "get_segment_counts", {
            "scheme": args.scheme,
            **scope,
            **({"month": args.month} if args.month else {}),
        }
    if args.segment is None:
        raise SystemExit(
            f"crm segments members {args.scheme} needs a segment: one of {_segments(args.scheme)}"
        )
    payload = {"scheme": args.scheme, "segment": args.segment, "limit": args.limit, **scope}
    if args.cursor:
        payload["cursor"] = args.cursor
    return "list_segment_members", payload


def _segments(scheme: str) -> str:
    known = SEGMENTS[scheme]
    return ", ".join(known) if len(known) < 20 else "a code such as 555"


def _change(value: int) -> str:
    return f"{value:+,}" if value else "0"


def print_counts(result: dict[str, Any]) -> None:
    scope = result["agent_id"] or result["team_id"] or "all you may see"
    print(f"{result['scheme']} in {result['month']} ({scope}): {result['total']:,} customers")
    largest = max((s["count"] for s in result["segments"]), default=0) or 1
    print(f"{'segment':<20} {'customers':>10}  {'':<{BAR_WIDTH}} {'on last month':>14} {'on a year ago':>14}")
    for s in result["segments"]:
        bar = "#" * round(BAR_WIDTH * s["count"] / largest)
        print(
            f"{s['segment']:<20} {s['count']:>10,}  {bar:<{BAR_WIDTH}} "
            f"{_change(s['change_on_last_month']):>14} {_change(s['change_on_last_year']):>14}"
        )
    if not result["total"]:
        print("no counts yet: run 'crm segments recompute' (crm-segments runs it nightly)")


def print_members(result: dict[str, Any]) -> None:
    print(f"{'customer':<36}  {'name':<24} {'agent':<10} {'premium 12m':>12} {'risk':>4} {'churn':>5}  since")
    for m in result["members"]:
        print(
            f"{m['customer_id']:<36}  {m['full_name'] or '-':<24} {m['owning_agent_id'] or '-':<10} "
            f"{m['premium_12m'] or '-':>12} {m['risk_score'] if m['risk_score'] is not None else '-':>4} "
            f"{m['churn_score'] if m['churn_score'] is not None else '-':>5}  {m['since'][:10]}"
        )
    if not result["members"]:
        print(f"no customer of yours in {result['scheme']} {result['segment']}")
    if result["next_cursor"]:
        print(f"next: --cursor {result['next_cursor']}")


def run(args: argparse.Namespace, client: CrmClient) -> int:
    printer = None if args.json else (print_counts if args.action == "counts" else print_members)
    return call_and_show(client, SERVICE, request_for(args), printer)


def recompute_command(args: argparse.Namespace) -> None:
    from crm_cli.progress import PhasedProgress
    from crm_shared.config import Settings
    from services.analytics.catalog import mongo_client
    from services.analytics.scoring.config import ScoringConfig, ScoringConfigError
    from services.analytics.scoring.recompute import SegmentRecompute
    from services.analytics.scoring.schedule import Lease
    from services.analytics.watch.application import ChurnWatchApplication, recorded_by

    try:
        config = ScoringConfig.from_env()
    except ScoringConfigError as e:
        raise SystemExit(
            f"{e}; fix the file CRM_SCORING_CONFIG names (or unset it for the shipped one)"
        ) from None
    settings = Settings.from_env()
    database = mongo_client(args.mongo_uri)[settings.mongo_database]
    bars = PhasedProgress()

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.at(phase, total, f"recompute: {phase}", "customers")
        bar.advance(done - bar.done)

    clock = settings.clock()
    lease = Lease(database, f"crm-cli-{uuid.uuid4().hex[:8]}")
    if not lease.take(clock()):
        raise SystemExit(
            "a recompute is running already (crm-segments holds the lease); try again when it is done"
        )

    def progress_and_lease(phase: str, done: int, total: int) -> None:
        if not lease.take(clock()):
            raise SystemExit("lost the recompute's lease to another process; stopped")
        progress(phase, done, total)

    watch = ChurnWatchApplication.from_settings(settings)
    began = clock()
    try:
        recompute = SegmentRecompute(
            database, config, clock=clock, on_crossing=recorded_by(watch), zone=ZoneInfo(settings.timezone)
        )
        summary = recompute.run(progress_and_lease)
        lease.done(clock(), began)
    finally:
        watch.close()
    bars.finish()
    if args.json:
        print(json.dumps(summary.as_dict()))
        return
    print(
        f"scored {summary.customers:,} customers ({summary.valued:,} with premium) in {summary.seconds:.1f}s "
        f"({summary.customers_per_second:,.0f}/s, peak memory {summary.peak_rss_mb:.0f} MB); "
        f"{summary.memberships_changed:,} segment rows changed; churn warnings raised "
        f"{summary.churn_raised:,}, cleared {summary.churn_cleared:,}"
    )
