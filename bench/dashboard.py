"""The dashboard's pages at scale: the time to answer the customer search, a customer's 360 page
and the segment page through the dashboard (HTTP, the session, the RPC to analytics, the read
model), beside the same read-model query run in-process (``AnalyticsQueries``, no HTTP, no RPC)
in the same run, by the same number of clients."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import requests

from bench.run import OPERATOR, Report, back_to_back
from crm_cli.system import System, wait_for_port
from crm_shared.config import Settings
from crm_shared.domain import CommandMeta

CLIENTS = 4
PAGES = ("search", "360 page", "segment page")


def timed(clients: int, seconds: float, make: Callable[[], Callable[[int], object]]) -> list[float]:
    """Each call's latency from ``clients`` threads calling back to back for ``seconds`` (each
    thread's caller made by ``make``)."""
    return back_to_back(clients, seconds, lambda: nullcontext(make()))[0]


def dashboard_latencies(
    system: System,
    sample: list[dict[str, Any]],
    criteria: Callable[[int, list[dict[str, Any]]], dict[str, Any]],
    seconds: float,
    only: tuple[str, ...] = PAGES,
) -> dict[str, tuple[list[float], list[float]]]:
    """For each page (of ``only``): (through the dashboard, the raw read-model query) latencies in
    seconds. The dashboard and identity must be running; the administrator signs in."""
    from contracts import rpc as contract
    from services.analytics.application import AnalyticsQueries
    from services.analytics.catalog import mongo_client

    wait_for_port(system.dashboard_port, 60)
    url = system.dashboard_url
    password = system.first_admin_password
    assert password, "the benchmark's system made its administrator"
    ids = [c["customer_id"] for c in sample]

    def signed_in() -> requests.Session:
        session = requests.Session()
        answer = session.post(
            f"{url}/api/session", json={"user_id": "admin", "password": password}, timeout=30
        )
        answer.raise_for_status()
        return session

    def through_dashboard(
        path: Callable[[int], tuple[str, dict[str, Any]]],
    ) -> Callable[[], Callable[[int], object]]:
        def make() -> Callable[[int], object]:
            session = signed_in()

            def call(n: int) -> None:
                where, params = path(n)
                answer = session.get(f"{url}{where}", params=params, timeout=30)
                assert answer.status_code == 200, answer.text[:300]

            return call

        return make

    client = mongo_client(system.mongo_uri)
    queries = AnalyticsQueries(client[Settings.from_env(system.env).mongo_database])
    meta = CommandMeta.new(OPERATOR)  # an operator sees every customer: no sales-force scope asked

    def raw(query: Callable[[int], object]) -> Callable[[], Callable[[int], object]]:
        return lambda: query

    pages: dict[str, tuple[Callable[[int], tuple[str, dict[str, Any]]], Callable[[int], object]]] = {
        "search": (
            lambda n: ("/api/customers", {**criteria(n, sample), "limit": 20}),
            lambda n: queries.find_customers(
                contract.FindCustomers().load({**criteria(n, sample), "limit": 20}),
                meta,
                None,  # type: ignore[arg-type]
            ),
        ),
        "360 page": (
            lambda n: (f"/api/customers/{ids[n % len(ids)]}", {}),
            lambda n: queries.get_customer_360({"customer_id": ids[n % len(ids)]}, meta, None),  # type: ignore[arg-type]
        ),
        "segment page": (
            lambda n: ("/api/segments", {"scheme": "value_tier"}),
            lambda n: queries.segments.get_segment_counts(
                contract.GetSegmentCounts().load({"scheme": "value_tier"}),
                meta,
                None,  # type: ignore[arg-type]
            ),
        ),
    }
    found = {}
    try:
        for name in only:
            page, query = pages[name]
            found[name] = (
                timed(CLIENTS, seconds, through_dashboard(page)),
                timed(CLIENTS, seconds / 2, raw(query)),
            )
    finally:
        client.close()
    return found


def report_dashboard(
    report: Report, found: dict[str, tuple[list[float], list[float]]], customers: int
) -> None:
    for name, (dashboard, raw) in found.items():
        report.add_latencies(
            f"dashboard {name} p{{p}}, {customers:,} customers",
            dashboard,
            raw,
            f"the read-model query in-process p{{p}}, same {CLIENTS} clients",
            (50, 95),
        )
