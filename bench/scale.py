"""The read models at scale (``make bench-scale``; over an hour on two cores, too long for
every run): a history of 100,000 customers rebuilt into every read model, then one of 1,000,000
customers (four million stored events), with events per second beside the raw bulk ceiling of the
same run and the rebuild's peak memory at both sizes (flat: it streams), and the segment recompute
over each (customers scored per second beside one raw pass, its peak memory, flat too); then, with
the million customers in the read models, ``find_customers`` by name prefix, mobile, the last four of the
national id and owning agent, p50/p99 beside an analytics ping of the same clients.

    python -m bench.scale [--customers 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dashboard import PAGES, dashboard_latencies, report_dashboard
from bench.run import (
    OPERATOR,
    SURNAMES,
    SYLLABLES,
    WRITERS,
    Report,
    grow_history,
    latencies,
    raw_same_shape_updates,
    report_rebuild_all,
    report_recompute,
    serve,
)
from crm_cli.client import CrmClient
from crm_cli.system import REPO, System, free_port, fresh_vhost

QUERY_SECONDS = 20.0


def criteria(n: int, sample: list[dict[str, Any]]) -> dict[str, Any]:
    """The n-th query: a name prefix (surname and the start of a given name), an exact mobile,
    the last four of a national id with a surname, or an owning agent; from real customers."""
    rng = random.Random(n)
    known = sample[n % len(sample)]
    match n % 4:
        case 0:
            return {"name": f"{rng.choice(SURNAMES)} {rng.choice(SYLLABLES)[:2]}"}
        case 1:
            return {"mobile_phone": known["mobile_phone"]}
        case 2:
            return {"national_id_last4": known["national_id_masked"][-4:], "name": known["full_name"][:3]}
    return {"owning_agent_id": known["owning_agent_id"]}


def find_latencies(system: System) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
        sample = []
        for surname in SURNAMES:
            reply = client.call("analytics", "find_customers", {"name": surname, "limit": 50})
            sample += reply["result"]["customers"]
    by_kind: dict[str, list[float]] = {"name": [], "mobile": [], "id_last4": [], "agent": []}
    kinds = list(by_kind)

    def find(client: CrmClient, n: int) -> None:
        began = time.perf_counter()
        reply = client.call("analytics", "find_customers", {**criteria(n, sample), "limit": 20})
        assert reply["ok"], reply
        by_kind[kinds[n % 4]].append(time.perf_counter() - began)

    latencies(system, 4, QUERY_SECONDS, find, OPERATOR)
    by_kind["ping"] = latencies(
        system, 4, QUERY_SECONDS / 2, lambda c, _n: c.call("analytics", "ping", {}), OPERATOR
    )
    return by_kind, sample


def publish(report: Report, started: float, json_out: Path) -> None:
    """The table on the terminal, and the figures as JSON (printed, and kept in ``json_out``)."""
    print(report.table())
    document = {"results": report.rows, "minutes": round((time.monotonic() - started) / 60, 1)}
    print(json.dumps(document))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(document, indent=2))


def dashboard_only(args: argparse.Namespace) -> None:
    from bench.run import register, segment_recompute, staff

    report = Report()
    started = time.monotonic()
    with (
        fresh_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="crm-bench-dashboard-") as tmp,
        System(Path(tmp), amqp_uri, mongo_port=free_port()).running() as system,
    ):
        staff(system)
        print(f"registering {args.dashboard_at:,} customers", file=sys.stderr, flush=True)
        with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
            for _ in range(args.dashboard_at):
                register(client)
        wait_settled(system)
        segment_recompute(system)
        _, sample = find_latencies(system)
        report_dashboard(
            report, dashboard_latencies(system, sample, criteria, QUERY_SECONDS), args.dashboard_at
        )
    publish(report, started, args.json_out)


def wait_settled(system: System) -> None:
    """Until no read model has events waiting."""
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        while any(
            p["waiting_events"]
            for p in client.call("analytics", "get_projections", {})["result"]["projections"]
        ):
            time.sleep(0.5)


def recompute_only(args: argparse.Namespace) -> None:
    """The segment recompute over books seeded straight into the read models, once at each size;
    over the largest, the customer search and the dashboard's search and 360 pages first, and its
    segment page once the recompute has counted the segments."""
    from bench.seeded_book import seed

    report = Report()
    started = time.monotonic()
    sizes = args.recompute_at or [100_000, args.customers]
    with (
        fresh_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="crm-bench-recompute-") as tmp,
        System(Path(tmp), amqp_uri, mongo_port=free_port()).running() as system,
    ):
        served = ["identity", "analytics", "dashboard"]
        system.stop([n for n in system.processes if n != "mongo"])
        sample: list[dict[str, Any]] = []
        for customers in sizes:
            print(f"seeding {customers:,} customers", file=sys.stderr, flush=True)
            began = time.monotonic()
            seed(system.mongo_uri, customers, OPERATOR)
            report.add(f"book seeded, {customers:,} customers", time.monotonic() - began, None, "s", "-")
            if customers == sizes[-1]:
                sample = pages_at(system, report, customers, ("search", "360 page"))
                system.stop(served)
            report_recompute(system, report, customers, again=False)
            # Kept as each part ends: a later part that fails leaves the figures before it.
            publish(report, started, args.json_out)
        serve(system, ["identity", "analytics"])
        system.start(["dashboard"])
        found = dashboard_latencies(system, sample, criteria, QUERY_SECONDS, ("segment page",))
        report_dashboard(report, found, sizes[-1])
    publish(report, started, args.json_out)


def pages_at(
    system: System, report: Report, customers: int, pages: tuple[str, ...] = PAGES
) -> list[dict[str, Any]]:
    """``find_customers`` by kind, then the dashboard's ``pages``, over the book the read models
    hold; the customers the queries were drawn from."""
    print(f"find_customers at {customers:,} customers", file=sys.stderr, flush=True)
    serve(system, ["identity", "analytics"])
    found, sample = find_latencies(system)
    for kind in ("name", "mobile", "id_last4", "agent"):
        report.add_latencies(
            f"find_customers by {kind} p{{p}}",
            found[kind],
            found["ping"],
            "analytics ping p{p}, same 4 clients",
        )
    print(f"dashboard pages at {customers:,} customers", file=sys.stderr, flush=True)
    system.start(["dashboard"])
    report_dashboard(report, dashboard_latencies(system, sample, criteria, QUERY_SECONDS, pages), customers)
    return sample


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="the larger history")
    parser.add_argument(
        "--recompute-at",
        type=int,
        action="append",
        help="the sizes whose book the segment recompute runs over (default: both); over an hour "
        "at a million on two cores",
    )
    parser.add_argument(
        "--recompute-only",
        action="store_true",
        help="only the segment recompute, over books of the sizes of --recompute-at seeded straight "
        "into the 360 and search read models (bench/seeded_book.py: the documents a rebuild would "
        "make), once each, then the search and the dashboard's pages over the largest; minutes, not "
        "an hour, to make a million",
    )
    parser.add_argument(
        "--dashboard-at",
        type=int,
        help="only the dashboard's pages, over a book of this many customers registered through the "
        "services (minutes at a few thousand; the full run measures them at --customers)",
    )
    parser.add_argument("--json-out", type=Path, default=REPO / ".run" / "bench-scale.json")
    args = parser.parse_args(argv)
    if args.recompute_only:
        recompute_only(args)
        return
    if args.dashboard_at:
        dashboard_only(args)
        return
    report = Report()
    started = time.monotonic()
    with (
        fresh_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="crm-bench-scale-") as tmp,
        System(Path(tmp), amqp_uri, mongo_port=free_port()).running() as system,
    ):
        writers = [n for n in system.processes if n.split("-")[0] in WRITERS]
        system.stop([n for n in system.processes if n != "mongo"])
        for customers in (min(100_000, args.customers), args.customers):
            print(f"rebuild at {customers:,} customers", file=sys.stderr, flush=True)
            grow_history(system.run_dir / "data", customers * 4)
            ceiling = raw_same_shape_updates(system.mongo_uri, 50_000)
            serve(system, writers)
            report_rebuild_all(system, report, customers, ceiling)
            if args.recompute_at is None or customers in args.recompute_at:
                report_recompute(system, report, customers)
            system.stop(writers)
        pages_at(system, report, args.customers)
    publish(report, started, args.json_out)


if __name__ == "__main__":
    main()
