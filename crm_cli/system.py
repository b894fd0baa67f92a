"""Starts the whole CRM on one machine: a SecantusDB server for the read models, the nameko
services, one relay per event store, the analytics projector, the process managers and timers,
and the dashboard, against the machine's RabbitMQ. ``make run`` runs this; the end-to-end tests use the same
``System`` to start real processes."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from crm_shared.config import DEFAULT_AMQP_URI
from crm_shared.crypto import new_data_key_text
from crm_shared.messaging import broker_reachable
from crm_shared.secret_files import ensure_secret
from crm_shared.tokens import KeyRing
from services.identity.bootstrap import client_secret_file

REPO = Path(__file__).resolve().parent.parent
NAMEKO_CONFIG = REPO / "deploy" / "local" / "nameko.yaml"
# Where ``make run`` leaves the URI the CLI on this machine connects to the broker with.
CLIENT_AMQP_URI_FILE = "client-amqp-uri"
# The broker administrators' passwords of the virtual hosts this machine made (its owner's only).
# RabbitMQ's management API on this machine (the dashboard's queues page reads it).
MANAGEMENT_URL = os.environ.get("CRM_RABBITMQ_API_URL", "http://127.0.0.1:15672")
ADMIN_SECRETS = Path(os.environ.get("CRM_BROKER_ADMIN_SECRETS", Path.home() / ".config" / "crm" / "broker"))
SERVICES = {
    "identity": "services.identity.service:IdentityService",
    "customer": "services.customer.service:CustomerService",
    "sales": "services.sales.service:SalesService",
    "service_desk": "services.service_desk.service:ServiceDeskService",
    "analytics": "services.analytics.service:AnalyticsService",
}
RELAYS = ("identity", "customer", "sales", "service_desk", "analytics")
# The processes that call other services on their own behalf, with the service account each signs
# in as and the operations it may call (every service follows identity's revocations).
SERVICE_ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{
        service: (f"service:{service}", ("identity.list_revocations",))
        for service in ("customer", "sales", "service_desk", "analytics")
    },
    "campaigns": ("service:campaigns", ("analytics.list_segment_targets",)),
    # The rebuilds asked for on the dashboard replay every store's public history.
    "rebuilds": ("service:rebuilds", tuple(f"{context}.read_history" for context in RELAYS)),
}


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def secantus_argv(storage: Path | str, port: int) -> list[str]:
    """A SecantusDB server on loopback: the read-model database of local runs and tests."""
    return [
        bin_path("secantusd-py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--log-level",
        "WARNING",
        # No oplog: nothing here reads one (no change streams, no replication), and it would keep
        # every inserted document whole for an hour, erased or not.
        "--standalone",
    ]


def declared_name(process: str) -> str:
    """The declaration a process runs: ``service_desk-2`` is a second ``service_desk``."""
    base, _, suffix = process.rpartition("-")
    return base if base and suffix.isdigit() else process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def management_api_answers(url: str) -> bool:
    """Whether RabbitMQ's management API answers at ``url`` (any HTTP answer: it is there)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url.rstrip("/") + "/api/overview", timeout=3).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def administered_vhost(vhost: str, base_uri: str = "amqp://127.0.0.1:5672/") -> str:
    """The virtual host (made if missing) with an administrator of its own (``<vhost>.admin``, its
    password random): the URI of that administrator. ``guest`` gets nothing there."""
    from crm_cli import broker

    rabbitmqctl("add_vhost", vhost) if vhost not in rabbitmqctl_lines("list_vhosts", "-s") else None
    admin = broker.ensure_users(
        base_uri.rstrip("/") + "/" + vhost,
        vhost,
        {"admin": broker.Grant(".*", ".*", ".*")},
        ADMIN_SECRETS / vhost,
    )
    return admin["admin"]


def rabbitmqctl_lines(*args: str) -> list[str]:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return [line.split("\t")[0] for line in result.stdout.splitlines() if line]


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own, so a test or benchmark never sees another run's queues,
    and its administrator's URI (``guest`` has no permission there, as in a deployment)."""
    from crm_cli import broker

    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl not found: these tests need the machine's RabbitMQ")
    vhost = f"crm-test-{uuid.uuid4().hex[:10]}"
    try:
        yield administered_vhost(vhost)
    finally:
        rabbitmqctl("delete_vhost", vhost)
        broker.delete_users(vhost)
        shutil.rmtree(ADMIN_SECRETS / vhost, ignore_errors=True)


def ensure_postgres_database(env: Mapping[str, str]) -> None:
    import psycopg

    name = env.get("POSTGRES_DBNAME", "crm")
    dsn = (
        f"host={env.get('POSTGRES_HOST', '127.0.0.1')} port={env.get('POSTGRES_PORT', '5432')} "
        f"user={env.get('POSTGRES_USER', 'postgres')} dbname=postgres"
    )
    with psycopg.connect(dsn, autocommit=True, password=env.get("POSTGRES_PASSWORD") or None) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            c.execute(f'CREATE DATABASE "{name}"')


def _answers(client: Any, service: str, method: str) -> bool:
    """Whether the service answers as it does when ready (a refusal of the empty payload is an
    answer; "not ready yet", such as revocations not heard from identity yet, is not)."""
    try:
        reply = client.call(service, method, {})
    except Exception:
        return False
    if not isinstance(reply, dict) or "ok" not in reply:
        return False
    return reply.get("error", {}).get("code") != "dependency_unavailable"


def rpc_consumers(amqp_uri: str, service: str = "customer", queue: str | None = None) -> int:
    """How many processes consume ``service``'s RPC queue (or the named queue)."""
    from kombu import Connection

    with Connection(amqp_uri, connect_timeout=5) as conn:
        try:
            _, _, consumers = conn.default_channel.queue_declare(queue or f"rpc-{service}", passive=True)
        except Exception:  # no such queue: nothing ever served here
            return 0
    return int(consumers)


def prepare_event_stores(env: Mapping[str, str]) -> None:
    """Create each store's tables once, before the services and relays start: concurrent DDL on
    PostgreSQL fails with 'tuple concurrently updated'."""
    from crm_shared.config import Settings
    from crm_shared.relay import APPLICATIONS, load_application

    settings = Settings.from_env({**env, "CRM_CREATE_TABLES": "true"})
    for context in APPLICATIONS:
        app = load_application(context, settings)
        app.factory.tracking_recorder()
        app.create_own_tables()
        app.close()


def prepare_queues(amqp_uri: str, queues: Mapping[str, dict[str, Any]]) -> None:
    """Declare the durable queues the processes consume (name: arguments). A queue of the same name
    left by an older version with other arguments (a classic queue where a quorum queue is wanted:
    RabbitMQ cannot change a queue's type) is replaced when it is empty; a non-empty one is left
    for the operator to drain, with instructions."""
    from amqp.exceptions import PreconditionFailed
    from kombu import Connection, Queue

    with Connection(amqp_uri, connect_timeout=5) as conn:

        def declare(name: str, arguments: dict[str, Any]) -> None:
            conn.channel().queue_declare(name, durable=True, auto_delete=False, arguments=arguments)

        for name, arguments in queues.items():
            try:
                declare(name, arguments)
                continue
            except PreconditionFailed:
                pass
            _, waiting, _ = conn.channel().queue_declare(name, passive=True)
            if waiting:
                raise SystemExit(
                    f"{name} is a queue of an older version of the CRM and still holds {waiting} "
                    "message(s); run the older version until it is empty (or, if they are not "
                    f"needed, 'rabbitmqctl purge_queue {name}'), then start again"
                )
            Queue(name).bind(conn.channel()).delete()
            declare(name, arguments)


def prepare_topology(amqp_uri: str, services: Iterable[str] = ()) -> None:
    """The exchanges and the consumers' bound queues, declared by the installation before any
    process starts: consumers and services may not declare exchanges (``crm_cli.broker``). The
    services' RPC queues are bound too, so a request to a service still starting waits for it
    instead of being dropped as unroutable."""
    from kombu import Connection, Exchange

    from crm_shared.heartbeat import HEARTBEATS
    from crm_shared.messaging import declare_topology
    from services.topology import CONSUMER_QUEUES

    with Connection(amqp_uri, connect_timeout=5) as conn:
        declare_topology(conn, CONSUMER_QUEUES)
        HEARTBEATS.declare(channel=conn.default_channel)
        rpc = Exchange("nameko-rpc", type="topic", durable=True)
        rpc.declare(channel=conn.default_channel)
        for service in services:
            conn.default_channel.queue_bind(f"rpc-{service}", exchange=rpc.name, routing_key=f"{service}.*")


def system_queues(services: list[str]) -> dict[str, dict[str, Any]]:
    """The RPC queues of the given services and the CRM's own consumer queues on crm.events."""
    from crm_shared.messaging import consumer_queue_arguments, rpc_queue_arguments
    from services.topology import CONSUMER_QUEUES

    queues = {f"rpc-{service}": rpc_queue_arguments(f"rpc-{service}") for service in services}
    return queues | {name: consumer_queue_arguments(name) for name in CONSUMER_QUEUES}


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _log: IO[bytes] | None = None
    # What this process adds to the installation's environment (its own service account).
    own_env: dict[str, str] = field(default_factory=dict)

    def start(self, env: Mapping[str, str]) -> None:
        descriptor = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._log = os.fdopen(descriptor, "ab")
        self.process = subprocess.Popen(
            self.argv,
            env={**env, **self.own_env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
            # Whatever the process creates (stores, journals, database files) is its owner's only.
            umask=0o077,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class System:
    """The processes of one CRM installation and the environment they share."""

    run_dir: Path
    amqp_uri: str = DEFAULT_AMQP_URI
    mongo_port: int = 27117
    event_store: str = "sqlite"
    extra_env: dict[str, str] = field(default_factory=dict)
    # How many processes serve a service (the rest: one each). Every service desk process runs the
    # SLA timers; two show that each warning and breach still fires once.
    replicas: dict[str, int] = field(default_factory=lambda: {"service_desk": 2})
    # Each process connects to RabbitMQ as a user of its own, allowed only its job (needs the
    # machine's rabbitmqctl); off, every process uses ``amqp_uri``.
    broker_users: bool = True
    # Where the dashboard listens on loopback (0: a free port, chosen at start).
    dashboard_port: int = 0
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for private in (self.run_dir, self.run_dir / "logs", self.run_dir / "data", self.run_dir / "mongo"):
            private.mkdir(parents=True, exist_ok=True, mode=0o700)
            private.chmod(0o700)
        self.identity_dir = self.run_dir / "identity"
        self.secrets_dir = self.run_dir / "secrets"
        for private in (self.identity_dir, self.secrets_dir):
            private.mkdir(parents=True, exist_ok=True, mode=0o700)
            private.chmod(0o700)
        # The first administrator's password, when this start made the account (printed once).
        self.first_admin_password: str | None = None
        # The URI a client (the CLI, a test calling as a person) connects with; the processes
        # each have their own (``broker_users``).
        self.client_amqp_uri = self.amqp_uri
        # The key that protects personal data at rest; a deployment keeps it in its secret store.
        self.data_key_file = ensure_secret(self.run_dir / "data_key", new_data_key_text)
        self.dashboard_port = self.dashboard_port or free_port()
        for name, argv in self._commands().items():
            own_env = {"CRM_PROCESS_NAME": name, **self.own_account_env(name)}
            self.processes[name] = ManagedProcess(
                name, argv, self.run_dir / "logs" / f"{name}.log", own_env=own_env
            )
        self.processes["dashboard"].own_env.update(self.dashboard_env())

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def dashboard_env(self) -> dict[str, str]:
        from crm_cli import broker
        from services.topology import CONSUMER_QUEUES

        return {
            "CRM_DASHBOARD_HOST": "127.0.0.1",
            "CRM_DASHBOARD_PORT": str(self.dashboard_port),
            "CRM_DEAD_LETTER_QUEUES": ",".join(CONSUMER_QUEUES),
            "CRM_RABBITMQ_VHOST": broker.vhost_of(self.amqp_uri),
        }

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/?retryWrites=false"

    @property
    def keys_dir(self) -> Path:
        """Identity's private signing keys (identity alone reads them in a deployment)."""
        return self.identity_dir / "keys"

    @property
    def public_keys_file(self) -> Path:
        return self.identity_dir / "jwks.json"

    @property
    def signer(self) -> KeyRing:
        """Identity's keys, for the tests and benchmarks of this installation to sign callers'
        tokens with (a deployment's tools sign in instead)."""
        return KeyRing(self.keys_dir)

    def operator_env(self, hours: int = 6) -> dict[str, str]:
        """The environment a ``crm`` command of an operator of this installation runs with: the
        shared one and a token signed with its identity's keys (hours long: a rebuild of a large
        history outlives a person's ten-minute token)."""
        from crm_shared.auth import Caller, Role, issue_token

        token = issue_token(Caller("op-tools", Role.OPERATOR), self.signer, ttl_seconds=hours * 3600)
        return {**self.env, "CRM_TOKEN": token}

    def own_account_env(self, name: str) -> dict[str, str]:
        """What a process adds to the shared environment: its own service account, if it has one."""
        account = SERVICE_ACCOUNTS.get(declared_name(name))
        if account is None:
            return {}
        user_id, _ = account
        return {
            "CRM_CLIENT_ID": user_id,
            "CRM_CLIENT_SECRET_FILE": str(client_secret_file(self.secrets_dir, user_id)),
        }

    def give_each_process_its_broker_user(self) -> None:
        """A RabbitMQ user per part of the system, allowed only its job (``crm_cli.broker``), and
        each process started with its own."""
        from crm_cli import broker
        from services.topology import CONSUMING_PROCESSES

        if not broker.available():
            return
        # Users are the broker's, not the vhost's: two systems on one vhost (a benchmark's second
        # system) each have their own, or the second would change the first's passwords.
        run = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:8]
        prefix = f"{broker.vhost_of(self.amqp_uri).replace('/', 'root')}.{run}"
        wanted = broker.grants(SERVICES, CONSUMING_PROCESSES)
        uris = broker.ensure_users(self.amqp_uri, prefix, wanted, self.secrets_dir / "broker")
        for name, managed in self.processes.items():
            user = broker.user_of(name, SERVICES, CONSUMING_PROCESSES)
            if user is not None:
                managed.own_env["AMQP_URI"] = uris[user]
        self.client_amqp_uri = uris["client"]
        if "dashboard" in self.processes and management_api_answers(MANAGEMENT_URL):
            self.processes["dashboard"].own_env.update(
                {
                    "CRM_RABBITMQ_API_URL": MANAGEMENT_URL,
                    "CRM_RABBITMQ_API_USER": f"{prefix}.monitor",
                    "CRM_RABBITMQ_API_PASSWORD_FILE": str(self.secrets_dir / "broker" / "monitor.password"),
                }
            )

    def secrets_missing(self, names: list[str]) -> bool:
        """Whether a process among ``names`` has a service account whose secret is not made yet."""
        accounts = [SERVICE_ACCOUNTS.get(declared_name(n)) for n in names]
        return any(not client_secret_file(self.secrets_dir, a[0]).exists() for a in accounts if a is not None)

    def bootstrap_identity(self) -> None:
        """Identity's keys, the processes' service accounts and the first administrator (its
        password kept in ``first_admin_password`` when made now)."""
        from crm_shared.config import Settings
        from services.identity.bootstrap import bootstrap

        accounts = {user_id: scopes for user_id, scopes in SERVICE_ACCOUNTS.values()}
        # What it creates (identity's store, its keys) is its owner's only, as the processes' is.
        mask = os.umask(0o077)
        try:
            made = bootstrap(Settings.from_env(self.env), accounts, self.secrets_dir)
        finally:
            os.umask(mask)
        if made is not None:
            self.first_admin_password = made

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AMQP_URI": self.amqp_uri,
            "MONGO_URI": self.mongo_uri,
            "CRM_DATA_DIR": str(self.run_dir / "data"),
            "CRM_KEYS_DIR": str(self.keys_dir),
            "CRM_PUBLIC_KEYS_FILE": str(self.public_keys_file),
            "CRM_DATA_KEY_FILE": str(self.data_key_file),
            "CRM_EVENT_STORE": self.event_store,
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            **self.extra_env,
        }

    def _commands(self) -> dict[str, list[str]]:
        commands = {"mongo": secantus_argv(self.run_dir / "mongo", self.mongo_port)}
        for name, module in SERVICES.items():
            for replica in self.replica_names(name):
                commands[replica] = [bin_path("nameko"), "run", "--config", str(NAMEKO_CONFIG), module]
        for context in RELAYS:
            commands[f"relay-{context}"] = [bin_path("crm-relay"), context]
        commands["projector"] = [bin_path("crm-projector")]
        commands["handover"] = [bin_path("crm-handover")]
        commands["sales-reactions"] = [bin_path("crm-sales-reactions")]
        commands["identity-reactions"] = [bin_path("crm-identity-reactions")]
        commands["segments"] = [bin_path("crm-segments")]
        commands["campaigns"] = [bin_path("crm-campaigns")]
        commands["rebuilds"] = [bin_path("crm-rebuilds")]
        commands["dashboard"] = [bin_path("crm-dashboard")]
        return commands

    def replica_names(self, service: str) -> list[str]:
        """The processes of a service: ``service``, then ``service-2``, ``service-3``..."""
        return [service if i == 1 else f"{service}-{i}" for i in range(1, self.replicas.get(service, 1) + 1)]

    def start(self, names: list[str] | None = None) -> None:
        problem = broker_reachable(self.amqp_uri)
        if problem:
            raise SystemExit(
                f"RabbitMQ is not reachable at {self.amqp_uri} ({problem}).\n"
                "Start it with:  rabbitmq-server -detached   (then wait a few seconds)\n"
                "or point AMQP_URI at a running broker."
            )
        if names is None and (running := rpc_consumers(self.amqp_uri)):
            raise SystemExit(
                f"another CRM is already serving on {self.amqp_uri} ({running} consumers on "
                "rpc-customer): stop it first, or use another RabbitMQ vhost in AMQP_URI"
            )
        starting = names or list(self.processes)
        prepare_queues(self.amqp_uri, system_queues([name for name in SERVICES if name in starting]))
        prepare_topology(self.amqp_uri, [name for name in SERVICES if name in starting])
        if self.event_store == "postgres":
            ensure_postgres_database(self.env)
            prepare_event_stores(self.env)
            self.extra_env["CRM_CREATE_TABLES"] = "false"
        if self.broker_users:
            self.give_each_process_its_broker_user()
        if "identity" in starting or self.secrets_missing(starting):
            # Also without identity running (a benchmark's lone service desk): their secrets.
            self.bootstrap_identity()
        for name in names or list(self.processes):
            self.processes[name].start(self.env)
            if name == "mongo":
                wait_for_port(self.mongo_port, 30)

    def stop(self, names: list[str] | None = None, grace: float = 10.0) -> None:
        """SIGTERM to all at once, then SIGKILL to whatever still runs after ``grace`` seconds
        (a nameko process can hang while stopping)."""
        chosen = [self.processes[name] for name in reversed(names or list(self.processes))]
        for managed in chosen:
            if managed.alive():
                managed.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for managed in chosen:
            while managed.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            managed.stop(signal.SIGKILL, timeout=5)

    @contextmanager
    def running(self) -> Iterator[System]:
        """Started and answering for the ``with`` block; stopped after it, whatever happened."""
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            self.stop()

    def wait_answering(self, calls: list[tuple[str, str]], timeout: float = 90) -> None:
        """Until each ``(service, method)`` answers as a ready service does (identity's revocations
        heard), several times in a row: every replica of the service ready, not just one."""
        from crm_cli.client import CrmClient
        from crm_shared.auth import Caller, Role

        deadline = time.monotonic() + timeout
        probe = Caller("system-check", Role.OPERATOR)
        with CrmClient.for_caller(self.amqp_uri, probe, self.signer, timeout=5) as client:
            for service, method in calls:
                answered = 0
                while answered < 3 * self.replicas.get(service, 1):
                    answered = answered + 1 if _answers(client, service, method) else 0
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the {service} service did not answer in {timeout}s")
                    if not answered:
                        time.sleep(0.5)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every service answers an RPC and the projector consumes its queue."""
        deadline = time.monotonic() + timeout
        self.wait_answering(
            [
                ("identity", "ping"),
                ("customer", "ping"),
                ("sales", "get_policy"),
                ("service_desk", "get_ticket"),
                ("analytics", "get_customer_360"),
            ],
            timeout,
        )
        for service, count in self.replicas.items():
            while rpc_consumers(self.amqp_uri, service) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not all {count} {service} processes serve in {timeout}s")
                time.sleep(0.2)
        from services.analytics.read_models import PROJECTIONS

        for name, queue in (
            *(("projector", p.queue) for p in PROJECTIONS.values()),
            ("handover", "customer.handover"),
            ("sales-reactions", "sales.work_follows_customer"),
            ("identity-reactions", "identity.departures"),
        ):
            while rpc_consumers(self.amqp_uri, queue=queue) == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {name} process did not start consuming in {timeout}s")
                time.sleep(0.2)
        if self.processes["dashboard"].alive():
            wait_for_port(self.dashboard_port, max(1.0, deadline - time.monotonic()))

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if not p.alive()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crm_cli.system",
        description="Run the whole CRM on this machine until Ctrl-C; restarts crashed processes.",
    )
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run", help="data, logs, secret")
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", DEFAULT_AMQP_URI))
    parser.add_argument("--mongo-port", type=int, default=27117)
    parser.add_argument("--event-store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--dashboard-port", type=int, default=int(os.environ.get("CRM_DASHBOARD_PORT", "8400"))
    )
    args = parser.parse_args(argv)
    amqp_uri = args.amqp_uri
    if amqp_uri == DEFAULT_AMQP_URI and shutil.which("rabbitmqctl"):
        # The machine's own broker: a virtual host of the CRM's, which guest may not touch.
        amqp_uri = administered_vhost("crm")
    system = System(
        args.run_dir, amqp_uri, args.mongo_port, args.event_store, dashboard_port=args.dashboard_port
    )
    system.start()
    print("starting the services...", flush=True)
    try:
        system.wait_ready()
    except TimeoutError as e:
        system.stop()
        raise SystemExit(f"{e}; see the logs in {args.run_dir}/logs") from None
    # The CLI on this machine connects as the broker's client user (``crm_cli.main``).
    client_uri_file = args.run_dir / CLIENT_AMQP_URI_FILE
    client_uri_file.write_text(system.client_amqp_uri)
    client_uri_file.chmod(0o600)
    admin = (
        f"""
The first administrator is 'admin', with the password (shown this once, keep it safe):

    {system.first_admin_password}
"""
        if system.first_admin_password
        else ""
    )
    print(
        f"""
CRM is running (logs in {args.run_dir}/logs, data in {args.run_dir}/data and {args.run_dir}/mongo).

The dashboard:  {system.dashboard_url}/   (its JSON API: {system.dashboard_url}/api/docs)
{admin}
Sign in, then add people (see the README, "Accounts and signing in"):
  .venv/bin/crm login --user admin
  .venv/bin/crm account create li.wei --name "Li Wei" --role operator   # prints a temporary password
  .venv/bin/crm account create zhang.min --name "Zhang Min" --role agent --agent-id A-1001

Then try it (as the user you signed in as):
  .venv/bin/crm team create T-BJ-01 --name "Beijing North" --branch Beijing --manager mgr-li
  .venv/bin/crm agent register A-1001 --name "Zhang Min" --team T-BJ-01 --hired-on 2024-03-01
  .venv/bin/crm register --name "Li Wei" --national-id 11010519491231002X \\
      --phone 13800138000 --birth-date 1949-12-31 --city Beijing --province Beijing \\
      --street "1 Chang'an Avenue" --agent A-1001
  .venv/bin/crm sell CUSTOMER_ID --product life --premium 12000.00 --start 2026-12-01 --term 20
  .venv/bin/crm complain CUSTOMER_ID --channel phone --category claims --priority urgent \\
      --description "Claim not paid"
  .venv/bin/crm close TICKET_ID --resolution "Paid" --satisfaction 4
  .venv/bin/crm 360 CUSTOMER_ID
  .venv/bin/crm --help

Ctrl-C stops everything.""",
        flush=True,
    )
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping:
            for name in system.dead():
                process = system.processes[name]
                process.restarts += 1
                print(
                    f"{name} exited; restarting (restart #{process.restarts}, see {process.log_path})",
                    flush=True,
                )
                process.stop()
                process.start(system.env)
            time.sleep(1)
    finally:
        print("stopping...", flush=True)
        system.stop()


if __name__ == "__main__":
    main()
