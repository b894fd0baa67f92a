"""Who may do what on the broker, from the declarations of the processes and their queues: only
the relays publish events; a consumer reads only its own queues; a service only its RPC queue and
replies; and the deployment's script says exactly this."""

from __future__ import annotations

import re
from pathlib import Path

from crm_cli import broker
from crm_cli.system import REPO, SERVICES
from services.topology import CONSUMING_PROCESSES

GRANTS = broker.grants(SERVICES, CONSUMING_PROCESSES)


def allows(pattern: str, resource: str) -> bool:
    return re.fullmatch(pattern, resource) is not None


def test_only_the_relays_may_publish_events() -> None:
    writers = {name for name, grant in GRANTS.items() if allows(grant.write, broker.EVENTS)}
    assert writers == {"relay"}


def test_a_consumer_reads_only_its_own_queues_and_writes_only_dead_letters() -> None:
    projector = GRANTS["projector"]
    assert allows(projector.read, "analytics.customer_360")
    assert not allows(projector.read, "customer.handover")
    assert not allows(projector.read, "rpc-customer")
    assert allows(projector.write, broker.DEAD_LETTERS)
    assert not allows(projector.configure, broker.EVENTS) and not allows(
        projector.configure, broker.DEAD_LETTERS
    )
    handover = GRANTS["handover"]
    assert allows(handover.read, "customer.handover") and not allows(handover.read, "analytics.customer_360")


def test_a_service_reads_its_rpc_queue_and_its_own_replies_only() -> None:
    customer = GRANTS["customer"]
    assert allows(customer.read, "rpc-customer") and allows(customer.read, "rpc.reply-customer-1a2b")
    assert not allows(customer.read, "rpc-sales") and not allows(customer.read, "rpc.reply-sales-1a2b")
    assert allows(customer.write, broker.RPC_EXCHANGE) and not allows(customer.write, broker.EVENTS)
    client = GRANTS["client"]
    assert not allows(client.read, "rpc-customer") and not allows(client.write, broker.EVENTS)


def test_the_deployments_script_is_the_one_the_declarations_make() -> None:
    committed = (Path(REPO) / "deploy" / "rabbitmq" / "setup-users.sh").read_text()
    assert committed == broker.setup_script("crm", "crm", GRANTS), (
        "regenerate: crm broker-setup > deploy/rabbitmq/setup-users.sh"
    )
    # guest loses its permissions; every password comes from the deployment's secret store.
    assert "clear_permissions -p crm guest" in committed
    users = [line for line in committed.splitlines() if line.startswith("rabbitmqctl add_user")]
    assert users and all('"$CRM_BROKER_PASSWORD_' in line for line in users)


def test_every_part_beats_and_only_the_dashboard_follows_the_beats() -> None:
    for name in ("relay", "client", "projector", "handover", "customer", "dashboard"):
        assert allows(GRANTS[name].write, broker.HEARTBEATS), name
    readers = {name for name, grant in GRANTS.items() if allows(grant.read, broker.HEARTBEATS)}
    assert readers == {"dashboard"}
    assert not any(allows(grant.configure, broker.HEARTBEATS) for grant in GRANTS.values())


def test_the_dashboard_handles_dead_letters_but_publishes_no_event() -> None:
    dashboard = GRANTS["dashboard"]
    assert allows(dashboard.read, "analytics.customer_360.dead")
    assert allows(dashboard.write, broker.DEFAULT_EXCHANGE)  # a requeue, straight to its queue
    assert not allows(dashboard.read, "analytics.customer_360")  # never a live consumer's queue
    assert not allows(dashboard.write, broker.EVENTS)
    assert allows(dashboard.configure, "dashboard.heartbeats.1a2b") and not allows(
        dashboard.configure, "analytics.customer_360.dead"
    )
    monitor = GRANTS["monitor"]
    assert monitor.tags == "monitoring"
    assert not any(
        allows(p, "analytics.customer_360") for p in (monitor.configure, monitor.write, monitor.read)
    )
