"""Erasure by crypto-shredding, proven on real processes, on SQLite and on PostgreSQL event stores:
after ``erase_customer``, the customer's name, national id, phones and email are nowhere readable:
not in the event store files or tables, not in any read model, not in SecantusDB's files after the
documented compaction, not in the logs, not in any RabbitMQ queue. Policies and tickets stay."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kombu import Connection
from pymongo import MongoClient

from crm_cli.client import CrmClient
from crm_cli.read_store import compact
from crm_cli.system import System, free_port, fresh_vhost
from tests.conftest import drop_postgres_database
from tests.e2e.conftest import COMPLAINT, OPERATOR, SALE, ok
from tests.support import customer_payload, staff_over_rpc, wait_until


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def erasable_system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    database = f"crm_erasure_{uuid.uuid4().hex[:8]}"
    extra = {"POSTGRES_DBNAME": database} if request.param == "postgres" else {}
    with fresh_vhost() as private_uri:
        crm = System(
            tmp_path_factory.mktemp(f"crm-erasure-{request.param}"),
            private_uri,
            mongo_port=free_port(),
            event_store=request.param,
            extra_env=extra,
        )
        try:
            with crm.running():
                with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer) as client:
                    staff_over_rpc(client)
                yield crm
        finally:
            if request.param == "postgres":
                drop_postgres_database(database)


def findings(blob: bytes, where: str, needles: dict[str, str]) -> list[str]:
    return [f"{what} in {where}" for what, needle in needles.items() if needle.encode() in blob]


def scan_files(directory: Path, needles: dict[str, str]) -> list[str]:
    found: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        found += findings(path.read_bytes(), str(path.relative_to(directory)), needles)
    return found


def scan_postgres(database: str, needles: dict[str, str]) -> list[str]:
    found: list[str] = []
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                text = "\x00".join(
                    v.decode("latin-1")
                    if isinstance(v, bytes | memoryview) and not isinstance(v, str)
                    else str(v)
                    for v in (bytes(c) if isinstance(c, memoryview) else c for c in row)
                )
                found += findings(text.encode("latin-1", errors="replace"), f"table {table}", needles)
    assert tables, "no tables scanned"
    return found


def scan_read_models(mongo_uri: str, needles: dict[str, str]) -> list[str]:
    found: list[str] = []
    with MongoClient(mongo_uri) as client:
        for name in client.list_database_names():
            for collection in client[name].list_collection_names():
                for doc in client[name][collection].find({}):
                    text = json.dumps(doc, default=str, ensure_ascii=False)
                    found += findings(text.encode(), f"{name}.{collection}", needles)
    return found


def scan_queues(amqp_uri: str, needles: dict[str, str]) -> tuple[list[str], int]:
    """Every message of every queue of the vhost, read and put back (not acknowledged)."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    rows = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "exclusive", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    # An exclusive queue is its connection's alone (the dashboard's heartbeats: no customer data).
    listed = [row.split()[0] for row in rows if row.split() and row.split()[-1] != "true"]
    found: list[str] = []
    read = 0
    with Connection(amqp_uri) as conn:
        for queue in listed:
            channel = conn.channel()
            channel.basic_qos(0, 1000, False)
            while (message := channel.basic_get(queue, no_ack=False)) is not None:
                read += 1
                found += findings(
                    message.body if isinstance(message.body, bytes) else message.body.encode(), queue, needles
                )
            channel.close()  # unacknowledged: back in their queues
    assert listed, "no queues listed"
    return found, read


def test_an_erased_customer_is_nowhere_readable(erasable_system: System) -> None:
    crm = erasable_system
    tag = uuid.uuid4().hex[:8]
    payload = customer_payload(
        agent_id="A-1001", full_name=f"Erasable Qiu {tag}", email=f"qiu.{tag}@example.cn"
    )
    needles = {
        "name": payload["full_name"],
        "national id": payload["national_id"],
        "first phone": payload["mobile_phone"],
        "email": payload["email"],
        "second phone": "13" + str(int(tag, 16) % 10**9).zfill(9),
        "contact point": f"qiu.home.{tag}@example.cn",
    }
    with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer) as client:
        customer_id = ok(client.call("customer", "register_customer", payload))["customer_id"]
        ok(
            client.call(
                "customer",
                "update_profile",
                {"customer_id": customer_id, "mobile_phone": needles["second phone"], "reason": "new phone"},
            )
        )
        ok(
            client.call(
                "customer",
                "add_contact_point",
                {
                    "customer_id": customer_id,
                    "kind": "email",
                    "email": needles["contact point"],
                    "label": "home",
                },
            )
        )
        policy = ok(client.call("sales", "sell_policy", {"customer_id": customer_id, **SALE}))[
            "policy_number"
        ]
        ok(client.call("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT}))

        def in_view() -> dict[str, Any] | None:
            reply = client.call("analytics", "get_customer_360", {"customer_id": customer_id})
            view = reply.get("result") or {}
            return view if view.get("complaints") and view.get("contact_points") else None

        before = wait_until(in_view, timeout=30, what="the 360 view to hold the customer")
        assert before["profile"]["full_name"] == payload["full_name"]

        erased = ok(
            client.call(
                "customer",
                "erase_customer",
                {
                    "customer_id": customer_id,
                    "reason": "the customer's request",
                    "request_reference": f"DSR-{tag}",
                },
            )
        )
        assert erased["erased"] == [customer_id]

        def erased_view() -> dict[str, Any] | None:
            view = (
                client.call("analytics", "get_customer_360", {"customer_id": customer_id}).get("result") or {}
            )
            return view if view.get("erased_at") else None

        after = wait_until(erased_view, timeout=30, what="the 360 view to erase the customer")
        assert after["profile"]["erased"] is True and after["contact_points"] == []
        assert [p["policy_number"] for p in after["policies"]] == [policy]  # statutory records stay
        assert len(after["complaints"]) == 1
        record = ok(client.call("customer", "get_customer", {"customer_id": customer_id}))
        assert record["full_name"] is None and record["national_id"] is None and record["erased_at"]
        again = client.call(
            "customer", "update_profile", {"customer_id": customer_id, "email": None, "reason": "x"}
        )
        assert again["error"]["code"] == "invalid_state"

    # Data files and folders are their owner's only (but identity's public key set: public keys).
    for path in [crm.run_dir, *crm.run_dir.rglob("*")]:
        if path == crm.public_keys_file:
            continue
        if path.is_file() or path.is_dir():
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"

    # Positive controls: the scans do read what the stores hold in clear.
    data_dir = crm.run_dir / "data"
    if crm.event_store == "sqlite":
        assert findings(
            (data_dir / "sales.sqlite").read_bytes() + (data_dir / "sales.sqlite-wal").read_bytes(),
            "sales",
            {"p": policy},
        )
        assert scan_files(data_dir, needles) == []
    else:
        assert scan_postgres(crm.extra_env["POSTGRES_DBNAME"], {"policy": policy})
        assert scan_postgres(crm.extra_env["POSTGRES_DBNAME"], needles) == []
    assert scan_read_models(crm.mongo_uri, {"policy": policy})
    assert scan_read_models(crm.mongo_uri, needles) == []
    found, _read = scan_queues(crm.amqp_uri, needles)
    assert found == []
    assert scan_files(crm.run_dir / "logs", needles) == []

    # The read-model database's files still hold the old values until the documented compaction.
    crm.stop(["analytics", "projector", "mongo"])
    assert scan_files(crm.run_dir / "mongo", needles), "expected old values in SecantusDB's files"
    compact(crm.run_dir / "mongo")
    assert scan_files(crm.run_dir / "mongo", needles) == []
    crm.start(["mongo", "projector", "analytics"])
    crm.wait_ready()
    with CrmClient.for_caller(crm.amqp_uri, OPERATOR, crm.signer) as client:
        view = ok(client.call("analytics", "get_customer_360", {"customer_id": customer_id}))
        assert view["erased_at"] and [p["policy_number"] for p in view["policies"]] == [policy]
