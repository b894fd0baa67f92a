"""``crm churn backtest RULES --from DATE``: replay the history under a proposed churn rule set,
without touching the live read models, and report the warnings it would have raised, how long
before each actual lapse or cancellation, and the departures it missed (precision and recall)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_shared.config import DEFAULT_MONGO_URI

COMMANDS = ("churn",)


def add_commands(commands: Any) -> None:
    churn = commands.add_parser(
        "churn",
        help="backtest a churn rule set over the history before trusting it",
        description="RULES is a JSON file: a list of rules like those under churn.rules in "
        "services/analytics/config/scoring.json ({name, kind, weight, reason, and at_least, at_most "
        "or share}), or an object {raise_at, clear_below, rules}. The history is replayed customer by "
        "customer from the timeline read model; nothing live is written. A warning counts as right "
        "when its customer lapsed or cancelled within --horizon-days after it.",
    )
    churn.add_argument("action", choices=["backtest"])
    churn.add_argument("rules", type=Path, help="the proposed rule set (JSON)")
    churn.add_argument("--from", dest="start", required=True, help="the first day replayed (YYYY-MM-DD)")
    churn.add_argument("--to", dest="end", help="the last day replayed (default: today)")
    churn.add_argument(
        "--horizon-days", type=int, default=180, help="how soon after a warning a departure counts"
    )
    churn.add_argument("--json", action="store_true", help="print the report as JSON")
    churn.add_argument("--mongo-uri", default=os.environ.get("MONGO_URI", DEFAULT_MONGO_URI))


def _day(text: str, flag: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: give a day as YYYY-MM-DD") from None


def backtest_command(args: argparse.Namespace) -> None:
    from crm_cli.progress import ProgressBar
    from crm_shared.config import Settings
    from services.analytics.catalog import ReadModelCatalog, mongo_client
    from services.analytics.scoring.backtest import backtest
    from services.analytics.scoring.config import ScoringConfig, ScoringConfigError, churn_rules_file
    from services.analytics.timeline import TIMELINE

    start = _day(args.start, "--from")
    end = _day(args.end, "--to") + timedelta(days=1) if args.end else datetime.now(UTC)
    if end <= start:
        raise SystemExit("--to must come after --from")
    if not 1 <= args.horizon_days <= 3650:
        raise SystemExit("--horizon-days: from 1 to 3650")
    try:
        rules = churn_rules_file(args.rules, ScoringConfig.from_env().churn)
    except ScoringConfigError as e:
        raise SystemExit(f"{args.rules}: {e}") from None
    database = mongo_client(args.mongo_uri)[Settings.from_env().mongo_database]
    timeline = database[ReadModelCatalog(database).targets(TIMELINE).active]
    bar = ProgressBar(timeline.estimated_document_count(), "replaying the history")
    report = backtest(timeline, rules, start, end, timedelta(days=args.horizon_days), bar.advance)
    bar.finish()
    if args.json:
        print(json.dumps(report.as_dict()))
        return

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    print(f"{report.customers:,} customers replayed from {args.start} to {report.end[:10]}")
    print(
        f"warnings raised: {report.warnings:,}; followed by a lapse or cancellation within "
        f"{report.horizon_days} days: {report.warnings_followed_by_departure:,} "
        f"(precision {share(report.precision)})"
    )
    print(
        f"customers who left: {report.departures:,}; warned before: {report.departures_warned:,}, "
        f"missed: {report.departures_missed:,} (recall {share(report.recall)})"
    )
    if report.lead_days_median is not None:
        print(
            f"warned ahead by {report.lead_days_median:.0f} days (median), "
            f"{report.lead_days_mean:.0f} (mean), "
            f"{report.lead_days_p90:.0f} (90th percentile)"
        )
    for rule, count in report.rules_in_warnings.items():
        print(f"  {rule:<24} in {count:,} warnings")
