"""CRM benchmarks. Each figure is compared with a ceiling measured in the same run on the same
machine, because these machines are shared and noisy: only the ratios mean anything across runs.
Benchmarks never fail on a number.

    python -m bench.run            # full sizes (several minutes)
    python -m bench.run --quick    # small sizes, a smoke run for CI
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kombu import Connection, Queue
from pymongo import MongoClient, ReplaceOne

from bench.sla_clock import sla_clock
from crm_cli.client import CrmClient
from crm_cli.system import REPO, System, free_port, fresh_vhost, rpc_consumers
from crm_shared.auth import Caller, Role
from crm_shared.crypto import new_data_key_text
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import sqlite_env
from crm_shared.messaging import PipelinedPublisher, encode, events_exchange
from crm_shared.relay import Relay
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.rebuild import peak_rss_mb
from services.analytics.store import CUSTOMER_360, bulk_waves, ensure_indexes
from services.customer.application import CustomerApplication
from services.customer.domain import Customer, NationalIdClaim
from services.sales.application import SalesApplication
from services.sales.domain import Policy, policy_number_for

OPERATOR = Caller("bench", Role.OPERATOR)
# One data key for the run: the system's processes inherit it, and the stores this script writes
# straight to are read with it.
os.environ.setdefault("CRM_DATA_KEY", new_data_key_text())


@dataclass
class Sizes:
    command_seconds: float
    freshness_commands: int
    rebuild_events: tuple[int, ...]
    raw_upserts: int
    relay_events: int
    book: int
    # Rows of the two books imported: the larger one's rate is the figure, the peaks compare.
    import_rows: tuple[int, int]
    # Days of history of a team of 30 agents with 40 activities each a day, and seconds of reads.
    plan_days: int = 60
    plan_seconds: float = 10.0
    # Open tickets whose warnings and breaches the SLA timers fire when the clock jumps.
    sla_tickets: int = 100_000
    # Registrations waiting for a stopped projector, then drained by every projection at once.
    backlog: int = 5_000
    # Customers registered and complained about while the projector is stopped: the drain
    # assesses each complaining customer's churn rules live.
    complaints: int = 2_000
    # Targets of the campaigns launched: a small one and the large one, whose peaks compare.
    campaign_targets: tuple[int, int] = (20_000, 200_000)

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                3.0,
                150,
                (10_000, 30_000),
                5_000,
                3_000,
                1_000,
                (1_000, 5_000),
                10,
                3.0,
                5_000,
                600,
                300,
                (1_000, 5_000),
            )
        # Rebuilds at 25,000 and 100,000 customers (four stored events each).
        return cls(10.0, 1_000, (100_000, 400_000), 50_000, 30_000, 10_000, (10_000, 100_000))


@dataclass
class Report:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, name: str, figure: float, ceiling: float | None, unit: str, ceiling_name: str, **extra: Any
    ) -> None:
        ratio = round(figure / ceiling, 3) if ceiling else None
        self.rows.append(
            {
                "benchmark": name,
                "figure": round(figure, 1),
                "unit": unit,
                "ceiling": round(ceiling, 1) if ceiling else None,
                "ceiling_is": ceiling_name,
                "ratio": ratio,
                **extra,
            }
        )
        print(
            f"  {name}: {figure:,.1f} {unit} (ceiling {ceiling or 0:,.1f}; ratio {ratio})",
            file=sys.stderr,
            flush=True,
        )

    def add_latencies(
        self,
        name: str,
        samples: list[float],
        beside: list[float] | None,
        beside_is: str,
        percentiles: tuple[int, ...] = (50, 99),
        **extra: Any,
    ) -> None:
        """A row per percentile of ``samples`` (seconds) in ms, each beside the same percentile of
        ``beside`` (None: no ceiling); ``{p}`` in ``name`` and ``beside_is`` is the percentile."""
        for p in percentiles:
            self.add(
                name.format(p=p),
                percentile(samples, p) * 1000,
                None if beside is None else percentile(beside, p) * 1000,
                "ms",
                beside_is.format(p=p),
                samples=len(samples),
                **extra,
            )

    def table(self) -> str:
        head = f"{'benchmark':<34}{'figure':>12}  {'unit':<10}{'ceiling':>12}  {'ratio':>6}  ceiling is"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            ceiling = f"{r['ceiling']:,.1f}" if r["ceiling"] is not None else "-"
            ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
            lines.append(
                f"{r['benchmark']:<34}{r['figure']:>12,.1f}  {r['unit']:<10}"
                f"{ceiling:>12}  {ratio:>6}  {r['ceiling_is']}"
            )
        return "\n".join(lines)


# 1. Command path -------------------------------------------------------------------------------


def clients_calling(
    system: System, clients: int, seconds: float, call: Callable[[CrmClient, int], object], caller: Caller
) -> tuple[list[float], float]:
    """``clients`` threads, each with its own client, calling back to back for ``seconds`` (the
    n-th call of all gets ``n``): each call's latency (seconds), and the time from the start until
    the last call came back."""

    @contextmanager
    def rpc() -> Iterator[Callable[[int], object]]:
        with CrmClient.for_caller(system.amqp_uri, caller, system.signer, timeout=30) as client:
            yield lambda n: call(client, n)

    return back_to_back(clients, seconds, rpc)


def back_to_back(
    clients: int, seconds: float, open_caller: Callable[[], AbstractContextManager[Callable[[int], object]]]
) -> tuple[list[float], float]:
    """``clients`` threads, each calling through a caller of its own (``open_caller``) back to back
    for ``seconds``, once all have made a first call (the n-th call of all gets ``n``): each call's
    latency (seconds), and the time from the start until the last call came back."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        try:
            with open_caller() as call:
                try:
                    call(i)  # warm the connection
                finally:
                    start.wait()  # whatever happened, so that the run does not wait for ever
                n = 0
                while not stop.is_set():
                    began = time.perf_counter()
                    call(i + n)
                    samples[i].append(time.perf_counter() - began)
                    n += clients
        except BaseException as e:
            failures.append(e)
            stop.set()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return [s for per_client in samples for s in per_client], time.monotonic() - began


def closed_loop(system: System, clients: int, seconds: float, call: Callable[[CrmClient], object]) -> float:
    """Operations per second from ``clients`` threads calling as fast as answers come back."""
    done, elapsed = clients_calling(system, clients, seconds, lambda client, _n: call(client), OPERATOR)
    return len(done) / elapsed


def latencies(
    system: System, clients: int, seconds: float, call: Callable[[CrmClient, int], object], caller: Caller
) -> list[float]:
    """Each call's latency (seconds) from ``clients`` threads calling back to back."""
    return clients_calling(system, clients, seconds, call, caller)[0]


def ping(client: CrmClient) -> None:
    assert client.call("customer", "ping", {})["ok"]


def staff(system: System) -> System:
    """The team and agents the benchmark registers customers for."""
    from tests.support import staff_over_rpc

    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
        staff_over_rpc(client)
    return system


def register(client: CrmClient) -> str:
    reply = client.call("customer", "register_customer", payload())
    assert reply["ok"], reply
    return reply["result"]["customer_id"]


def payload() -> dict[str, Any]:
    from tests.support import customer_payload

    return customer_payload()


def postgres_command_path(seconds: float) -> tuple[float, float]:
    """Ping and register_customer with every event store on the machine's PostgreSQL (a database
    of its own, dropped afterwards), the whole system running as for SQLite."""
    import psycopg

    database = f"crm_bench_{uuid.uuid4().hex[:8]}"
    try:
        with (
            fresh_vhost() as amqp_uri,
            tempfile.TemporaryDirectory(prefix="crm-bench-pg-") as tmp,
            System(
                Path(tmp),
                amqp_uri,
                mongo_port=free_port(),
                event_store="postgres",
                extra_env={"POSTGRES_DBNAME": database},
            ).running() as system,
        ):
            staff(system)
            return closed_loop(system, 10, seconds, ping), closed_loop(system, 10, seconds, register)
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# 2. Freshness ----------------------------------------------------------------------------------


def freshness(system: System, rate: float, commands: int, clients: int = 10) -> list[float]:
    """Open loop at ``rate`` commands/s: seconds from an RPC returning to its customer appearing in
    customer_360 (watched directly in MongoDB every few milliseconds)."""
    returned: dict[str, float] = {}
    seen: dict[str, float] = {}
    lock = threading.Lock()
    database = mongo_client(system.mongo_uri)["crm"]
    catalog = ReadModelCatalog(database)
    interval = clients / rate
    done = threading.Event()

    def work() -> None:
        with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
            next_at = time.monotonic()
            for _ in range(commands // clients):
                next_at += interval
                customer_id = register(client)
                with lock:
                    returned[customer_id] = time.monotonic()
                time.sleep(max(0.0, next_at - time.monotonic()))

    def watch() -> None:
        collection = database[catalog.targets(CUSTOMER_360).active]
        while not done.is_set() or len(seen) < len(returned):
            with lock:
                pending = [c for c in returned if c not in seen]
            if pending:
                now = time.monotonic()
                for doc in collection.find({"_id": {"$in": pending}}, {"_id": 1}):
                    seen[doc["_id"]] = now
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    workers = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    watcher.join(120)
    return [seen[c] - returned[c] for c in returned if c in seen]


def projector_drain(system: System, backlog: int) -> tuple[float, int]:
    """Events per second every projection together applies from a backlog: the projector is
    stopped, ``backlog`` customers register (each event goes to every projection taking it),
    then the projector starts and the time until each projection has applied its share counts."""
    from services.analytics.projections import ProjectionStatus
    from services.analytics.read_models import PROJECTIONS

    status = ProjectionStatus(mongo_client(system.mongo_uri)["crm"])

    def applied() -> int:
        return sum(int(status.get(name).get("applied", 0)) for name in PROJECTIONS)

    system.stop(["projector"])
    before = applied()
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
        for _ in range(backlog):
            register(client)
    # Every registration is customer.registered, which the 360, the timeline and search take.
    takers = sum("customer.registered" in p.event_types for p in PROJECTIONS.values())
    expected = before + backlog * takers
    began = time.monotonic()
    system.start(["projector"])
    deadline = time.monotonic() + 600
    while applied() < expected:
        if time.monotonic() > deadline or "projector" in system.dead():
            raise RuntimeError(f"the projector did not drain the backlog; see {system.run_dir}/logs")
        time.sleep(0.02)
    return (applied() - before) / (time.monotonic() - began), takers


COMPLAINT = {
    "channel": "phone",
    "category": "billing",
    "priority": "ordinary",
    "description": "Charged twice this month",
}


def churn_under_load(system: System, customers: int) -> dict[str, float]:
    """The churn rules assessed live while the 360 projector drains a backlog: ``customers``
    register and each opens a complaint (a churn signal) while the projector is stopped; then it
    starts, and the customers assessed per second by the rules after each 360 batch count beside
    the events per second the 360 projection applies in the same seconds."""
    from services.analytics.projections import ProjectionStatus
    from services.analytics.scoring.live import live_assessments

    database = mongo_client(system.mongo_uri)["crm"]
    status = ProjectionStatus(database)

    def applied() -> int:
        return int(status.get(CUSTOMER_360).get("applied", 0))

    system.stop(["projector"])
    before, (assessed_before, seconds_before) = applied(), live_assessments(database)
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
        for _ in range(customers):
            customer_id = register(client)
            reply = client.call("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT})
            assert reply["ok"], reply
    # The 360 takes the registration, the complaint's ticket, and the call sales puts in the
    # owner's day for it (sales' reactions run meanwhile).
    expected = before + customers * 3
    began = time.monotonic()
    system.start(["projector"])
    deadline = began + 600
    while applied() < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    seconds = time.monotonic() - began
    assessed, hook_seconds = live_assessments(database)
    return {
        "events_per_second": (applied() - before) / seconds,
        "assessed_per_second": (assessed - assessed_before) / seconds,
        "assessed": assessed - assessed_before,
        "hook_share": (hook_seconds - seconds_before) / seconds,
        "hook_seconds": hook_seconds - seconds_before,
    }


def raw_scan_rate(mongo_uri: str, collection: str = CUSTOMER_360) -> float:
    """Documents per second one natural-order cursor reads of a whole collection: the ceiling of a
    pass over the book."""
    database = mongo_client(mongo_uri)["crm"]
    serving = ReadModelCatalog(database).targets_uncached(collection).active
    began, count = time.monotonic(), 0
    for _ in database[serving].find({}, batch_size=1000):
        count += 1
    return count / (time.monotonic() - began)


def crm_json(system: System, *args: str, lease_wait: float = 0.0) -> dict[str, Any]:
    """``crm ARGS --json`` over the system's stores and read models: its last line's summary. A
    command refused because another process holds its lease (a stopped ``crm-segments``'s runs out
    within minutes) is tried again for up to ``lease_wait`` seconds."""
    env = {**system.operator_env(), "CRM_DATA_DIR": str(system.run_dir / "data")}
    argv = [sys.executable, "-m", "crm_cli.main", *args, "--json", "--mongo-uri", system.mongo_uri]
    deadline = time.monotonic() + lease_wait
    while True:
        result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
        if not (result.returncode and "running already" in result.stderr and time.monotonic() < deadline):
            break
        time.sleep(5)
    if result.returncode:
        raise SystemExit(f"crm {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def segment_recompute(system: System) -> dict[str, Any]:
    """``crm segments recompute`` over the read models as they stand."""
    return crm_json(system, "segments", "recompute", lease_wait=600)


def report_recompute(system: System, report: Report, customers: int, *, again: bool = True) -> None:
    """The segment recompute over the book a rebuild left, twice (``again``): the first run (every
    row new) and the night after (nothing changed, so only the facts are written again); customers
    scored per second beside one raw pass over the 360 collection of the same run, and the peak
    memory."""
    ceiling = raw_scan_rate(system.mongo_uri)
    runs = (
        ("segment recompute", "a first run, so every scheme's rows are written"),
        ("recompute again", "the nightly case: the same book again, few segments move"),
    )
    for name, what in runs[: 2 if again else 1]:
        summary = segment_recompute(system)
        report.add(
            f"{name} at {customers:,} customers",
            summary["customers_per_second"],
            ceiling,
            "customers/s",
            "one raw cursor over the 360, docs/s",
            seconds=summary["seconds"],
            memberships_changed=summary["memberships_changed"],
            note=f"passes over the book: facts (and the lines' bucket counts), the lines exactly, "
            f"segment rows, counts; {what}; the ratio is how many raw passes one run costs",
        )
        report.add(f"{name} seconds, {customers:,}", summary["seconds"], None, "s", "-")
        report.add(f"{name} peak RSS, {customers:,}", summary["peak_rss_mb"], None, "MB", "-")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# 2c. Import -------------------------------------------------------------------------------------


def import_book(system: System, rows: int) -> tuple[float, float, dict[str, Any]]:
    """Rows per second of ``crm import customers`` for a generated CSV of ``rows`` rows (7% bad),
    from start to summary; the importer's peak memory (MB); its summary."""
    from tests.support import write_book

    path = system.run_dir / f"book-{rows}.csv"
    write_book(path, rows, ["A-1001", "A-7", "A-2"], departed_agent="A-NOBODY-DEPARTED")
    from tests.support import cli_env, signed_in

    argv = [sys.executable, "-m", "crm_cli.main", "--amqp-uri", system.amqp_uri]
    argv += signed_in(system, ["import", "customers", str(path)])
    began = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env(system)
    )
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, peak_rss_mb(process.pid))
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    summary = json.loads(process.stdout.read() if process.stdout else "{}")
    assert summary.get("rows") == rows, summary
    return rows / elapsed, peak, summary


# 3. Rebuild ------------------------------------------------------------------------------------


SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou")
SYLLABLES = ("an", "bo", "chen", "fang", "gang", "hua", "jing", "lei", "li", "min", "na", "ping", "qiang")


def bench_name(n: int) -> str:
    """Names spread as people's are: a few surnames, many given names."""
    given = SYLLABLES[n // 10 % len(SYLLABLES)] + SYLLABLES[n // 130 % len(SYLLABLES)]
    return f"{SURNAMES[n % len(SURNAMES)]} {given.capitalize()}"


def new_customer(app: CustomerApplication, owning_agent_id: str) -> list[Any]:
    """A customer and its national id claim, as ``register_customer`` stores them."""
    from tests.support import unique_person

    birth, national_id = unique_person()
    n = int(national_id[6:17])
    meta = CommandMeta.new(OPERATOR)
    customer = Customer.register(
        full_name=bench_name(n),
        national_id=national_id,
        mobile_phone=f"139{n % 10**8:08d}",
        email=None,
        date_of_birth=birth,
        address={"line1": "1 Bench Road", "city": "Hangzhou", "province": "Zhejiang"},
        owning_agent_id=owning_agent_id,
        meta=meta,
    )
    return [customer, NationalIdClaim.claim(app.national_id_digest(national_id), str(customer.id), meta)]


def fresh_histories(system: System) -> None:
    """Empty stores (every process but the database stopped), so that a rebuild's history is
    exactly the customers grown for its size, whatever the stages before appended."""
    # Identity's store stays: it holds the accounts the processes sign in with.
    for store in (system.run_dir / "data").iterdir():
        if not store.name.startswith("identity."):
            shutil.rmtree(store) if store.is_dir() else store.unlink()


def grow_history(data_dir: Path, events: int) -> None:
    """Append customers, their national id claims and two policies each straight to the stores,
    in large transactions, until they hold ``events`` stored events."""
    customers = CustomerApplication(env=sqlite_env(data_dir / "customer.sqlite"))
    sales = SalesApplication(env=sqlite_env(data_dir / "sales.sqlite"))

    def total() -> int:
        return customers.max_position() + sales.max_position()

    while total() < events:
        batch_customers: list[Any] = []
        batch_policies: list[Any] = []
        for _ in range(min(250, max(1, (events - total()) // 4))):
            customer, claim = new_customer(customers, f"A-{uuid.uuid4().int % 250_000}")
            batch_customers += [customer, claim]
            for premium in ("1200.00", "860.50"):
                sale = CommandMeta.new(OPERATOR)
                batch_policies.append(
                    Policy.sell(
                        policy_number=policy_number_for(sale.causation_id),
                        customer_id=str(customer.id),
                        product="life",
                        annual_premium=Decimal(premium),
                        start_date=date(2026, 1, 1) + timedelta(days=len(batch_policies)),
                        term_years=10,
                        agent_id=customer.owning_agent_id,
                        meta=sale,
                    )
                )
        customers.save(*batch_customers)
        sales.save(*batch_policies)
    customers.close()
    sales.close()


# 2d. The agent's day ----------------------------------------------------------------------------

DAY_TEAM = "T-DAY"
DAY_AGENTS = tuple(f"D-{i:02d}" for i in range(30))
ACTIVITIES_A_DAY = 40


def seed_agents_days(data_dir: Path, days: int, zone: ZoneInfo) -> int:
    """``days`` of history up to today for the day team: 40 activities an agent a day, 12 minutes
    apart from 08:00 (one in ten a meeting, booked in the agent's day), most of the past ones done,
    some cancelled, some left overdue; appended straight to the sales store, a day of an agent per
    append. Returns the activities stored."""
    from services.sales.domain.activity import Activity, ActivityKind, AgentDay

    sales = SalesApplication(env=sqlite_env(data_dir / "sales.sqlite"), zone=zone)
    today = datetime.now(zone).date()
    kinds = (ActivityKind.CALL, ActivityKind.FOLLOW_UP, ActivityKind.CALL, ActivityKind.PAPERWORK)
    stored = 0
    for agent_id in DAY_AGENTS:
        meta = CommandMeta.new(Caller(f"u-{agent_id}", Role.AGENT, agent_id))
        for back in range(days):
            day = today - timedelta(days=days - 1 - back)
            agent_day = AgentDay.start(agent_id, day, meta)
            batch: list[Any] = [agent_day]
            for i in range(ACTIVITIES_A_DAY):
                start = datetime.combine(day, datetime.min.time(), zone) + timedelta(hours=8, minutes=12 * i)
                kind = ActivityKind.MEETING if i % 10 == 0 else kinds[i % 4]
                activity = Activity.plan(
                    agent_id=agent_id,
                    customer_id=None,
                    kind=kind,
                    planned_start=start,
                    planned_end=start + timedelta(minutes=10),
                    purpose=f"{kind.value} {i}",
                    source="agent",
                    source_key=None,
                    meta=CommandMeta.new(meta.actor),
                )
                if activity.is_appointment:
                    agent_day.book(activity.activity_id, activity.planned_start, activity.planned_end, meta)
                if day < today and i % 10 not in (3, 7):
                    activity.complete(
                        outcome="done", notes=None, next_step=None, at=activity.planned_end, meta=meta
                    )
                elif day < today and i % 10 == 3:
                    activity.cancel("rescheduled by the customer", meta)
                batch.append(activity)
            sales.save(*batch)
            stored += ACTIVITIES_A_DAY
    sales.work.catch_up()  # the tables beside the store, as the service would on its first read
    sales.close()
    return stored


def agents_day(system: System, days: int, seconds: float) -> dict[str, list[float]]:
    """Latencies of ``get_daily_plan`` (a random agent of the team, a random day of the history)
    and ``get_team_day`` (the team, a random day), read by its manager, and of ``ping`` by the same
    clients."""
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=30) as client:
        assert client.call(
            "sales",
            "create_team",
            {"team_id": DAY_TEAM, "name": "Day", "branch": "Ningbo", "manager_user_id": "mgr-day"},
        )["ok"]
        for agent_id in DAY_AGENTS:
            reply = client.call(
                "sales",
                "register_agent",
                {"agent_id": agent_id, "name": agent_id, "team_id": DAY_TEAM, "hired_on": "2020-01-01"},
            )
            assert reply["ok"], reply
    zone = ZoneInfo(system.env.get("CRM_TIMEZONE", "Asia/Shanghai"))
    stored = seed_agents_days(system.run_dir / "data", days, zone)
    print(f"  seeded {stored:,} activities", file=sys.stderr, flush=True)
    today = datetime.now(zone).date()
    picks = random.Random(7)
    dates = [(today - timedelta(days=picks.randrange(days))).isoformat() for _ in range(10_000)]
    agents = [DAY_AGENTS[picks.randrange(len(DAY_AGENTS))] for _ in range(10_000)]
    manager = Caller("mgr-day", Role.MANAGER)

    def daily_plan(client: CrmClient, n: int) -> None:
        reply = client.call(
            "sales", "get_daily_plan", {"agent_id": agents[n % 10_000], "date": dates[n % 10_000]}
        )
        assert reply["ok"] and len(reply["result"]["activities"]) == ACTIVITIES_A_DAY, reply

    def team_day(client: CrmClient, n: int) -> None:
        reply = client.call("sales", "get_team_day", {"team_id": DAY_TEAM, "date": dates[n % 10_000]})
        assert reply["ok"] and reply["result"]["totals"]["planned"] > 0, reply

    def sales_ping(client: CrmClient, _: int) -> None:
        assert client.call("sales", "ping", {})["ok"]

    return {
        "ping": latencies(system, 4, seconds, sales_ping, manager),
        "get_daily_plan": latencies(system, 4, seconds, daily_plan, manager),
        "get_team_day": latencies(system, 4, seconds, team_day, manager),
    }


# 5. Book transfer ------------------------------------------------------------------------------


def book_transfer(system: System, customers: int) -> tuple[float, float]:
    """Customers moved per second by the hand-over process for a book of ``customers`` (stored
    straight into the customer store beforehand, for an agent of a team of three; round robin over
    the other two), from the transfer's start to its last customer moved; and the hand-over
    process's own peak memory (MB)."""
    from tests.e2e.test_sales_force import new_team

    app = CustomerApplication(env=sqlite_env(system.run_dir / "data" / "customer.sqlite"))
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        _, (leaving, *_) = new_team(client, "mgr-bench", 3)
        for start in range(0, customers, 500):
            app.save(*[a for _ in range(min(500, customers - start)) for a in new_customer(app, leaving)])
        app.owners.catch_up()  # what the hand-over process would do first, outside the clock
        began = time.monotonic()
        reply = client.call(
            "customer",
            "transfer_book",
            {"from_agent_id": leaving, "successor": {"kind": "round_robin"}, "reason": "bench"},
        )
        assert reply["ok"], reply
        transfer_id = reply["result"]["transfer_id"]
        while True:
            status = client.call("customer", "get_book_transfer", {"transfer_id": transfer_id})["result"]
            if status["moved"] >= customers:
                break
            time.sleep(0.05)
        seconds = time.monotonic() - began
    app.close()
    process = system.processes["handover"].process
    assert process is not None
    return customers / seconds, peak_rss_mb(process.pid)


def raw_bulk_upserts(mongo_uri: str, count: int, batch: int = 1000, *, journaled: bool = True) -> float:
    """Documents per second upserted with pymongo bulk_write into the same server: journaled like
    every read-model write, or (to show what journaling costs) acknowledged before the journal."""
    client = mongo_client(mongo_uri) if journaled else MongoClient(mongo_uri, tz_aware=True)
    database_name = f"bench_raw_{uuid.uuid4().hex[:6]}"
    collection = client[database_name]["docs"]
    document = {
        "profile": {"full_name": "Bench Person", "address": {"city": "Hangzhou"}},
        "policies": [{"policy_number": "POL-0", "annual_premium": "1200.00"}] * 2,
        "record_version": 1,
        "revision": 1,
    }
    began = time.monotonic()
    for start in range(0, count, batch):
        collection.bulk_write(
            [
                ReplaceOne({"_id": f"c{i}"}, {**document, "_id": f"c{i}"}, upsert=True)
                for i in range(start, min(count, start + batch))
            ],
            ordered=False,
        )
    rate = count / (time.monotonic() - began)
    client.drop_database(database_name)
    client.close()
    return rate


def _registered(i: int) -> dict[str, Any]:
    return {
        "event_type": "customer.registered",
        "aggregate_id": f"c{i}",  # a customer's record is its own aggregate
        "aggregate_version": 1,
        "occurred_at": "2026-12-01T00:00:00+00:00",
        "payload": {
            "customer_id": f"c{i}",
            "full_name": "Bench Person",
            "national_id": "110105194912310021",
            "mobile_phone": "13900000000",
            "email": None,
            "date_of_birth": "1949-12-31",
            "address": {"line1": "1 Bench Road", "city": "Hangzhou", "province": "Zhejiang"},
            "owning_agent_id": "A-1",
        },
    }


def _sold(i: int, n: int) -> dict[str, Any]:
    return {
        "event_type": "sales.policy_sold",
        "aggregate_id": f"p{i}-{n}",
        "aggregate_version": 1,
        "occurred_at": "2026-12-01T00:00:01+00:00",
        "payload": {
            "customer_id": f"c{i}",
            "policy_number": f"POL-{i:08d}{n}",
            "product": "life",
            "annual_premium": "1200.00",
            "start_date": "2026-12-01",
            "end_date": "2031-12-01",
            "agent_id": "A-1",
        },
    }


def raw_same_shape_updates(mongo_uri: str, customers: int, batch: int = 1000) -> float:
    """The ceiling of a replay: events per second written by the very updates a replay of
    ``customers`` customers of ``grow_history`` writes, batch for batch (registrations creating the
    documents, then each customer's two policies in one update), journaled, into a fresh collection
    with the read model's indexes, on the same server. Each batch's updates are built before its
    clock starts, so this is what the database and pymongo take, without reading or decoding
    events."""
    client = mongo_client(mongo_uri)
    database_name = f"bench_shape_{uuid.uuid4().hex[:6]}"
    collection = client[database_name]["docs"]
    ensure_indexes(collection)
    messages: Iterator[dict[str, Any]] = itertools.chain(
        map(_registered, range(customers)),
        (_sold(i, n) for i in range(customers) for n in range(2)),
    )
    written, seconds = 0, 0.0
    while chunk := list(itertools.islice(messages, batch)):
        waves = bulk_waves(chunk)
        began = time.monotonic()
        for wave in waves:
            collection.bulk_write(wave, ordered=False)
        seconds += time.monotonic() - began
        written += len(chunk)
    client.drop_database(database_name)
    client.close()
    return written / seconds


def rebuild(system: System, model: str = "customer_360") -> dict[str, Any]:
    return crm_json(system, "rebuild", model)


# The services a rebuild reads history from (identity: the audit log), and the accounts.
WRITERS = ("identity", "customer", "sales", "service_desk", "analytics")


def serve(system: System, names: list[str]) -> None:
    """Start the services and wait until each answers on its RPC queue."""
    system.start(names)
    for service in names:
        while not rpc_consumers(system.amqp_uri, service.split("-")[0]):
            time.sleep(0.2)
    # Consuming is not ready: a service refuses every caller until it has heard identity's
    # revocations.
    system.wait_answering(sorted({(name.split("-")[0], "ping") for name in names}))


def report_rebuild_all(system: System, report: Report, customers: int, ceiling: float) -> None:
    """``crm rebuild all`` over the history grown for ``customers``: its replay rate beside the raw
    ``ceiling`` of the same run, and its peak memory."""
    summary = rebuild(system, "all")
    report.add(
        f"rebuild all at {customers:,} customers",
        summary["replay_events_per_second"],
        ceiling,
        "events/s",
        "same 360 updates, raw pymongo bulk",
        events_read=summary["events_read"],
        seconds=summary["seconds"],
        projected={m["model"]: m["events_projected"] for m in summary["models"]},
        whole_rebuild_events_per_second=summary["events_per_second"],
        note="stored events read per second over read_history, each public one applied to "
        "every read model taking it (360, timeline, search); the internal national-id "
        "claims (1 in 4) are read, never written",
    )
    report.add(f"rebuild peak RSS at {customers:,} customers", summary["peak_rss_mb"], None, "MB", "-")


# 4. Relay --------------------------------------------------------------------------------------


def relay_rate(data_dir: Path, amqp_uri: str, events: int) -> tuple[float, float]:
    """Events per second published by the relay, and raw pipelined confirmed publishes of the same
    messages already encoded (500 in flight, as the relay's batches), to the same broker and the
    same queues."""
    customers = CustomerApplication(env=sqlite_env(data_dir / "customer.sqlite"))
    messages = [
        m for batch in customers.notifications(0, 1000) for n in batch if (m := customers.envelope(n))
    ][:events]
    queue = Queue(
        f"bench.relay.{uuid.uuid4().hex[:6]}", exchange=events_exchange, routing_key="#", durable=True
    )
    with Connection(amqp_uri) as conn:
        events_exchange.declare(channel=conn.default_channel)
        queue.bind(conn.default_channel).declare()
        bodies = [(encode(m), m["event_type"], m["event_id"]) for m in messages]
        publisher = PipelinedPublisher(conn, events_exchange)
        began = time.monotonic()
        for start in range(0, len(bodies), 500):
            for body, routing_key, message_id in bodies[start : start + 500]:
                publisher.publish(body, routing_key, message_id=message_id)
            publisher.wait_for_confirms()
        raw = len(messages) / (time.monotonic() - began)
        publisher.close()
        queue.bind(conn.default_channel).purge()

        stop_at = messages[-1]["global_position"]
        relay = Relay(customers, amqp_uri, tracking_name=f"bench.{uuid.uuid4().hex[:6]}")
        original = customers.notifications

        def bounded(after: int, batch_size: int = 500):  # publish exactly the same events
            for batch in original(after, batch_size):
                kept = [n for n in batch if n.id <= stop_at]
                if kept:
                    yield kept
                if len(kept) < len(batch):
                    return

        customers.notifications = bounded  # type: ignore[method-assign]
        began = time.monotonic()
        published = relay.publish_pending(conn)
        relayed = published / (time.monotonic() - began)
        queue.bind(conn.default_channel).delete()
    customers.close()
    return relayed, raw


# -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json-out", type=Path, default=REPO / ".run" / "bench.json")
    args = parser.parse_args(argv)
    sizes = Sizes.of(args.quick)
    report = Report()
    with (
        fresh_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp,
        System(Path(tmp), amqp_uri, mongo_port=free_port()).running() as system,
    ):
        staff(system)
        print("1. command path (10 clients)", file=sys.stderr, flush=True)
        ping_rate = closed_loop(system, 10, sizes.command_seconds, ping)
        register_rate = closed_loop(system, 10, sizes.command_seconds, register)
        report.add("rpc register_customer", register_rate, ping_rate, "calls/s", "rpc ping, same clients")
        # A second system beside this one, idle meanwhile.
        pg_ping, pg_register = postgres_command_path(sizes.command_seconds)
        report.add(
            "rpc register_customer, PostgreSQL", pg_register, pg_ping, "calls/s", "rpc ping, same system"
        )

        print("2. freshness at half the command maximum", file=sys.stderr, flush=True)
        lags = freshness(system, register_rate / 2, sizes.freshness_commands)
        report.add_latencies(
            "freshness p{p}", lags, None, f"at {register_rate / 2:,.0f} commands/s", (50, 95, 99)
        )

        print("2b. book transfer", file=sys.stderr, flush=True)
        moved, handover_mb = book_transfer(system, sizes.book)
        report.add(
            f"book transfer of {sizes.book:,}",
            moved,
            register_rate,
            "customers/s",
            "register_customer calls/s, same run",
        )
        report.add("hand-over process peak RSS", handover_mb, None, "MB", "-")

        print("2c. import", file=sys.stderr, flush=True)
        for rows in sizes.import_rows:
            rate, import_mb, summary = import_book(system, rows)
            if rows == sizes.import_rows[-1]:
                report.add(
                    f"import of {rows:,} rows",
                    rate,
                    register_rate,
                    "rows/s",
                    "register_customer calls/s, same run",
                    registered=summary["registered"],
                    rejected_rows=summary["rejected_rows"],
                )
            report.add(f"import peak RSS at {rows:,} rows", import_mb, None, "MB", "-")

        print("2d. the agent's day", file=sys.stderr, flush=True)
        day_latencies = agents_day(system, sizes.plan_days, sizes.plan_seconds)
        for name in ("get_daily_plan", "get_team_day"):
            report.add_latencies(
                f"{name} p{{p}}",
                day_latencies[name],
                day_latencies["ping"],
                "sales ping p{p}, same 4 clients",
                note=f"team of {len(DAY_AGENTS)} agents, {ACTIVITIES_A_DAY} activities each a day, "
                f"{sizes.plan_days} days; the ratio is how many pings one read costs",
            )

        print("2e. the SLA clock", file=sys.stderr, flush=True)
        jumps, once = sla_clock(amqp_uri, sizes.sla_tickets)
        fired = sum(j.expected for j in jumps)
        report.add(
            "SLA timers fire",
            fired / sum(j.seconds for j in jumps),
            register_rate,
            "events/s",
            "register_customer calls/s, same run",
            note=f"{sizes.sla_tickets:,} open tickets, two desk processes; warnings and breaches "
            f"(with escalations) after two jumps of the clock; fired {once['fired']:,} of "
            f"{once['expected']:,}, at most {once['most_per_ticket_and_kind']} per ticket and kind",
        )
        for j in jumps:
            for p, value in ((50, j.lateness_p50), (99, j.lateness_p99)):
                report.add(
                    f"SLA lateness p{p}, jump to +{int(j.to.total_seconds() // 3600)}h",
                    value * 1000,
                    None,
                    "ms",
                    f"{j.expected:,} fell due at the jump",
                )

        print("2f. every projection drains a backlog", file=sys.stderr, flush=True)
        drained, takers = projector_drain(system, sizes.backlog)
        raw_upserts = raw_bulk_upserts(system.mongo_uri, sizes.raw_upserts)
        report.add(
            "projector drains backlog",
            drained,
            raw_upserts,
            "events/s",
            "journaled raw bulk upserts, docs/s",
            note=f"{sizes.backlog:,} registrations, each applied by {takers} projections (counted "
            "once per projection) in one process, a thread and a queue each",
        )

        print("2g. churn rules under live load", file=sys.stderr, flush=True)
        churn = churn_under_load(system, sizes.complaints)
        report.add(
            "churn rules assessed live",
            churn["assessed"] / churn["hook_seconds"] if churn["hook_seconds"] else 0.0,
            churn["events_per_second"],
            "customers/s",
            "360 events/s applied, same seconds",
            assessed=churn["assessed"],
            drain_customers_per_second=round(churn["assessed_per_second"], 1),
            note=f"{sizes.complaints:,} customers registered and complained while the projector "
            f"was stopped, then drained: customers assessed per second of the rules' own time (read, "
            f"assess, write) beside the 360's drain; the rules took {churn['hook_share']:.0%} of it",
        )

        print("2h. campaign launches", file=sys.stderr, flush=True)
        from bench.campaigns import campaign_launches

        for launched in campaign_launches(system, sizes.campaign_targets):
            if launched.targets == sizes.campaign_targets[-1]:
                report.add(
                    f"campaign launch over {launched.targets:,}",
                    launched.per_second,
                    register_rate,
                    "targets/s",
                    "register_customer calls/s, same run",
                    seconds=round(launched.seconds, 1),
                    contacted=launched.contacted,
                    control=launched.control,
                    excluded=launched.excluded,
                    note="from launch_campaign until the whole target is frozen with its work: a call "
                    "and an opportunity per customer called, a message per customer texted, on a live "
                    "system (relay and projectors taking the events meanwhile)",
                )
            report.add(
                f"campaign launcher peak RSS, {launched.targets:,}", launched.peak_rss_mb, None, "MB", "-"
            )

        # The rebuilds read each context's history over RPC: the write services run, nothing else.
        writers = [n for n in system.processes if n.split("-")[0] in WRITERS]
        system.stop([n for n in system.processes if n != "mongo"])
        print("3. rebuild", file=sys.stderr, flush=True)
        fresh_histories(system)
        for size in sizes.rebuild_events:
            grow_history(system.run_dir / "data", size)
            serve(system, writers)
            # The ceiling right before each rebuild: the same writes (a quarter of the events
            # are customers, one in four is an internal national-id claim, never written).
            ceiling = raw_same_shape_updates(system.mongo_uri, min(size // 4, sizes.raw_upserts))
            if size == sizes.rebuild_events[0]:
                upserts = raw_bulk_upserts(system.mongo_uri, min(size // 4, sizes.raw_upserts))
                unjournaled = raw_bulk_upserts(
                    system.mongo_uri, min(size // 4, sizes.raw_upserts), journaled=False
                )
                report.add(
                    "journaled bulk upserts",
                    upserts,
                    unjournaled,
                    "docs/s",
                    "same upserts acknowledged before the journal",
                )
            report_rebuild_all(system, report, size // 4, ceiling)
            report_recompute(system, report, size // 4)
            system.stop(writers)
            if size == sizes.rebuild_events[0]:
                print("4. relay", file=sys.stderr, flush=True)
                relayed, raw = relay_rate(system.run_dir / "data", amqp_uri, sizes.relay_events)
                report.add(
                    "relay publish", relayed, raw, "events/s", "pipelined confirmed publish, same broker"
                )
    print(report.table())
    document = {
        "quick": args.quick,
        "machine_cpus": os.cpu_count(),
        "results": report.rows,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(document))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
