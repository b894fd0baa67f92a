"""``crm verify analytics``: the customer_360 read model checked against real SQLite event stores,
on a real SecantusDB, with damage done behind the projector's back, and repaired."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts import rpc
from crm_cli.system import bin_path, free_port, wait_for_port
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import CrmApplication, sqlite_env
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.customer_360 import cents, empty_document, public_view
from services.analytics.projections import raise_first
from services.analytics.store import CUSTOMER_360, WRITE_ID, apply_together, compare_and_set
from services.analytics.verify import Phase, RebuildUnderWay, Verifier, VerifySummary
from services.customer.application import CustomerApplication
from services.sales.application import SalesApplication
from services.service_desk.application import ServiceDeskApplication
from tests.integration.test_event_store import KnownCustomers
from tests.integration.test_rebuild import Writer, fold_all
from tests.support import crm_verify_json

CUSTOMERS = 200
OPERATOR = Caller("op-1", Role.OPERATOR)


@dataclass
class World:
    data_dir: Path
    sources: list[CrmApplication]
    writer: Writer
    # The read model projected from the stores at these positions, copied into each test's database.
    projected: tuple[list[int], list[dict]] | None = None

    def sell(self, customer_id: str, premium: str = "1200.00") -> None:
        sale = rpc.SellPolicy().load(
            {
                "customer_id": customer_id,
                "product": "life",
                "annual_premium": premium,
                "start_date": "2027-03-01",
                "term_years": 10,
            }
        )
        self.writer.sales.sell_policy(
            sale, CommandMeta.new(OPERATOR), KnownCustomers(self.writer.owners), self.writer.sales
        )

    def complain(self, customer_id: str) -> None:
        complaint = rpc.OpenComplaint().load(
            {
                "customer_id": customer_id,
                "channel": "phone",
                "category": "claims",
                "priority": "urgent",
                "description": "no answer",
            }
        )
        self.writer.desk.open_complaint(
            complaint, CommandMeta.new(OPERATOR), KnownCustomers(self.writer.owners)
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A few hundred customers, each with a policy and a closed complaint; some with a second
    policy, some with an open complaint. Tests may add to it: each projects it afresh."""
    data_dir = tmp_path_factory.mktemp("verify")
    customers = CustomerApplication(env=sqlite_env(data_dir / "customer.sqlite"))
    sales = SalesApplication(env=sqlite_env(data_dir / "sales.sqlite"))
    desk = ServiceDeskApplication(env=sqlite_env(data_dir / "service_desk.sqlite"))
    world = World(data_dir, [customers, sales, desk], Writer(customers, sales, desk, OPERATOR))
    for _ in range(CUSTOMERS):
        world.writer.one()
    for i, customer_id in enumerate(list(world.writer.owners)):
        if i % 5 == 0:
            world.sell(customer_id, "310.50")
        if i % 7 == 0:
            world.complain(customer_id)
    return world


def project_all(world: World, collection: Any) -> dict[str, dict]:
    """The read model as the projector makes it (projected once per state of the stores, copied
    after that); returns it as stored."""
    positions = [s.max_position() for s in world.sources]
    if world.projected is None or world.projected[0] != positions:
        for source in world.sources:
            for batch in source.notifications(0, batch_size=100):
                raise_first(
                    apply_together(collection, [m for n in batch if (m := source.envelope(n)) is not None])
                )
        world.projected = (positions, list(collection.find({})))
    else:
        collection.insert_many(copy.deepcopy(world.projected[1]))
    return snapshot(collection)


def snapshot(collection: Any) -> dict[str, dict]:
    return {d["_id"]: d for d in collection.find({})}


def without_token(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != WRITE_ID}


def verify(world: World, database: Any, *, repair: bool = False, **options: Any) -> VerifySummary:
    options = {"batch_size": 100, "settle_seconds": 0.2, **options}
    return Verifier(database, world.sources, **options).verify_customer_360(repair=repair)


def with_policies(docs: dict[str, dict], count: int) -> list[str]:
    return [cid for cid, d in docs.items() if len(d["policies"]) == count]


def test_a_clean_read_model_verifies_clean(world: World, database: Any) -> None:
    docs = project_all(world, database[CUSTOMER_360])
    assert len(docs) == len(world.writer.owners) >= CUSTOMERS
    assert all(d.get(WRITE_ID) for d in docs.values())  # every write carries a token
    assert all(WRITE_ID not in public_view(d) for d in docs.values())
    seen: dict[str, int] = {}

    def progress(phase: Phase, n: int) -> None:
        seen[phase.unit] = seen.get(phase.unit, 0) + n

    summary = verify(world, database, progress=progress)

    customer_events = sum(
        1 for s in world.sources for b in s.notifications(0) for n in b if s.envelope(n) is not None
    )
    assert summary.customers_differing == summary.remaining == summary.repaired == 0
    assert summary.examples == []
    assert summary.collection == CUSTOMER_360
    assert summary.documents_checked == len(docs)
    assert summary.events_checked == customer_events
    assert summary.events_read == sum(s.max_position() for s in world.sources) > customer_events
    assert seen == {"events": summary.events_read, "documents": summary.documents_checked}
    assert snapshot(database[CUSTOMER_360]) == docs  # verifying writes nothing


def test_repair_restores_damaged_documents_and_touches_no_other(world: World, database: Any) -> None:
    collection = database[CUSTOMER_360]
    before = project_all(world, collection)
    two_policies = [cid for cid in with_policies(before, 2) if len(before[cid]["tickets"]) == 1]
    open_and_closed = [cid for cid in with_policies(before, 1) if len(before[cid]["tickets"]) == 2]
    deleted = [cid for cid in before if cid not in two_policies and cid not in open_and_closed][:3]
    for customer_id in deleted:
        collection.delete_one({"_id": customer_id})
    # A sold policy lost, consistently enough that only the versions give it away.
    lost_policy = two_policies[0]
    doc = before[lost_policy]
    policy = doc["policies"][-1]
    collection.update_one(
        {"_id": lost_policy},
        {
            "$pull": {"policies": {"policy_number": policy["policy_number"]}},  # its version goes with it
            "$set": {
                "revision": doc["revision"] - 1,
                "policy_count": 1,
                "total_annual_premium_cents": doc["total_annual_premium_cents"]
                - cents(policy["annual_premium"]),
            },
        },
    )
    # A closed complaint reopened: its version 2 lost.
    reopened = open_and_closed[0]
    doc = before[reopened]
    ticket = next(t["ticket_id"] for t in doc["tickets"] if t["v"] == 2)
    complaints = [
        dict(c, status="open", closed_at=None, v=1) if c["ticket_id"] == ticket else c for c in doc["tickets"]
    ]
    collection.update_one(
        {"_id": reopened},
        {
            "$set": {
                "revision": doc["revision"] - 1,
                "tickets": complaints,
                "open_complaint_count": doc["open_complaint_count"] + 1,
                "open_ticket_count": doc["open_ticket_count"] + 1,
            }
        },
    )
    damaged = snapshot(collection)

    report = verify(world, database)
    assert report.customers_differing == report.remaining == 5
    assert (report.missing_document, report.missing_versions, report.extra_data) == (3, 2, 0)
    assert {e["customer_id"] for e in report.examples} == {*deleted, lost_policy, reopened}
    assert snapshot(collection) == damaged  # without --repair nothing is written

    summary = verify(world, database, repair=True)
    assert summary.customers_differing == summary.repaired == 5 and summary.remaining == 0
    after = snapshot(collection)
    assert after.keys() == before.keys()
    for customer_id, doc in before.items():
        if customer_id in (*deleted, lost_policy, reopened):
            assert without_token(after[customer_id]) == without_token(doc)
            assert after[customer_id][WRITE_ID] != doc[WRITE_ID]
        else:
            assert after[customer_id] == doc  # not rewritten: the same write token
    assert verify(world, database).customers_differing == 0


def test_forged_and_corrupted_documents_are_reported_and_repaired(world: World, database: Any) -> None:
    collection = database[CUSTOMER_360]
    before = project_all(world, collection)
    real = list(before)
    # A customer no store knows, with an aggregate no store has.
    forged = empty_document(str(uuid.uuid4()))
    forged.update(
        tickets=[{"ticket_id": "T-0", "aggregate_id": str(uuid.uuid4()), "v": 1}],
        revision=1,
        profile={"full_name": "Nobody"},
    )
    # Another unknown customer holding a real customer's policy.
    owner = next(c for c in real if before[c]["policies"])
    squatter = empty_document(str(uuid.uuid4()))
    squatter.update(policies=[before[owner]["policies"][0]], revision=1, profile=before[owner]["profile"])
    empty = empty_document(str(uuid.uuid4()))  # holds nothing at all
    collection.insert_many([forged, squatter, empty, {"_id": 42, "note": "not a customer"}])
    # A version beyond the store's, and a revision counting an event twice.
    beyond, doubled = real[1], real[2]
    collection.update_one({"_id": beyond}, {"$inc": {"record_version": 1, "revision": 1}})
    collection.update_one({"_id": doubled}, {"$inc": {"revision": 1}})

    report = verify(world, database)
    assert report.customers_differing == report.extra_data == 6
    assert report.missing_document == report.missing_versions == 0
    reasons = {e["customer_id"]: " ".join(e["reasons"]) for e in report.examples}
    assert "in no event store" in reasons[forged["_id"]]
    assert f"belongs to customer {owner}" in reasons[squatter["_id"]]
    assert "holds no event" in reasons[empty["_id"]]
    assert "not a customer id" in reasons["42"]
    assert "store has v1" in reasons[beyond]
    assert "revision" in reasons[doubled]

    summary = verify(world, database, repair=True)
    assert summary.repaired == 6 and summary.remaining == 0
    after = snapshot(collection)
    assert after.keys() == before.keys()  # the forged ones are gone
    for customer_id, doc in before.items():
        if customer_id in (beyond, doubled):
            assert without_token(after[customer_id]) == without_token(doc)
        else:
            assert after[customer_id] == doc
    assert verify(world, database).customers_differing == 0


def test_a_customer_the_projector_is_behind_on_is_given_time_to_settle(world: World, database: Any) -> None:
    collection = database[CUSTOMER_360]
    project_all(world, collection)
    known = set(world.writer.owners)
    world.writer.one()  # stored, not yet projected
    (newcomer,) = set(world.writer.owners) - known

    lagging = verify(world, database, settle_seconds=0.2)
    assert lagging.customers_differing == lagging.missing_document == 1
    assert lagging.examples[0]["customer_id"] == newcomer

    caught_up: list[str] = []

    def projector_catches_up(phase: Phase, _n: int) -> None:
        # The forward pass is over and found the newcomer's document missing; now the projector
        # delivers it, within the settle period.
        if phase.unit == "documents" and not caught_up:
            caught_up.append(newcomer)
            project_all(world, collection)

    summary = verify(world, database, settle_seconds=10, progress=projector_catches_up)
    assert caught_up and summary.customers_differing == 0
    assert summary.seconds < 10


def test_a_repair_keeps_what_the_projector_writes_meanwhile(world: World, database: Any) -> None:
    collection = database[CUSTOMER_360]
    before = project_all(world, collection)
    customer_id = with_policies(before, 1)[0]
    collection.delete_one({"_id": customer_id})
    sold: list[int] = []

    def live_sale(phase: Phase, n: int) -> None:
        # Once the repair has read every store, a policy is sold and the projector applies it:
        # the repair's history lacks it, the document it is about to replace has it.
        if not phase.label.startswith("repairing") or n == 0:  # 0: the phase begins
            return
        sold.append(n)  # one batch of one store (every store fits one batch here)
        if sum(sold) >= phase.total and len(sold) == len(world.sources):
            sales = world.sources[1]
            position = sales.max_position()
            world.sell(customer_id, "99.00")
            for batch in sales.notifications(position):
                raise_first(apply_together(collection, [m for m in map(sales.envelope, batch) if m]))
            assert len(collection.find_one({"_id": customer_id})["policies"]) == 1

    summary = verify(world, database, repair=True, batch_size=100_000, progress=live_sale)
    assert len(sold) == len(world.sources) and summary.repaired == 1
    doc = collection.find_one({"_id": customer_id})
    expected = fold_all(world.sources)[customer_id]
    assert [p["annual_premium"] for p in doc["policies"]] == ["880.00", "99.00"]
    assert without_token(doc) == without_token(expected)
    assert verify(world, database).customers_differing == 0


def test_the_write_token_defeats_aba(database: Any) -> None:
    collection = database[CUSTOMER_360]
    base = empty_document("c-1")
    assert compare_and_set(collection, None, dict(base))
    read_by_projector = collection.find_one({"_id": "c-1"})
    # A repair writes a different document with the same revision...
    repaired = dict(base, owning_agent_id="A-2")
    assert compare_and_set(collection, collection.find_one({"_id": "c-1"}), repaired)
    assert collection.find_one({"_id": "c-1"})["revision"] == read_by_projector["revision"]
    # ...so the projector's write from what it read before must fail, not overwrite the repair.
    assert not compare_and_set(collection, read_by_projector, dict(base, owning_agent_id="A-3"))
    assert collection.find_one({"_id": "c-1"})["owning_agent_id"] == "A-2"
    # A document from before the token existed is matched by its missing token.
    collection.insert_one(empty_document("c-2"))
    old = collection.find_one({"_id": "c-2"})
    assert WRITE_ID not in old
    assert compare_and_set(collection, old, dict(old, owning_agent_id="A-4"))
    assert collection.find_one({"_id": "c-2"})[WRITE_ID]


@contextmanager
def secantus_on_disk(storage: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    command = [bin_path("secantusd-py"), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--storage-path", str(storage), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30)
        yield process, f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    finally:
        if process.poll() is None:
            process.kill()  # its storage is thrown away: no need to wait for a clean shutdown
            process.wait(10)


def test_acknowledged_writes_survive_a_kill_9_of_the_database(tmp_path: Path) -> None:
    # Without the journaled write concern some of these were lost (9 of 500 when measured).
    with secantus_on_disk(tmp_path) as (process, uri):
        client = mongo_client(uri)
        for i in range(300):
            assert compare_and_set(client["crm"][CUSTOMER_360], None, empty_document(f"c-{i}"))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        client.close()
    with secantus_on_disk(tmp_path) as (_, uri):
        client = mongo_client(uri)
        assert client["crm"][CUSTOMER_360].count_documents({}) == 300
        client.close()


def test_verify_refuses_while_a_rebuild_is_under_way(world: World, database: Any) -> None:
    ReadModelCatalog(database).begin_rebuild(CUSTOMER_360, "customer_360_fresh")
    with pytest.raises(RebuildUnderWay, match="customer_360_fresh"):
        verify(world, database)


def run_cli(world: World, database: Any, mongo_uri: str, *flags: str) -> tuple[int, dict]:
    env = {**os.environ, "MONGO_DATABASE": database.name}
    return crm_verify_json(world.data_dir, mongo_uri, "--settle-seconds", "0.2", *flags, env=env)


def test_the_cli_reports_differences_and_repairs_them(world: World, database: Any, mongo_uri: str) -> None:
    collection = database[CUSTOMER_360]
    before = project_all(world, collection)
    customer_id = next(iter(before))
    collection.delete_one({"_id": customer_id})

    code, report = run_cli(world, database, mongo_uri)
    assert code == 1
    assert report["customers_differing"] == report["missing_document"] == report["remaining"] == 1
    assert report["examples"][0]["customer_id"] == customer_id

    code, repaired = run_cli(world, database, mongo_uri, "--repair")
    assert code == 0
    assert repaired["repaired"] == 1 and repaired["remaining"] == 0
    assert without_token(collection.find_one({"_id": customer_id})) == without_token(before[customer_id])
