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


def unique_person(first_birth: date = date(1940, 1, 1), birth_days: int = 25_000) -> tuple[date, str]:
    """A birth date (from ``first_birth``, within ``birth_days``) and a national id no other call
    in this process returns."""
    n = next(_people)
    birth = first_birth + timedelta(days=(n // 1000) % birth_days)
    return birth, make_national_id(birth, n % 1000)


def customer_payload(
    agent_id: str = "A-1001", *, working_age: bool = False, **overrides: Any
) -> dict[str, Any]:
    """``working_age``: born 1970-1994 (so that every product of the catalogue quotes for them)."""
    birth, national_id = unique_person(date(1970, 1, 1), 9_000) if working_age else unique_person()
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
    from crm_cli.system import free_port, secantus_argv, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        secantus_argv(storage, port),
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


# A book to import: rows written one at a time, a share of them bad in every way we check ---------

BOOK_HEADERS = (
    "姓名",
    "身份证号",
    "手机",
    "email",
    "出生日期",
    "业务员",
    "地址",
    "city",
    "province",
    "postal_code",
)
# The ways a row can be bad, and the (field, rule) its rejection must name.
BAD_ROWS: tuple[tuple[str, str, str], ...] = (
    ("no name", "full_name", "required"),
    ("national id with a wrong check character", "national_id", "checksum"),
    ("phone of five digits", "mobile_phone", "format"),
    ("email without an at sign", "email", "format"),
    ("birth date unlike the national id's", "date_of_birth", "matches_national_id"),
    ("postcode of two digits", "address.postal_code", "format"),
    ("an agent the sales force does not know", "owning_agent_id", "unknown_agent"),
    ("a departed agent", "owning_agent_id", "agent_departed"),
    ("a national id an earlier row holds, other details", "national_id", "repeated_in_import"),
)


def book_rows(
    rows: int, agents: list[str], departed_agent: str, bad_every: int = 100, bad_per: int = 7
) -> Iterator[tuple[int, list[str], tuple[str, str] | None]]:
    """(spreadsheet row number, cells in ``BOOK_HEADERS`` order, the expected rejection or None)
    for ``rows`` rows, of which ``bad_per`` in every ``bad_every`` are bad, each kind in turn."""
    recent: dict[int, list[str]] = {}
    bad = 0
    for index in range(rows):
        number = index + 2
        payload = customer_payload(agent_id=agents[index % len(agents)])
        cells = [
            payload["full_name"],
            payload["national_id"],
            payload["mobile_phone"],
            payload["email"],
            payload["date_of_birth"],
            payload["owning_agent_id"],
            f"{index} Import Road",
            "Suzhou",
            "Jiangsu",
            "215000",
        ]
        expected: tuple[str, str] | None = None
        # A repeated national id takes a good row's from far enough back that the earlier row is
        # settled first, whatever the importer's concurrency.
        earlier = recent.get(number - 290)  # a good row: ten past a bad stretch of the same hundred
        if index % bad_every < bad_per and (
            BAD_ROWS[bad % len(BAD_ROWS)][2] != "repeated_in_import" or earlier
        ):
            kind = BAD_ROWS[bad % len(BAD_ROWS)]
            bad += 1
            expected = (kind[1], kind[2])
            match kind[2]:
                case "required":
                    cells[0] = ""
                case "checksum":
                    cells[1] = cells[1][:17] + ("0" if cells[1][17] != "0" else "1")
                case "format" if kind[1] == "mobile_phone":
                    cells[2] = "12345"
                case "format" if kind[1] == "email":
                    cells[3] = "not-an-email"
                case "matches_national_id":
                    cells[4] = "1901-01-01"
                case "format":
                    cells[9] = "21"
                case "unknown_agent":
                    cells[5] = "A-NOBODY-KNOWS"
                case "agent_departed":
                    cells[5] = departed_agent
                case "repeated_in_import":
                    assert earlier is not None
                    cells[1], cells[4] = earlier[1], earlier[4]
                    cells[0] = earlier[0] + " Jr"
        elif index % bad_every >= bad_per:
            recent[number] = cells
        recent.pop(number - 290, None)
        yield number, cells, expected


def write_book(path: Path, rows: int, agents: list[str], departed_agent: str) -> dict[int, tuple[str, str]]:
    """A CSV or XLSX book (by ``path``'s suffix), streamed to disk; the bad rows' expected
    rejections by row number."""
    import csv

    expected: dict[int, tuple[str, str]] = {}
    generated = book_rows(rows, agents, departed_agent)
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(list(BOOK_HEADERS))
        for number, cells, bad in generated:
            sheet.append(cells)
            if bad:
                expected[number] = bad
        workbook.save(path)
        return expected
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(BOOK_HEADERS)
        for number, cells, bad in generated:
            writer.writerow(cells)
            if bad:
                expected[number] = bad
    return expected


def registered_customer(meta: CommandMeta, **overrides: Any) -> Any:
    """A ``Customer`` aggregate as registration makes it (Li Wei, of a valid national id), its
    registration event still pending; for the domain's unit tests."""
    from services.customer.domain import Customer

    details: dict[str, Any] = {
        "full_name": "Li Wei",
        "national_id": "11010519491231002X",
        "mobile_phone": "13800138000",
        "email": None,
        "date_of_birth": date(1949, 12, 31),
        "address": {"line1": "1 Road", "city": "Beijing", "province": "Beijing"},
        "owning_agent_id": "A-1",
    }
    return Customer.register(**{**details, **overrides}, meta=meta)


def rule_of(error: Any) -> tuple[str, str]:
    """The (field, rule) of a refusal that names one field."""
    [problem] = error.fields
    return problem.field, problem.rule


class InProcessCustomers:
    """The customer context's answers to sales (``crm_shared.rpc.CustomerDirectory``), from a real
    customer application in this process."""

    def __init__(
        self, customers: Any, sales_force: InProcessSalesForce, caller: Caller | None = None
    ) -> None:
        self.customers = customers
        self.sales_force = sales_force
        # Who asks: an operator sees every customer; an agent only their own.
        self.caller = caller or Caller("op-directory", Role.OPERATOR)

    def _customer(self, customer_id: str) -> dict[str, Any]:
        return self.customers.get_customer(
            {"customer_id": customer_id}, CommandMeta.new(self.caller), self.sales_force
        )  # type: ignore[no-any-return]

    def owning_agent_of(self, customer_id: str) -> str:
        return str(self._customer(customer_id)["owning_agent_id"])

    def birth_date_of(self, customer_id: str) -> date | None:
        born = self._customer(customer_id)["date_of_birth"]
        return date.fromisoformat(born) if born else None


def signed_in(system: Any, args: tuple[str, ...] | list[str]) -> list[str]:
    """``crm`` arguments calling with a token the test's system signs: for an operator, or for
    whom a leading ``--as ROLE [--user U] [--agent-id A]`` names (those are taken off)."""
    from crm_shared.auth import Caller, Role, issue_token

    rest = list(args)
    role, user, agent = "operator", "op-cli", None
    while rest and rest[0] in ("--as", "--user", "--agent-id"):
        flag, value, rest = rest[0], rest[1], rest[2:]
        role, user, agent = (
            (value, user, agent)
            if flag == "--as"
            else (role, value, agent)
            if flag == "--user"
            else (role, user, value)
        )
    caller = Caller(user if user != "op-cli" or role == "operator" else f"{role}-cli", Role(role), agent)
    token_file = system.run_dir / f"token-{uuid.uuid4().hex[:8]}"
    token_file.write_text(issue_token(caller, system.signer))
    token_file.chmod(0o600)
    return ["--token-file", str(token_file), *rest]


def cli_env(system: Any) -> dict[str, str]:
    """The environment of a ``crm`` run by a test: its own configuration folder (the import key)."""
    import os

    return {**os.environ, "CRM_CONFIG_DIR": str(system.run_dir / "cli-config"), "PYTHONWARNINGS": "ignore"}
