"""Fault injection on real processes: kill -9, a broker outage, poison messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable

from kombu import Connection

from crm_cli.system import REPO, System
from crm_shared.messaging import dead_letter_exchange, encode, events_exchange
from crm_shared.relay import Relay
from services.analytics.catalog import ReadModelCatalog
from services.analytics.customer_360 import applied_versions
from services.analytics.store import CUSTOMER_360
from tests.e2e.conftest import Stores
from tests.faults.conftest import (
    Load,
    assert_converged,
    broker_up,
    rabbitmq_app,
    read_model,
)
from tests.support import crm_verify_json, wait_until


def kill_9(system: System, name: str) -> None:
    process = system.processes[name].process
    assert process is not None and process.poll() is None, f"{name} is not running"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    system.processes[name].stop()


def test_kill_9_the_projector_mid_stream(crm: System, stores: Stores) -> None:
    load = Load(crm, total=1500)
    threads = load.start()
    load.wait_for(300)
    kill_9(crm, "projector")
    load.wait_for(600)
    crm.start(["projector"])
    for t in threads:
        t.join(300)
    assert_converged(crm, stores, load)


def test_kill_9_the_projector_during_a_rebuild_of_every_read_model_under_load(
    crm: System, stores: Stores
) -> None:
    load = Load(crm, total=1200)
    threads = load.start()
    load.wait_for(200)
    rebuild = subprocess.Popen(
        [sys.executable, "-m", "crm_cli.main", "rebuild", "all", "--batch-size", "50", "--json"],
        cwd=REPO,
        env={**crm.operator_env(), "CRM_DATA_DIR": str(crm.run_dir / "data"), "MONGO_URI": crm.mongo_uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = read_model(crm).database
    catalog = ReadModelCatalog(database)
    wait_until(
        lambda: all(catalog.targets_uncached(m).building for m in ("customer_360", "customer_timeline")),
        timeout=60,
        what="the rebuild to start",
    )
    kill_9(crm, "projector")  # it dies writing to the serving and the fresh collections
    load.wait_for(700)
    crm.start(["projector"])
    out, err = rebuild.communicate(timeout=600)
    assert rebuild.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert {m["model"] for m in summary["models"]} == {
        "customer_360",
        "customer_timeline",
        "customer_search",
        "business_facts",
        "audit_log",
    }
    for t in threads:
        t.join(300)
    assert_converged(crm, stores, load)


def test_kill_9_a_write_service_and_its_relay_between_storing_and_publishing(
    crm: System, stores: Stores
) -> None:
    load = Load(crm, total=1500)
    threads = load.start()
    load.wait_for(300)
    kill_9(crm, "relay-customer")  # stored events now wait unpublished
    load.wait_for(500)
    kill_9(crm, "customer")  # in-flight commands die with it; their callers time out
    kill_9(crm, "relay-sales")
    crm.start(["customer", "relay-customer", "relay-sales"])
    for t in threads:
        t.join(300)
    assert_converged(crm, stores, load)
    assert load.failures < load.total  # most commands still got through


def backlog_then_kill_9_while_it_drains(
    crm: System,
    stopped: str,
    drained: Callable[[], int],
    unfinished: Callable[[], bool],
    kills: int = 3,
) -> Load:
    """Stop ``stopped``, let a backlog build behind it, then start it and kill -9 it each time
    ``drained()`` moves on, so that it dies with work in flight (a batch written but not
    acknowledged; published but not yet confirmed and recorded). ``unfinished()``, asked right
    after each kill, proves that at least one kill came before the backlog was through."""
    crm.stop([stopped])
    load = Load(crm, total=600)
    for t in load.start():
        t.join(300)
    cut_short = []
    try:
        for _ in range(kills):
            before = drained()
            crm.start([stopped])
            wait_until(lambda b=before: drained() > b, timeout=60, interval=0.005, what=f"{stopped} to start")
            kill_9(crm, stopped)
            cut_short.append(unfinished())
    finally:
        crm.start([stopped])  # whatever happened: the next test needs it
    assert any(cut_short), f"{stopped} was through its backlog before every kill"
    return load


def test_kill_9_the_projector_with_batches_applied_but_not_acknowledged(crm: System, stores: Stores) -> None:
    collection = read_model(crm)
    registered = stores.apps["customer"]

    def unfinished() -> bool:  # 3 stored events a customer: registration, id claim, command record
        return collection.estimated_document_count() < registered.max_position() // 3

    load = backlog_then_kill_9_while_it_drains(
        crm, "projector", lambda: collection.estimated_document_count(), unfinished
    )
    assert_converged(crm, stores, load)


def test_kill_9_the_relay_with_publishes_unconfirmed(crm: System, stores: Stores) -> None:
    customers = stores.apps["customer"]
    relay = Relay(customers, crm.amqp_uri)
    # Killed as soon as it records a confirmed batch: the next ones are in flight or unread.
    load = backlog_then_kill_9_while_it_drains(
        crm, "relay-customer", relay.position, lambda: relay.position() < customers.max_position()
    )
    assert_converged(crm, stores, load)


def test_a_broker_outage_during_load_heals_by_itself(crm: System, stores: Stores) -> None:
    load = Load(crm, total=1500)
    threads = load.start()
    try:
        load.wait_for(300)
        rabbitmq_app("stop_app")
        wait_until(lambda: not broker_up(crm.amqp_uri), timeout=60, what="the broker to stop")
        threading_event_wait(3)
    finally:
        rabbitmq_app("start_app")  # restore the broker whatever happened
        wait_until(lambda: broker_up(crm.amqp_uri), timeout=120, interval=0.5, what="the broker to come back")
    for t in threads:
        t.join(300)
    assert not crm.dead(), f"processes died instead of reconnecting: {crm.dead()}"
    crm.wait_ready()  # every service answers again, with no restart
    assert_converged(crm, stores, load)


def threading_event_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def crm_cli(system: System, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "crm_cli.main", "--amqp-uri", system.amqp_uri, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    return result.stdout


def test_a_malformed_message_is_dead_lettered_and_the_rest_flow_on(crm: System, stores: Stores) -> None:
    marker = str(uuid.uuid4())
    with Connection(crm.amqp_uri) as conn:
        producer = conn.Producer(exchange=events_exchange)
        producer.publish(
            b'{"event_type": "customer.registered", "oops": true}',
            routing_key="customer.registered",
            message_id=marker,
        )
    load = Load(crm, total=50, clients=2)
    for t in load.start():
        t.join(120)
    assert_converged(crm, stores, load)  # the events after the poison message were applied

    letters = json.loads(crm_cli(crm, "dead-letters", "list", "--json"))
    (letter,) = [d for d in letters if d["message_id"] == marker]
    assert "invalid message" in letter["reason"] and "envelope_version" in letter["reason"]
    assert "requeued 1 message(s)" in crm_cli(crm, "dead-letters", "requeue", "--message-id", marker)
    # Still malformed, so it comes straight back with its reason: requeue moved it through the
    # projector's queue again.
    wait_until(
        lambda: any(
            d["message_id"] == marker for d in json.loads(crm_cli(crm, "dead-letters", "list", "--json"))
        ),
        what="the poison message to return",
    )


def test_requeued_dead_letters_are_applied_once_their_cause_is_gone(crm: System, stores: Stores) -> None:
    """Events that failed for a reason since fixed (simulated: a customer's document is lost and
    its events are placed in the dead-letter queue) are applied after 'crm dead-letters requeue',
    in order, and the view again equals the stores."""
    (registered, *_) = stores.events("customer", "customer.registered")
    customer_id = registered["aggregate_id"]
    policies = [
        e for e in stores.events("sales", "sales.policy_sold") if e["payload"]["customer_id"] == customer_id
    ]
    collection = read_model(crm)
    before = collection.find_one({"_id": customer_id})
    collection.delete_one({"_id": customer_id})
    with Connection(crm.amqp_uri) as conn:
        producer = conn.Producer(exchange=dead_letter_exchange)
        for event in [registered, *policies]:
            producer.publish(
                encode(event),
                routing_key="analytics.customer_360",
                message_id=event["event_id"],
                headers={"x-crm-dead-letter-reason": "MongoDB write failed"},
            )
    assert "MongoDB write failed" in crm_cli(crm, "dead-letters", "list")
    ids = [arg for event in [registered, *policies] for arg in ("--message-id", event["event_id"])]
    assert f"requeued {1 + len(policies)} message(s)" in crm_cli(crm, "dead-letters", "requeue", *ids)
    restored = wait_until(
        lambda: (
            (doc := collection.find_one({"_id": customer_id}))
            and doc["policy_count"] == len(policies)
            and doc
        ),
        what="the requeued events to be applied",
    )
    assert restored["policies"] == before["policies"]
    assert applied_versions(restored) == applied_versions(before)


def test_kill_9_the_read_model_database_five_times_mid_stream_loses_nothing(
    crm: System, stores: Stores
) -> None:
    """Every read-model write is journaled before its message is acknowledged: documents that were
    in the database before a kill -9 are there after the restart, and the view converges."""
    from services.analytics.catalog import mongo_client

    def documents() -> dict[str, int]:
        client = mongo_client(crm.mongo_uri)
        try:
            database = client["crm"]
            collection = database[ReadModelCatalog(database).targets(CUSTOMER_360).active]
            return {d["_id"]: d["revision"] for d in collection.find({}, {"revision": 1})}
        finally:
            client.close()

    load = Load(crm, total=1500)
    threads = load.start()
    for kill in range(1, 6):
        load.wait_for(250 * kill)
        before = documents()
        kill_9(crm, "mongo")
        crm.start(["mongo"])  # as the supervisor would, at once
        after = wait_until(lambda: _reachable(documents), timeout=60, what="the database to return")
        lost = [c for c, revision in before.items() if after.get(c, 0) < revision]
        assert not lost, f"kill {kill}: {len(lost)} documents lost or rolled back, e.g. {lost[:3]}"
    for t in threads:
        t.join(300)
    assert_converged(crm, stores, load)


def _reachable(read: Callable[[], dict[str, int]]) -> dict[str, int] | None:
    try:
        return read()
    except Exception:
        return None


def test_verify_repair_restores_documents_deleted_behind_the_projectors_back(
    crm: System, stores: Stores
) -> None:
    """An operator restored an old backup, or writes were lost: ``crm verify analytics --repair``
    against the running system puts back exactly what is missing and changes nothing else."""
    load = Load(crm, total=100, clients=2)
    for t in load.start():
        t.join(120)
    assert_converged(crm, stores, load)
    collection = read_model(crm)
    before = {d["_id"]: d for d in collection.find({})}
    damaged = load.accepted[:5]
    collection.delete_many({"_id": {"$in": damaged[:4]}})
    collection.update_one({"_id": damaged[4]}, {"$set": {"policies": []}, "$unset": {"record_version": ""}})

    def verify(*flags: str) -> tuple[int, dict]:
        return crm_verify_json(crm.run_dir / "data", crm.mongo_uri, *flags, env=crm.env)

    code, found = verify("--settle-seconds", "1")
    assert code == 1 and found["customers_differing"] == 5, found
    code, repaired = verify("--repair")
    assert code == 0 and repaired["repaired"] == 5, repaired
    after = {d["_id"]: d for d in collection.find({})}
    assert after.keys() == before.keys()
    for customer_id, doc in before.items():
        if customer_id in damaged:
            restored = {k: v for k, v in after[customer_id].items() if k != "write_id"}
            assert restored == {k: v for k, v in doc.items() if k != "write_id"}, customer_id
        else:
            assert after[customer_id] == doc, f"{customer_id} was changed"
    assert verify()[0] == 0  # clean now


def test_kill_9_the_hand_over_in_the_middle_of_a_big_book(crm: System, stores: Stores) -> None:
    from crm_cli.client import CrmClient
    from tests.e2e.test_sales_force import new_team, register_for
    from tests.faults.conftest import OPERATOR

    with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer, timeout=30) as client:
        _, (leaving, *staying) = new_team(client, "mgr-faults", 3)
        book = {register_for(client, leaving) for _ in range(2000)}
        ok = client.call(
            "sales",
            "record_agent_departure",
            {
                "agent_id": leaving,
                "departed_on": "2026-11-30",
                "reason": "left",
                "successor": {"kind": "round_robin"},
            },
        )
        assert ok["ok"], ok

        def transfer() -> dict:
            reply = client.call("customer", "get_book_transfer", {"from_agent_id": leaving})
            return reply["result"] if reply["ok"] else {}

        cut_short: list[int] = []
        for kill_after in (200, 900):  # twice, at different points of the book
            wait_until(
                lambda k=kill_after: transfer().get("moved", 0) >= k, timeout=120, what=f"{kill_after} moved"
            )
            kill_9(crm, "handover")
            cut_short.append(transfer()["moved"])
            crm.start(["handover"])
        done = wait_until(
            lambda: (t := transfer()).get("state") == "completed" and t, timeout=180, what="the transfer done"
        )
    assert done["moved"] == done["total"] == 2000
    assert min(cut_short) < 2000, f"the book was through before the kills: {cut_short}"
    moves = [e for e in stores.events("customer", "customer.owner_changed") if e["aggregate_id"] in book]
    assert len(moves) == 2000 and {m["aggregate_id"] for m in moves} == book  # each exactly once
    assert {m["payload"]["new_agent_id"] for m in moves} == set(staying)
    shares = Counter(m["payload"]["new_agent_id"] for m in moves)
    assert abs(shares[staying[0]] - shares[staying[1]]) <= 1
