"""Running a book of customers through a real system: many calls at once, waiting for the read
models to settle, and ``crm`` commands for their JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.system import REPO, System, free_port, fresh_vhost
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from tests.e2e.conftest import ok
from tests.support import staff_over_rpc, wait_until

OPERATOR = Caller("op-book", Role.OPERATOR)


@contextmanager
def staffed_system(
    run_dir: Path, at: datetime, teams: dict[str, tuple[str, ...]]
) -> Iterator[tuple[System, FileClock]]:
    """A system of its own (a book's segments rank the whole book) on a RabbitMQ vhost of its own,
    every process reading its time from a clock the test moves (set to ``at``), with ``teams`` of
    agents registered."""
    clock = FileClock(run_dir / "clock")
    clock.set(at)
    with fresh_vhost() as amqp_uri:
        env = {"CRM_TEST_CLOCK_FILE": str(clock.path)}
        with System(run_dir, amqp_uri, mongo_port=free_port(), extra_env=env).running() as system:
            with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
                for team, agents in teams.items():
                    staff_over_rpc(client, team, agents)
            yield system, clock


def calling(system: System, calls: list[tuple[str, str, dict[str, Any]]], clients: int = 4) -> list[dict]:
    """Every call made, by a few clients at once; the answers in the calls' order."""

    def share(part: int) -> list[tuple[int, dict]]:
        with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
            return [(n, ok(client.call(*calls[n]))) for n in range(part, len(calls), clients)]

    with ThreadPoolExecutor(clients) as pool:
        answers = dict(pair for part in pool.map(share, range(clients)) for pair in part)
    return [answers[n] for n in range(len(calls))]


def settle(system: System) -> None:
    """Until every projection has applied all it was sent and nothing more comes for a while: the
    work of one month is in the read models before the clock moves on."""
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:

        def applied() -> tuple[int, ...] | None:
            lags = ok(client.call("analytics", "get_projections", {}))["projections"]
            if any(lag["waiting_events"] for lag in lags):
                return None
            return tuple(lag["applied_events"] for lag in lags)

        seen: list[tuple[int, ...] | None] = []

        def still() -> bool:
            seen.append(applied())
            return len(seen) >= 4 and seen[-1] is not None and len(set(seen[-4:])) == 1

        wait_until(still, timeout=180, interval=0.5, what="the projections to settle")


def run_crm(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """``crm ARGS --json`` over the year's stores and read models."""
    env = {**system.operator_env(), "CRM_DATA_DIR": str(system.run_dir / "data")}
    return subprocess.run(
        [sys.executable, "-m", "crm_cli.main", *args, "--json", "--mongo-uri", system.mongo_uri],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def crm(system: System, *args: str) -> dict[str, Any]:
    return summary_of(run_crm(system, *args))


def recompute(system: System) -> dict[str, Any]:
    """``crm segments recompute``, once the nightly one the clock's jump started is done."""

    def done() -> dict[str, Any] | None:
        result = run_crm(system, "segments", "recompute")
        if result.returncode and "running already" in result.stderr:
            return None
        return summary_of(result)

    return wait_until(done, timeout=300, interval=1.0, what="the recompute's lease")
