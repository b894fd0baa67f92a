"""Helpers shared by the tests: real infrastructure started from the test setup, and polling with a
deadline (never a fixed sleep)."""

from __future__ import annotations

import itertools
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from contracts.validators import national_id_check_character
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {last!r}")


def make_national_id(birth: date = date(1985, 6, 15), serial: int | None = None) -> str:
    """A valid PRC resident id with the given birth date and a random (or given) serial."""
    serial = uuid.uuid4().int % 1000 if serial is None else serial
    first17 = f"110105{birth:%Y%m%d}{serial:03d}"
    return first17 + national_id_check_character(first17)


_people = itertools.count(uuid.uuid4().int % 10_000_000)


def unique_person() -> tuple[date, str]:
    """A birth date and a national id no other call in this process returns."""
    n = next(_people)
    birth = date(1940, 1, 1) + timedelta(days=(n // 1000) % 25_000)
    return birth, make_national_id(birth, n % 1000)


def customer_payload(agent_id: str = "A-1001", **overrides: Any) -> dict[str, Any]:
    birth, national_id = unique_person()
    payload = {
        # A name of its own too: people sharing a name and a birth date are possible duplicates.
        "full_name": f"Wang Fang {national_id[14:17]}{birth.toordinal() % 100_000}",
        "national_id": national_id,
        # One phone per person, as in life: a shared one makes them possible duplicates.
        "mobile_phone": f"139{int(national_id[14:17]) * 100_000 + (birth.toordinal() % 100_000):08d}",
        "email": "wang.fang@example.com",
        "date_of_birth": birth.isoformat(),
        "address": {
            "line1": "88 Nanjing Road",
            "city": "Shanghai",
            "province": "Shanghai",
            "postal_code": "200001",
        },
        "owning_agent_id": agent_id,
    }
    payload.update(overrides)
    return payload


@contextmanager
def secantus_server(storage: Path | str = ":memory:") -> Iterator[str]:
    """A SecantusDB (MongoDB wire protocol) server process on a free local port."""
    from crm_cli.system import bin_path, free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [
            bin_path("secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
            "--standalone",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30)
        yield f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def crm_verify_json(
    data_dir: Path, mongo_uri: str, *flags: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """``crm verify analytics --json`` as an operator runs it: its exit status and its summary."""
    import json
    import os
    import sys

    from crm_cli.system import REPO

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_cli.main",
            "verify",
            "analytics",
            "--json",
            "--data-dir",
            str(data_dir),
            "--mongo-uri",
            mongo_uri,
            *flags,
        ],
        env=env or dict(os.environ),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


# The agents the tests register customers for, in one team, so that every registration names a
# real, active agent.
STAFF_TEAM = "T-1"
STAFF_AGENTS = ("A-1001", "A-2002", "A-7", "A-1", "A-2", "A-3")
STAFF_OPERATOR = Caller("staffing", Role.OPERATOR)


def staffed(sales: Any, team_id: str = STAFF_TEAM, agents: tuple[str, ...] = STAFF_AGENTS) -> Any:
    """``sales`` (a SalesApplication) with ``team_id`` and ``agents`` registered in it."""
    sales.create_team(
        {"team_id": team_id, "name": "Test team", "branch": "Hangzhou", "manager_user_id": "mgr-1"},
        CommandMeta.new(STAFF_OPERATOR),
    )
    for agent_id in agents:
        sales.register_agent(
            {
                "agent_id": agent_id,
                "name": f"Agent {agent_id}",
                "team_id": team_id,
                "hired_on": date(2020, 1, 1),
            },
            CommandMeta.new(STAFF_OPERATOR),
        )
    return sales


def sales_force() -> Any:
    """A sales force on the in-memory store, with the tests' team and agents."""
    from services.sales.application import SalesApplication

    return staffed(SalesApplication())


def staff_over_rpc(client: Any, team_id: str = STAFF_TEAM, agents: tuple[str, ...] = STAFF_AGENTS) -> None:
    """The tests' team and agents in a running system (kept if they exist already)."""
    replies = [
        client.call(
            "sales",
            "create_team",
            {"team_id": team_id, "name": "Test team", "branch": "Hangzhou", "manager_user_id": "mgr-1"},
        )
    ]
    for agent_id in agents:
        replies.append(
            client.call(
                "sales",
                "register_agent",
                {
                    "agent_id": agent_id,
                    "name": f"Agent {agent_id}",
                    "team_id": team_id,
                    "hired_on": "2020-01-01",
                },
            )
        )
    for reply in replies:
        rules = {f["rule"] for f in reply.get("error", {}).get("fields", [])}
        assert reply["ok"] or rules == {"already_exists"}, reply


class InProcessSalesForce:
    """A real sales application in this process, asked what the customer context asks the sales
    force over RPC in a deployment (``nameko_support.RpcSalesForce``)."""

    def __init__(self, sales: Any, caller: Caller = STAFF_OPERATOR) -> None:
        self.sales = sales
        self.caller = caller

    def team_of(self, owner_id: str) -> str | None:
        return self.sales.team_of(owner_id)  # type: ignore[no-any-return]

    def teams_managed_by(self, user_id: str) -> frozenset[str]:
        return self.sales.teams_managed_by(user_id)  # type: ignore[no-any-return]

    def owner_status(self, owner_id: str) -> str | None:
        return self.sales.owner_status(owner_id)  # type: ignore[no-any-return]

    def plan_succession(self, agent_id: str, successor: dict[str, Any]) -> dict[str, Any]:
        data = {"agent_id": agent_id, "successor": successor}
        return self.sales.plan_succession(data, CommandMeta.new(self.caller))  # type: ignore[no-any-return]
