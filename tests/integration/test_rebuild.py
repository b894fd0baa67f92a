"""Rebuilding customer_360 from the event stores while live events keep flowing through the real
relay, broker and projector."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from contracts import rpc
from crm_shared.auth import Caller
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import CrmApplication, sqlite_env
from crm_shared.projector import ProjectorRunner
from crm_shared.relay import Relay
from services.analytics.catalog import ReadModelCatalog
from services.analytics.customer_360 import applied_versions, project, public_view
from services.analytics.rebuild import Rebuilder
from services.analytics.store import CUSTOMER_360, CUSTOMER_360_PROJECTION, Customer360Store
from services.customer.application import CustomerApplication
from services.sales.application import SalesApplication
from services.service_desk.application import ServiceDeskApplication
from tests.integration.test_event_store import KnownCustomers
from tests.support import customer_payload, sales_force, wait_until

SALES_FORCE = sales_force()


class Writer:
    """Registers customers and sells them policies until stopped, like agents at work."""

    def __init__(
        self,
        customers: CustomerApplication,
        sales: SalesApplication,
        desk: ServiceDeskApplication,
        caller: Caller,
    ) -> None:
        self.customers, self.sales, self.desk, self.caller = customers, sales, desk, caller
        self.owners: dict[str, str] = {}
        self.stop = threading.Event()

    def one(self) -> None:
        def meta() -> CommandMeta:  # every command has an id of its own
            return CommandMeta.new(self.caller)

        data = rpc.RegisterCustomer().load(customer_payload())
        customer_id = self.customers.register_customer(data, meta(), SALES_FORCE)["customer_id"]
        self.owners[customer_id] = data["owning_agent_id"]
        sale = rpc.SellPolicy().load(
            {
                "customer_id": customer_id,
                "product": "auto",
                "annual_premium": "880.00",
                "start_date": "2027-01-01",
                "term_years": 1,
            }
        )
        self.sales.sell_policy(sale, meta(), KnownCustomers(self.owners), self.sales)
        # A complaint opened and closed: an aggregate with two versions, so a live event can
        # overtake its aggregate's earlier version in the replay.
        complaint = rpc.OpenComplaint().load(
            {
                "customer_id": customer_id,
                "channel": "sms",
                "category": "billing",
                "priority": "ordinary",
                "description": "late notice",
            }
        )
        ticket = self.desk.open_complaint(complaint, meta(), KnownCustomers(self.owners))
        self.desk.close_complaint(
            {"ticket_id": uuid.UUID(ticket["ticket_id"]), "resolution": "explained", "satisfaction": 4},
            meta(),
        )

    def run(self) -> None:
        while not self.stop.is_set():
            self.one()


def fold_all(sources: list[CrmApplication]) -> dict[str, dict]:
    docs: dict[str, dict] = {}
    for source in sources:
        for batch in source.notifications(0):
            for n in batch:
                if (m := source.envelope(n)) is not None:
                    cid = m["payload"]["customer_id"]
                    docs[cid] = project(docs.get(cid), m) or docs[cid]
    return docs


# The rebuild of this test got slower with item versions (array filters and $all guards cost
# SecantusDB more per write): under a full run it came close to the suite's 300 s per test. To be
# profiled (see the issue 12 note); until then it gets the time it needs.
@pytest.mark.timeout(600)
def test_rebuild_under_live_traffic_loses_nothing_and_doubles_nothing(
    tmp_path: Path, amqp_uri: str, database, operator: Caller
) -> None:
    customers = CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"))
    sales = SalesApplication(env=sqlite_env(tmp_path / "sales.sqlite"))
    desk = ServiceDeskApplication(env=sqlite_env(tmp_path / "service_desk.sqlite"))
    sources: list[CrmApplication] = [customers, sales, desk]
    writer = Writer(customers, sales, desk, operator)
    for _ in range(150):
        writer.one()

    store = Customer360Store(database, ReadModelCatalog(database, ttl=0.2))
    queue = f"test.rebuild.{uuid.uuid4().hex[:8]}"
    projector = ProjectorRunner(amqp_uri, queue, store)
    with Connection(amqp_uri) as conn:
        projector.declare(conn)
    stop_relays = threading.Event()
    threads = [threading.Thread(target=projector.run, daemon=True)]
    threads += [
        threading.Thread(target=Relay(s, amqp_uri).run, args=(stop_relays,), daemon=True) for s in sources
    ]
    for t in threads:
        t.start()
    wait_until(
        lambda: database[CUSTOMER_360].count_documents({}) == 150,
        timeout=60,
        what="the live projection of the first customers",
    )

    live = threading.Thread(target=writer.run, daemon=True)
    live.start()
    progressed: list[int] = []
    catalog = ReadModelCatalog(database, ttl=0.2)
    switch = catalog.switch

    def slow_switch(model: str, fresh: str) -> str:
        # Widen the window between the replay's last read and the switch, where only the
        # projector's writes to both collections keep the fresh one complete.
        threading.Event().wait(1.5)
        return switch(model, fresh)

    catalog.switch = slow_switch  # type: ignore[method-assign]
    rebuilder = Rebuilder(database, sources, batch_size=40, catalog=catalog)
    summary = rebuilder.rebuild([CUSTOMER_360_PROJECTION], progressed.append)
    writer.stop.set()
    live.join()

    expected = fold_all(sources)
    assert len(expected) > 150  # the writer kept writing during the rebuild
    rebuilt = summary.model(CUSTOMER_360)
    assert rebuilt.collection != CUSTOMER_360 and rebuilt.replaced == CUSTOMER_360
    assert CUSTOMER_360 not in database.list_collection_names()
    assert sum(progressed) == summary.events_read

    def difference(doc: dict | None, want: dict) -> str | None:
        """What keeps a served document from the history's (every event applied exactly once)."""
        if doc is None:
            return "missing"
        served, wanted = public_view(doc), public_view(want)
        for name in sorted(set(served) | set(wanted)):
            if served.get(name) != wanted.get(name):
                return f"{name}: served {served.get(name)!r}, history {wanted.get(name)!r}"
        if applied_versions(doc) != applied_versions(want):
            return f"versions: served {applied_versions(doc)}, history {applied_versions(want)}"
        if doc["revision"] != want["revision"]:
            return f"revision: served {doc['revision']}, history {want['revision']}"
        return None

    def converged() -> bool:
        served = {d["_id"]: d for d in store.collection().find({})}
        differences.clear()
        differences.update(
            {cid: d for cid, want in expected.items() if (d := difference(served.get(cid), want))}
        )
        differences.update({cid: "not in the history" for cid in served if cid not in expected})
        return not differences

    differences: dict[str, str] = {}
    # Generous: under a full test run the projector shares two cores with everything else.
    try:
        wait_until(converged, timeout=180, interval=0.5, what="the rebuilt view to equal the history")
    except AssertionError:
        raise AssertionError(
            f"{len(differences)} documents differ, e.g. {list(differences.items())[:3]}"
        ) from None
    stop_relays.set()
    projector.stop()


def test_a_second_rebuild_waits_for_the_first_unless_forced(database, tmp_path: Path) -> None:
    customers = CustomerApplication(env=sqlite_env(tmp_path / "customer.sqlite"))
    catalog = ReadModelCatalog(database, ttl=0.05)
    catalog.begin_rebuild(CUSTOMER_360, "customer_360_dead")
    rebuilder = Rebuilder(database, [customers], catalog=catalog)
    with pytest.raises(RuntimeError, match="already under way"):
        rebuilder.rebuild([CUSTOMER_360_PROJECTION])
    summary = rebuilder.rebuild([CUSTOMER_360_PROJECTION], force=True)
    assert catalog.targets_uncached(CUSTOMER_360).active == summary.model(CUSTOMER_360).collection
    assert catalog.targets_uncached(CUSTOMER_360).building is None
