from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Queue

from crm_cli.client import CrmClient
from crm_cli.system import System, free_port, fresh_vhost
from crm_shared.auth import Caller, Role
from crm_shared.eventstore import CrmApplication, sqlite_env
from crm_shared.messaging import events_exchange
from crm_shared.relay import APPLICATIONS, application_class
from tests.support import customer_payload, staff_over_rpc

OPERATOR = Caller("op-e2e", Role.OPERATOR)
CONTRACT_TAP = "e2e.contract-tap"


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole CRM as real processes on a RabbitMQ vhost of its own (so that events other tests
    publish never reach its process managers, nor its events theirs) and a SecantusDB."""
    run_dir = tmp_path_factory.mktemp("crm-system")
    with fresh_vhost() as amqp_uri:
        with Connection(amqp_uri) as conn:
            events_exchange.declare(channel=conn.default_channel)
            Queue(CONTRACT_TAP, exchange=events_exchange, routing_key="#", durable=True).bind(
                conn.default_channel
            ).declare()
        # Every process reads its time from this file while a test holds it (test_service_desk),
        # and the system clock otherwise.
        clock_file = {"CRM_TEST_CLOCK_FILE": str(run_dir / "clock")}
        with System(run_dir, amqp_uri, mongo_port=free_port(), extra_env=clock_file).running() as crm:
            with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer, timeout=30) as client:
                staff_over_rpc(client)
            yield crm


@pytest.fixture(scope="session")
def rpc(system: System) -> Callable[[Caller], AbstractContextManager[CrmClient]]:
    def client_for(caller: Caller = OPERATOR) -> AbstractContextManager[CrmClient]:
        return CrmClient.for_caller(system.amqp_uri, caller, system.signer, timeout=30)

    return client_for


@pytest.fixture(scope="session")
def admin_rpc(rpc: Callable[[Caller], AbstractContextManager[CrmClient]]) -> Iterator[CrmClient]:
    with rpc(Caller("admin-e2e", Role.ADMIN)) as client:
        yield client


@pytest.fixture(scope="session")
def operator_rpc(rpc: Callable[[Caller], AbstractContextManager[CrmClient]]) -> Iterator[CrmClient]:
    with rpc(OPERATOR) as client:
        yield client


class Stores:
    """Read-only views of the three event stores the services write to."""

    def __init__(self, data_dir: Path) -> None:
        self.apps: dict[str, CrmApplication] = {
            context: application_class(context)(env=sqlite_env(data_dir / f"{context}.sqlite"))
            for context in APPLICATIONS
        }

    def positions(self) -> dict[str, int]:
        """Per store, the last position a caller's command appended. What the system's own
        processes append by themselves (process managers, timers, the hand-over: ``service:...``
        actors) is left out: it follows earlier commands at its own pace, so "a refused command
        appended nothing" compares these."""
        return {name: self._last_by_a_caller(app) for name, app in self.apps.items()}

    @staticmethod
    def _last_by_a_caller(app: CrmApplication) -> int:
        top = app.max_position()
        while top > 0:
            batch = app.recorder.select_notifications(
                start=max(0, top - 100), limit=100, inclusive_of_start=False
            )
            app.before_decoding(batch)
            for notification in reversed(batch):
                if notification.id > top:
                    continue
                event: Any = app.mapper.to_domain_event(notification)
                actor = event.meta["actor"]
                if not str(actor["user_id"]).startswith("service:"):
                    return int(notification.id)
            top = max(0, top - 100)
        return 0

    def events(self, context: str, event_type: str) -> list[dict]:
        app = self.apps[context]
        return [
            m
            for batch in app.notifications(0)
            for n in batch
            if (m := app.envelope(n)) and m["event_type"] == event_type
        ]


@pytest.fixture(scope="session")
def stores(system: System) -> Stores:
    return Stores(system.run_dir / "data")


def ok(reply: dict) -> dict:
    assert reply.get("ok") is True, json.dumps(reply, indent=2)
    return reply["result"]


def new_id() -> str:
    return str(uuid.uuid4())


SALE = {"product": "life", "annual_premium": "1000.00", "start_date": "2027-01-01", "term_years": 5}
COMPLAINT = {
    "channel": "email",
    "category": "billing",
    "priority": "ordinary",
    "description": "wrong premium",
}
CLOSE = {"resolution": "explained", "satisfaction": 3}


@pytest.fixture(scope="session")
def known(operator_rpc: CrmClient) -> dict[str, str]:
    """A customer, a policy and a ticket that exist, for the cases that need them."""
    customer_id = ok(operator_rpc.call("customer", "register_customer", customer_payload()))["customer_id"]
    policy = ok(operator_rpc.call("sales", "sell_policy", {"customer_id": customer_id, **SALE}))
    ticket = ok(
        operator_rpc.call("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT})
    )
    campaign = ok(
        operator_rpc.call(
            "sales",
            "create_campaign",
            {
                "name": "A draft",
                "purpose": "cross_sell",
                "products": ["health"],
                "offer": "Health cover",
                "target": {"scheme": "value_tier", "segment": "vip"},
                "channels": ["sms"],
                "start_date": "2027-01-04",
                "end_date": "2027-01-29",
                "budget": "100.00",
            },
        )
    )
    return {
        "customer_id": customer_id,
        "policy_number": policy["policy_number"],
        "ticket_id": ticket["ticket_id"],
        "campaign_id": campaign["campaign_id"],
    }
