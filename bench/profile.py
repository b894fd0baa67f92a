"""Flame graphs of the CRM's processes under the benchmark's command load, reproducibly:

    python -m bench.profile                      # the customer service, 20 s of registrations
    python -m bench.profile --process projector --process relay-customer --seconds 30

Starts the whole system on a fresh RabbitMQ vhost and SecantusDB (as ``make bench`` does), drives it
with the benchmark's closed loop of ``register_customer`` from 10 clients, and records each chosen
process with py-spy (``--idle`` too, so waiting on SQLite, the broker or a confirm shows). Writes
``<out>/<process>.svg`` (open it in a browser) and ``<out>/<process>.txt`` (py-spy's raw stacks,
for grep or speedscope)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import closed_loop, register, staff
from crm_cli.system import REPO, System, bin_path, free_port, fresh_vhost


def py_spy() -> str:
    found = shutil.which("py-spy") or bin_path("py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: run 'make profile' (it installs it) or pip install py-spy")
    return found


def record(pid: int, seconds: float, out: Path, name: str) -> list[subprocess.Popen[bytes]]:
    common = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--idle",
        "--rate",
        "200",
    ]
    return [
        subprocess.Popen([*common, "--output", str(out / f"{name}.svg")], stdout=subprocess.DEVNULL),
        subprocess.Popen(
            [*common, "--format", "raw", "--output", str(out / f"{name}.txt")], stdout=subprocess.DEVNULL
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--process",
        action="append",
        dest="processes",
        help="a process of the system to record (customer, projector, relay-customer, ...); repeatable",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to record under load")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / ".run" / "profile")
    args = parser.parse_args(argv)
    names = args.processes or ["customer"]
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        fresh_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="crm-profile-") as tmp,
        System(Path(tmp), amqp_uri, mongo_port=free_port()).running() as system,
    ):
        unknown = [n for n in names if n not in system.processes]
        if unknown:
            raise SystemExit(
                f"no such process: {', '.join(unknown)}; choose from {', '.join(system.processes)}"
            )
        staff(system)
        closed_loop(system, args.clients, 3, register)  # warm up: connections, caches, queues
        recorders = []
        for name in names:
            process = system.processes[name].process
            assert process is not None
            recorders += record(process.pid, args.seconds, args.out, name)
        rate = closed_loop(system, args.clients, args.seconds, register)
        print(f"{rate:,.0f} registrations/s while recording", file=sys.stderr)
        for recorder in recorders:
            recorder.wait(60)
    for name in names:
        print(f"{name}: {args.out / (name + '.svg')} (raw stacks: {args.out / (name + '.txt')})")


if __name__ == "__main__":
    main()
