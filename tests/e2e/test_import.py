"""Importing a book with ``crm import customers``: a generated 5,000-row CSV and XLSX with 7% bad
rows of every kind. The rejection report names each bad row and its rule, the good rows are all
registered, and importing the file again registers nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from eventsourcing.utils import get_topic

from crm_cli.client import CrmClient
from crm_cli.system import System
from services.customer.domain import Customer
from tests.e2e.conftest import Stores, ok
from tests.e2e.test_cli import crm
from tests.support import write_book

ROWS = 5000
REGISTERED = get_topic(Customer.Registered)


def registrations_after(stores: Stores, position: int) -> int:
    app = stores.apps["customer"]
    return sum(1 for batch in app.notifications(position) for n in batch if n.topic == REGISTERED)


def rejections(report: Path) -> dict[int, set[tuple[str, str]]]:
    found: dict[int, set[tuple[str, str]]] = {}
    with report.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(int(row["row"]), set()).add((row["field"], row["rule"]))
    return found


def departed_agent(operator_rpc: CrmClient) -> str:
    agent = "A-IMPORT-GONE"
    registered = operator_rpc.call(
        "sales",
        "register_agent",
        {"agent_id": agent, "name": "Gone", "team_id": "T-1", "hired_on": "2020-01-01"},
    )
    if registered["ok"]:
        ok(
            operator_rpc.call(
                "sales",
                "record_agent_departure",
                {
                    "agent_id": agent,
                    "departed_on": "2026-11-30",
                    "reason": "left",
                    "successor": {"kind": "agent", "agent_id": "A-1001"},
                },
            )
        )
    return agent


def import_file(system: System, path: Path) -> tuple[int, dict]:
    done = crm(system, "import", "customers", str(path))
    assert done.returncode in (0, 2), done.stderr
    assert "rows" in done.stderr and "/s" in done.stderr  # the progress bar
    return done.returncode, json.loads(done.stdout)


def test_a_book_imports_once_with_every_bad_row_reported(
    system: System, operator_rpc: CrmClient, stores: Stores, tmp_path: Path
) -> None:
    gone = departed_agent(operator_rpc)
    for name in ("book.csv", "book.xlsx"):
        path = tmp_path / name
        expected = write_book(path, ROWS, ["A-1001", "A-7", "A-2"], gone)
        assert 0.06 < len(expected) / ROWS <= 0.07
        before = stores.apps["customer"].max_position()

        status, summary = import_file(system, path)

        assert status == 2
        assert summary["rows"] == ROWS and summary["rejected_rows"] == len(expected)
        assert summary["registered"] == ROWS - len(expected) and summary["already_registered"] == 0
        report = rejections(path.with_name(name + ".rejections.csv"))
        assert set(report) == set(expected)
        for number, (field, rule) in expected.items():
            assert (field, rule) in report[number], (number, report[number])
        assert registrations_after(stores, before) == ROWS - len(expected)

    # The CSV again: every good row answers that it was registered before; nothing is appended.
    path = tmp_path / "book.csv"
    before = stores.apps["customer"].max_position()
    status, again = import_file(system, path)
    assert again["registered"] == 0 and again["already_registered"] == summary["registered"]
    assert again["rejected_rows"] == summary["rejected_rows"]
    assert registrations_after(stores, before) == 0
