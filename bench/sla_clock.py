"""2e. The SLA clock: ``tickets`` open tickets with deadlines spread over a day, stored straight into
a service desk store of a system of their own (two service desk processes, nothing else, on the
run's broker); the clock (a ``FileClock`` every process reads) jumps twice, and the store is polled
for the warnings and breaches the timers append. How late they fire (from the jump until the k-th
one is stored: p50, p99) and how many a second the desk fires, and whether each fired once."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.utils import get_topic

from crm_cli.system import System, free_port, rpc_consumers
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from crm_shared.domain import CommandMeta
from crm_shared.eventstore import sqlite_env
from services.service_desk.application import ServiceDeskApplication
from services.service_desk.domain.rules import DeskRules
from services.service_desk.domain.ticket import Ticket

DESK = Caller("bench-desk", Role.SERVICE_DESK)
KINDS = ("complaint", "inquiry", "service_request")
CATEGORIES = ("claims.payment_delay", "billing.refund", "policy_service.beneficiary", "product.coverage")
FIRED_TOPICS = (get_topic(Ticket.SlaWarning), get_topic(Ticket.SlaBreached))
STALL_SECONDS = 120


@dataclass(frozen=True)
class Jump:
    to: timedelta  # from the start
    expected: int  # warnings and breaches due by then, not due before
    lateness_p50: float
    lateness_p99: float
    seconds: float  # until the last one was stored

    @property
    def rate(self) -> float:
        return self.expected / self.seconds if self.seconds else 0.0


def targets(tickets: int) -> list[timedelta]:
    """Each ticket's window: from one hour to 25 hours, evenly, so the deadlines (all opened at the
    start) spread over a day and the warnings (at three quarters) over 18 hours."""
    return [timedelta(hours=1) + timedelta(days=1) * i / tickets for i in range(tickets)]


def seed(data_dir: Path, start: datetime, windows: list[timedelta]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    desk = ServiceDeskApplication(env=sqlite_env(data_dir / "service_desk.sqlite"), clock=lambda: start)
    batch: list[Ticket] = []
    for i, window in enumerate(windows):
        kind = KINDS[i % 3]
        category = CATEGORIES[i % 4]
        ticket = Ticket.open(
            customer_id=str(uuid.uuid4()),
            owning_agent_id="A-1001",
            kind=kind,
            channel="phone",
            category=category,
            priority="urgent" if i % 2 else "ordinary",
            queue_id=desk.rules.queue_for(kind, category).queue_id,
            subject=f"ticket {i}",
            description="seeded by the benchmark",
            target=window,
            warning_share=desk.rules.warning_share,
            at=start,
            meta=CommandMeta.new(DESK),
        )
        batch.append(ticket)
        if len(batch) == 1000:
            desk.save(*batch)
            batch = []
    if batch:
        desk.save(*batch)
    desk.tables.catch_up()  # the due index, as the processes would build it on their first tick
    desk.close()


class FiredCounter:
    """Warnings and breaches stored so far, counted on from where the last count ended (a range
    of rowids, the notification ids), so that polling costs what was appended since, not the
    whole store."""

    def __init__(self, store: Path) -> None:
        self.db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
        self.seen = 0
        self.count = 0

    def __call__(self) -> int:
        (top,) = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()
        (more,) = self.db.execute(
            "SELECT COUNT(*) FROM stored_events WHERE rowid > ? AND rowid <= ? AND topic IN (?, ?)",
            (self.seen, top, *FIRED_TOPICS),
        ).fetchone()
        self.seen, self.count = int(top), self.count + int(more)
        return self.count


def due_by(windows: list[timedelta], share: float, at: timedelta) -> int:
    return sum((window * share <= at) + (window <= at) for window in windows)


def jump(
    clock: FileClock, start: datetime, fired_count: FiredCounter, to: timedelta, before: int, expected: int
) -> Jump:
    clock.set(start + to)
    jumped = time.monotonic()
    marks: list[float] = []
    goal = before + expected
    stalled_since = time.monotonic()
    last = before
    while True:
        count = fired_count()
        now = time.monotonic()
        while len(marks) < min(count, goal) - before:
            marks.append(now - jumped)
        if count >= goal:
            break
        if count != last:
            last, stalled_since = count, now
        elif now - stalled_since > STALL_SECONDS:
            raise RuntimeError(f"the SLA timers stalled at {count - before} of {expected}")
        time.sleep(0.05)
    return Jump(
        to, expected, marks[len(marks) // 2], marks[min(len(marks) - 1, int(len(marks) * 0.99))], marks[-1]
    )


def sla_clock(amqp_uri: str, tickets: int) -> tuple[list[Jump], dict[str, int]]:
    """The two jumps, and the counts of warnings and breaches per ticket at the end (each should
    be exactly one)."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-sla-") as tmp:
        run_dir = Path(tmp)
        clock = FileClock(run_dir / "clock")
        start = datetime.now(UTC).replace(microsecond=0)
        clock.set(start)
        windows = targets(tickets)
        began = time.monotonic()
        seed(run_dir / "data", start, windows)
        print(
            f"  seeded {tickets:,} open tickets in {time.monotonic() - began:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        system = System(
            run_dir, amqp_uri, mongo_port=free_port(), extra_env={"CRM_TEST_CLOCK_FILE": str(clock.path)}
        )
        desk_processes = system.replica_names("service_desk")
        system.start(desk_processes)
        try:
            deadline = time.monotonic() + 90
            while rpc_consumers(amqp_uri, "service_desk") < len(desk_processes):
                if time.monotonic() > deadline or set(desk_processes) & set(system.dead()):
                    raise RuntimeError(f"the service desk processes did not start; see {run_dir}/logs")
                time.sleep(0.2)
            store = run_dir / "data" / "service_desk.sqlite"
            rules_share = DeskRules.load().warning_share
            jumps = []
            fired = 0
            counter = FiredCounter(store)
            for to in (timedelta(hours=12), timedelta(hours=26)):
                expected = due_by(windows, rules_share, to) - fired
                jumps.append(jump(clock, start, counter, to, fired, expected))
                fired += expected
                print(
                    f"  jump to +{to}: {expected:,} fired in {jumps[-1].seconds:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(3)  # a few more ticks of both processes: nothing more may fire
            total = counter()
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                per_ticket = db.execute(
                    "SELECT MAX(n) FROM (SELECT originator_id, topic, COUNT(*) AS n FROM stored_events "
                    "WHERE topic IN (?, ?) GROUP BY originator_id, topic)",
                    FIRED_TOPICS,
                ).fetchone()[0]
        finally:
            system.stop()
    return jumps, {"fired": total, "expected": 2 * tickets, "most_per_ticket_and_kind": int(per_ticket or 0)}
