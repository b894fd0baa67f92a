"""A CRM of its own for fault injection: processes get killed and the broker stopped here."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kombu import Connection

from crm_cli.client import CrmClient
from crm_cli.system import System, free_port, fresh_vhost
from crm_shared.auth import Caller, Role
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.store import CUSTOMER_360
from tests.e2e.conftest import Stores
from tests.support import customer_payload, staff_over_rpc, wait_until

OPERATOR = Caller("op-faults", Role.OPERATOR)


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with fresh_vhost() as amqp_uri:
        run_dir = tmp_path_factory.mktemp("crm-faults")
        with System(run_dir, amqp_uri, mongo_port=free_port()).running() as system:
            with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
                staff_over_rpc(client)
            yield system


@pytest.fixture(scope="module")
def stores(crm: System) -> Stores:
    return Stores(crm.run_dir / "data")


@dataclass
class Load:
    """Clients registering customers and selling each a policy until ``total`` commands went out.
    Errors (timeouts while a process is down) are counted, never fatal; a client whose connection
    broke is replaced."""

    system: System
    total: int
    clients: int = 4
    accepted: list[str] = field(default_factory=list)
    sold: list[str] = field(default_factory=list)
    failures: int = 0
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self) -> bool:
        with self.lock:
            if self.sent >= self.total:
                return False
            self.sent += 1
            return True

    def _client(self) -> CrmClient:
        return CrmClient.for_caller(self.system.amqp_uri, OPERATOR, self.system.signer, timeout=8)

    def _work(self) -> None:
        client: CrmClient | None = None
        while self._next():
            try:
                if client is None:
                    client = self._client().__enter__()
                reply = client.call("customer", "register_customer", customer_payload())
                if not reply["ok"]:
                    raise RuntimeError(reply["error"])
                customer_id = reply["result"]["customer_id"]
                with self.lock:
                    self.accepted.append(customer_id)
                sale = client.call(
                    "sales",
                    "sell_policy",
                    {
                        "customer_id": customer_id,
                        "product": "health",
                        "annual_premium": "321.00",
                        "start_date": "2027-03-01",
                        "term_years": 2,
                    },
                )
                if sale["ok"]:
                    with self.lock:
                        self.sold.append(sale["result"]["policy_number"])
            except Exception:
                with self.lock:
                    self.failures += 1
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.__exit__(None, None, None)
                client = None
                time.sleep(0.2)
        if client is not None:
            client.__exit__(None, None, None)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.clients)]
        for t in threads:
            t.start()
        return threads

    def wait_for(self, accepted: int, timeout: float = 120) -> None:
        wait_until(
            lambda: len(self.accepted) >= accepted, timeout=timeout, what=f"{accepted} accepted commands"
        )


def read_model(system: System, model: str = CUSTOMER_360):
    client = mongo_client(system.mongo_uri)
    database = client["crm"]
    return database[ReadModelCatalog(database).targets_uncached(model).active]


def assert_converged(system: System, stores: Stores, load: Load, timeout: float = 180) -> None:
    """The 360 view holds exactly what the event stores hold: every stored customer and policy,
    each applied once; every command that was acknowledged is among them."""
    registered = {e["aggregate_id"] for e in stores.events("customer", "customer.registered")}
    sold = stores.events("sales", "sales.policy_sold")
    assert set(load.accepted) <= registered
    assert set(load.sold) <= {e["payload"]["policy_number"] for e in sold}
    collection = read_model(system)

    def counts() -> tuple[int, int, int]:
        total = list(
            collection.aggregate(
                [
                    {
                        "$group": {
                            "_id": None,
                            "docs": {"$sum": 1},
                            "policies": {"$sum": "$policy_count"},
                            "revisions": {"$sum": "$revision"},
                        }
                    }
                ]
            )
        )
        if not total:
            return (0, 0, 0)
        return (total[0]["docs"], total[0]["policies"], total[0]["revisions"])

    expected = (len(registered), len(sold), len(registered) + len(sold))
    wait_until(
        lambda: counts() == expected,
        timeout=timeout,
        interval=0.5,
        what=f"the 360 view to hold {expected} (docs, policies, applied events)",
    )
    # The other read models: an entry per event on the timeline (keyed by event id, so the count
    # says nothing is missing and nothing doubled), a search document per customer.
    for model, count in (
        ("customer_timeline", len(registered) + len(sold)),
        ("customer_search", len(registered)),
    ):
        wait_until(
            lambda m=model, c=count: read_model(system, m).count_documents({}) == c,
            timeout=timeout,
            interval=0.5,
            what=f"{model} to hold {count} documents",
        )


def rabbitmq_app(action: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", action], check=True, capture_output=True, timeout=120)


def broker_up(amqp_uri: str) -> bool:
    try:
        with Connection(amqp_uri, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False
