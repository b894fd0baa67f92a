"""A RabbitMQ user for each part of the CRM, each allowed only its own job (least privilege):

- the relays alone publish to ``crm.events`` (and declare the topology the consumers need);
- each consumer (the projector, the process managers) reads only its own queues and writes only its
  dead letters: it cannot publish an event;
- each service reads its own RPC queue and replies, and calls other services through
  ``nameko-rpc``; a client (the CLI, a campaign launcher) only calls;
- every process beats on ``crm.heartbeats``; the dashboard alone reads the beats (its own queue),
  looks at and moves the dead letters, and calls services as the person signed in;
- nobody else: the broker's ``guest`` has no permission on the CRM's virtual host.

The grants come from the declarations of the processes and their queues, the same ones ``make
run``, the tests and the deployment read; ``crm broker-setup`` prints the ``rabbitmqctl`` commands
for a deployment (passwords from its secret store, never written here)."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

EVENTS = "crm.events"
DEAD_LETTERS = "crm.dead-letters"
HEARTBEATS = "crm.heartbeats"
# The default exchange: the dashboard requeues a dead letter straight to its queue through it.
DEFAULT_EXCHANGE = "amq.default"
REPLIES = r"rpc\.reply-standalone_rpc_proxy-.*"
DASHBOARD_BEATS = r"dashboard\.heartbeats\..*"
RPC_EXCHANGE = "nameko-rpc"
NOTHING = "^$"


@dataclass(frozen=True)
class Grant:
    """What a user may do on the virtual host: regular expressions over resource names."""

    configure: str
    write: str
    read: str
    # The user's tags: ``monitoring`` reads the management API (queues, rates), nothing else.
    tags: str = ""


def any_of(names: Iterable[str], patterns: Iterable[str] = ()) -> str:
    alternatives = [re.escape(n) for n in names] + list(patterns)
    return f"^({'|'.join(alternatives)})$" if alternatives else NOTHING


def grants(services: Iterable[str], consumers: Mapping[str, Iterable[str]]) -> dict[str, Grant]:
    """``services``: the nameko services; ``consumers``: each consuming process's queues."""
    queues = [q for own in consumers.values() for q in own]
    topology = [EVENTS, DEAD_LETTERS, *queues, *(f"{q}.dead" for q in queues)]
    dead = [f"{q}.dead" for q in queues]
    found: dict[str, Grant] = {
        # Publishers of the events, and (on start) declarers of what consumes them.
        "relay": Grant(any_of(topology), any_of([*topology, HEARTBEATS]), any_of([EVENTS, DEAD_LETTERS])),
        # Callers only: the CLI and the people's tools, and processes that call services (the
        # campaign launcher beats).
        "client": Grant(
            any_of([RPC_EXCHANGE], [REPLIES]),
            any_of([RPC_EXCHANGE, HEARTBEATS], [REPLIES]),
            any_of([RPC_EXCHANGE], [REPLIES]),
        ),
        # The dashboard: calls as the person signed in, follows the beats on a queue of its own,
        # looks at the dead letters and takes them (requeued through the default exchange).
        "dashboard": Grant(
            any_of([RPC_EXCHANGE], [REPLIES, DASHBOARD_BEATS]),
            any_of([RPC_EXCHANGE, HEARTBEATS, DEFAULT_EXCHANGE], [REPLIES, DASHBOARD_BEATS]),
            any_of([RPC_EXCHANGE, HEARTBEATS, *dead], [REPLIES, DASHBOARD_BEATS]),
        ),
        # The segment recompute works on the read models alone: it only beats.
        "segments": Grant(NOTHING, any_of([HEARTBEATS]), NOTHING),
        # The dashboard's reader of the management API: sees the queues, touches no message.
        "monitor": Grant(NOTHING, NOTHING, NOTHING, tags="monitoring"),
    }
    for process, own in consumers.items():
        # Its queues (declared with their dead-letter exchange, bound to the events) read, its
        # dead letters written; never an exchange configured, never an event published.
        mine = [*own, *(f"{q}.dead" for q in own)]
        found[process] = Grant(
            any_of(mine),
            any_of([*mine, DEAD_LETTERS, HEARTBEATS]),
            any_of([*mine, EVENTS, DEAD_LETTERS]),
        )
    for service in services:
        # Its RPC queue (with its dead letters) and replies; calls to others through nameko-rpc.
        own = [RPC_EXCHANGE, f"rpc-{service}", f"rpc-{service}.dead"]
        replies = [rf"rpc\.reply-{re.escape(service)}-.*"]
        found[service] = Grant(
            any_of(own, replies),
            any_of([*own, DEAD_LETTERS, HEARTBEATS], replies),
            any_of([*own, DEAD_LETTERS], replies),
        )
    return found


def user_of(process: str, services: Iterable[str], consumers: Mapping[str, Iterable[str]]) -> str | None:
    """The broker user a process connects as (None: it uses no broker)."""
    from crm_cli.system import declared_name

    name = declared_name(process)
    if name.startswith("relay-"):
        return "relay"
    if name in services or name in consumers:
        return name
    if name in ("campaigns", "rebuilds"):
        return "client"
    if name in ("dashboard", "segments"):
        return name
    return None


def with_credentials(amqp_uri: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_uri)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def vhost_of(amqp_uri: str) -> str:
    path = urlsplit(amqp_uri).path.lstrip("/")
    return path or "/"


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def ensure_users(
    amqp_uri: str, prefix: str, wanted: Mapping[str, Grant], secrets_dir: Path
) -> dict[str, str]:
    """Each user (``<prefix>.<name>``) with a random password kept in ``secrets_dir`` (its owner's
    only), and exactly its grant on the virtual host of ``amqp_uri``. Answers each name's URI."""
    vhost = vhost_of(amqp_uri)
    existing = {line.split("\t")[0] for line in rabbitmqctl("list_users", "-s").splitlines() if line}
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    uris = {}
    for name, grant in wanted.items():
        user = f"{prefix}.{name}"
        secret_file = secrets_dir / f"{name}.password"
        if not secret_file.exists() or user not in existing:
            password = secrets.token_hex(24)  # no leading "-": rabbitmqctl would take it for an option
            if user in existing:
                rabbitmqctl("change_password", user, password)
            else:
                rabbitmqctl("add_user", user, password)
            secret_file.write_text(password)
            secret_file.chmod(0o600)
        rabbitmqctl("set_permissions", "-p", vhost, user, grant.configure, grant.write, grant.read)
        rabbitmqctl("set_user_tags", user, *grant.tags.split())
        uris[name] = with_credentials(amqp_uri, user, secret_file.read_text().strip())
    return uris


def delete_users(prefix: str) -> None:
    for line in rabbitmqctl("list_users", "-s").splitlines():
        user = line.split("\t")[0]
        if user.startswith(f"{prefix}."):
            rabbitmqctl("delete_user", user)


def setup_script(vhost: str, prefix: str, wanted: Mapping[str, Grant]) -> str:
    """The ``rabbitmqctl`` commands that make a deployment's users, each password read from an
    environment variable the deployment's secret store sets (none has a default)."""
    lines = [
        "#!/usr/bin/env sh",
        "# The CRM's RabbitMQ users, each allowed only its own job. Generated by 'crm broker-setup'.",
        "set -eu",
        f"rabbitmqctl add_vhost {vhost} || true",
        f"rabbitmqctl clear_permissions -p {vhost} guest || true",
    ]
    for name, grant in wanted.items():
        variable = "CRM_BROKER_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        user = f"{prefix}.{name}"
        lines += [
            f': "${{{variable}:?set {variable} from the secret store}}"',
            f'rabbitmqctl add_user {user} "${variable}" || rabbitmqctl change_password {user} "${variable}"',
            f"rabbitmqctl set_permissions -p {vhost} {user} "
            f"'{grant.configure}' '{grant.write}' '{grant.read}'",
            f"rabbitmqctl set_user_tags {user} {grant.tags}".rstrip(),
        ]
    return "\n".join(lines) + "\n"
