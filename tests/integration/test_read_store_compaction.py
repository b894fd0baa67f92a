"""After an erasure, the read-model database's files still hold the person's old values (freed
pages, the oplog's copy of each insert, the journal); ``crm compact-read-store`` leaves only live
documents in them."""

from __future__ import annotations

import uuid
from pathlib import Path

from pymongo import MongoClient

from crm_cli.read_store import compact
from services.analytics.store import Customer360Store, ensure_indexes
from tests.support import secantus_server

NAME = "Ouyang Zhenhua-Erasable"
PHONE = "13987654321"


def message(customer_id: str, version: int, event_type: str, payload: dict) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": f"2026-12-01T10:00:0{version}+00:00",
        "aggregate_id": customer_id,
        "aggregate_version": version,
        "actor": {"user_id": "op", "role": "operator", "agent_id": None},
        "payload": {"customer_id": customer_id, **payload},
    }


def registered(customer_id: str, name: str, phone: str) -> dict:
    return message(
        customer_id,
        1,
        "customer.registered",
        {
            "full_name": name,
            "national_id": "11010519491231002X",
            "mobile_phone": phone,
            "email": None,
            "date_of_birth": "1949-12-31",
            "address": {"line1": "1 Road", "city": "Beijing", "province": "Beijing"},
            "owning_agent_id": "A-1",
        },
    )


def holders(directory: Path, *values: str) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {v}" for v in values if v.encode() in data]
    return found


def test_compaction_removes_what_an_erasure_left_in_the_files(tmp_path: Path) -> None:
    storage = tmp_path / "mongo"
    erased_id = str(uuid.uuid4())
    with secantus_server(storage) as uri:
        client: MongoClient = MongoClient(uri)
        store = Customer360Store(client["crm"])
        ensure_indexes(store.collection())
        others = [registered(str(uuid.uuid4()), f"Customer {n}", f"139{n:08d}") for n in range(300)]
        store([registered(erased_id, NAME, PHONE), *others])
        client.admin.command("fsync")  # a checkpoint: the values are in the data files now
        store([message(erased_id, 2, "customer.erased", {"reason": "request", "request_reference": "R"})])
        assert store.get(erased_id)["profile"]["full_name"] is None
        client.close()
    assert holders(storage, NAME, PHONE), "the old values were expected in the files before compaction"

    copied = compact(storage)

    assert copied["documents"] >= 301
    assert holders(storage, NAME, PHONE) == []
    assert not (tmp_path / "mongo.old").exists() and not (tmp_path / "mongo.compacting").exists()
    with secantus_server(storage) as uri:
        client = MongoClient(uri)
        store = Customer360Store(client["crm"])
        assert store.collection().count_documents({}) == 301
        assert store.get(erased_id)["erased_at"] is not None
        assert store.get(others[7]["aggregate_id"])["profile"]["full_name"] == "Customer 7"
        assert "owning_agent_id_1" in store.collection().index_information()
        client.close()
