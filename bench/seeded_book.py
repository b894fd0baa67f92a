"""A book of customers straight into the 360 and search read models, for the segment recompute and
the dashboard's pages at scale: each customer's history made by the real aggregates (a registration
and two policies, as the rebuild's ``grow_history`` stores them), published as the relays would
(``build_envelope``) and folded by the 360's own ``fold`` and the search's ``search_document``, then
inserted in batches. The same documents a rebuild would make, in minutes instead of an hour: the
figures are about the recompute and the queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from crm_shared.domain import CommandMeta
from crm_shared.eventstore import build_envelope
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.customer_360 import fold
from services.analytics.search import CUSTOMER_SEARCH, SEARCH_PROJECTION, search_document
from services.analytics.store import CUSTOMER_360, ensure_indexes
from services.customer.domain import Customer
from services.sales.domain import Policy, policy_number_for

BATCH = 2_000


def history(n: int, operator: Any) -> list[dict[str, Any]]:
    from bench.run import bench_name
    from tests.support import unique_person

    birth, national_id = unique_person()
    meta = CommandMeta.new(operator)
    customer = Customer.register(
        full_name=bench_name(n),
        national_id=national_id,
        mobile_phone=f"139{n % 10**8:08d}",
        email=None,
        date_of_birth=birth,
        address={"line1": "1 Bench Road", "city": "Hangzhou", "province": "Zhejiang"},
        owning_agent_id=f"A-{uuid.uuid4().int % 250_000}",
        meta=meta,
    )
    events = [build_envelope("customer", 2 * n + 1, e) for e in customer.collect_events()]
    # Premiums spread as books are: most small, a few large.
    for k, premium in enumerate(
        (Decimal(800 + (n * 7919) % 4000), Decimal(200 + (n * 104729) % 600_000) / 10)
    ):
        sale = CommandMeta.new(operator)
        policy = Policy.sell(
            policy_number=policy_number_for(sale.causation_id),
            customer_id=str(customer.id),
            product="life",
            annual_premium=premium.quantize(Decimal("0.01")),
            start_date=date(2025, 1, 1) + timedelta(days=(n + k) % 365),
            term_years=10,
            agent_id=customer.owning_agent_id,
            meta=sale,
        )
        events += [build_envelope("sales", 2 * n + 2 + k, e) for e in policy.collect_events()]
    return [e for e in events if e is not None]


def documents(customers: int, operator: Any) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Batches of (360 documents, search documents)."""
    batch: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for n in range(customers):
        events = history(n, operator)
        doc = fold(iter(events))
        assert doc is not None
        batch.append(doc)
        search: dict[str, Any] | None = None
        for event in events:
            if event["event_type"] in SEARCH_PROJECTION.event_types:
                search = search_document(search, event)
        assert search is not None
        found.append(search)
        if len(batch) == BATCH:
            yield batch, found
            batch, found = [], []
    if batch:
        yield batch, found


def seed(mongo_uri: str, customers: int, operator: Any) -> None:
    """A fresh read-model database holding ``customers`` 360 and search documents."""
    client = mongo_client(mongo_uri)
    client.drop_database("crm")
    database = client["crm"]
    catalog = ReadModelCatalog(database)
    collection = database[catalog.targets_uncached(CUSTOMER_360).active]
    ensure_indexes(collection)
    search = database[catalog.targets_uncached(CUSTOMER_SEARCH).active]
    SEARCH_PROJECTION.ensure_indexes(search)
    for batch, found in documents(customers, operator):
        collection.insert_many(batch, ordered=False)
        search.insert_many(found, ordered=False)
    client.close()
