"""The same story with every write service on PostgreSQL event stores (under nameko's eventlet),
including events stored while a relay is down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from crm_cli.client import CrmClient
from crm_cli.system import System, free_port
from tests.conftest import drop_postgres_database
from tests.e2e.conftest import COMPLAINT, OPERATOR, SALE, ok
from tests.support import customer_payload, staff_over_rpc, wait_until


@pytest.fixture(scope="module")
def pg_system(amqp_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    from crm_cli.system import fresh_vhost

    database = f"crm_e2e_{uuid.uuid4().hex[:8]}"
    with fresh_vhost() as private_uri:
        crm = System(
            tmp_path_factory.mktemp("crm-pg"),
            private_uri,
            mongo_port=free_port(),
            event_store="postgres",
            extra_env={"POSTGRES_DBNAME": database},
        )
        try:
            with crm.running():
                with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer) as client:
                    staff_over_rpc(client)
                yield crm
        finally:
            drop_postgres_database(database)


def test_the_story_on_postgresql_event_stores(pg_system: System) -> None:
    with CrmClient.for_caller(pg_system.amqp_uri, OPERATOR, pg_system.signer) as client:
        payload = customer_payload()
        customer_id = ok(client.call("customer", "register_customer", payload))["customer_id"]
        again = client.call("customer", "register_customer", payload)
        assert again["error"]["existing_customer_id"] == customer_id
        ok(client.call("sales", "sell_policy", {"customer_id": customer_id, **SALE}))
        pg_system.stop(["relay-sales"])
        ok(client.call("sales", "sell_policy", {"customer_id": customer_id, **SALE}))
        pg_system.start(["relay-sales"])
        ticket = ok(client.call("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT}))[
            "ticket_id"
        ]
        ok(
            client.call(
                "service_desk",
                "close_complaint",
                {"ticket_id": ticket, "resolution": "fixed", "satisfaction": 5},
            )
        )

        def complete() -> dict | None:
            reply = client.call("analytics", "get_customer_360", {"customer_id": customer_id})
            view = reply.get("result")
            if (
                view
                and view["policy_count"] == 2
                and view["complaints"]
                and view["complaints"][0]["status"] == "closed"
            ):
                return view
            return None

        view = wait_until(complete, timeout=60, what="the 360 view on PostgreSQL stores")
        assert Decimal(view["total_annual_premium"]) == 2 * Decimal(SALE["annual_premium"])
        assert view["complaints"][0]["satisfaction"] == 5
