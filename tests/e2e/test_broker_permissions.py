"""The broker lets each part do only its job, on the real RabbitMQ: a service's, a consumer's or a
client's credentials are refused when they publish to ``crm.events``, and so is ``guest``; only the
relays may publish. A registration forged on the exchange (what anyone with the broker's guest
credentials could do before) reaches no read model."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from amqp.exceptions import AccessRefused, ConnectionForced, NotAllowed
from kombu import Connection

from crm_cli.system import System
from crm_shared.auth import Caller, Role
from crm_shared.messaging import encode, events_exchange
from tests.e2e.conftest import OPERATOR
from tests.e2e.running import settle
from tests.support import customer_payload

REFUSED = (AccessRefused, NotAllowed, ConnectionForced, ConnectionRefusedError, OSError)
NOT_RELAYS = ("customer", "identity", "projector", "sales-reactions", "handover", "campaigns")


def forged_registration() -> dict:
    customer_id = str(uuid.uuid4())
    person = customer_payload("A-1001")
    person.pop("owning_agent_id")
    return {
        "envelope_version": 1,
        "event_id": str(uuid.uuid4()),
        "event_type": "customer.registered",
        "schema_version": 1,
        "occurred_at": "2026-12-06T10:00:00+00:00",
        "context": "customer",
        "aggregate_type": "customer",
        "aggregate_id": customer_id,
        "aggregate_version": 1,
        "global_position": 999_999,
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "actor": {"user_id": "intruder", "role": "admin", "agent_id": None},
        "payload": {"customer_id": customer_id, "owning_agent_id": "A-1001", **person},
    }


def publish(uri: str, message: dict, routing_key: str) -> None:
    with Connection(uri, transport_options={"confirm_publish": True}, connect_timeout=5) as conn:
        producer = conn.Producer(exchange=events_exchange)
        producer.publish(
            encode(message),
            routing_key=routing_key,
            content_type="application/json",
            message_id=message["event_id"],
            retry=False,
        )


def guest_uri(system: System) -> str:
    parts = urlsplit(system.amqp_uri)
    return f"amqp://guest:guest@{parts.hostname}:{parts.port or 5672}{parts.path}"


def test_only_the_relays_may_publish_events(system: System) -> None:
    message = forged_registration()
    for name in NOT_RELAYS:
        uri = system.processes[name].own_env["AMQP_URI"]
        assert uri != system.amqp_uri, name
        with pytest.raises(REFUSED):
            publish(uri, message, "nothing.binds.this")
    with pytest.raises(REFUSED):
        publish(system.client_amqp_uri, message, "nothing.binds.this")
    with pytest.raises(REFUSED):
        publish(guest_uri(system), message, "nothing.binds.this")
    # A relay may (to a routing key nothing is bound to: no read model sees it).
    publish(system.processes["relay-customer"].own_env["AMQP_URI"], message, "nothing.binds.this")


def test_a_forged_registration_reaches_no_read_model(system: System) -> None:
    message = forged_registration()
    for uri in (
        guest_uri(system),
        system.client_amqp_uri,
        *(system.processes[name].own_env["AMQP_URI"] for name in NOT_RELAYS),
    ):
        with pytest.raises(REFUSED):
            publish(uri, message, message["event_type"])
    settle(system)
    from crm_cli.client import CrmClient

    with CrmClient.for_caller(system.client_amqp_uri, OPERATOR, system.signer) as client:
        for method in ("get_customer_360", "get_customer_timeline"):
            reply = client.call("analytics", method, {"customer_id": message["payload"]["customer_id"]})
            assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply
        found = client.call(
            "analytics", "find_customers", {"mobile_phone": message["payload"]["mobile_phone"]}
        )
        assert found["result"]["customers"] == []
    assert (
        Caller("intruder", Role.ADMIN).user_id not in (system.run_dir / "logs" / "projector.log").read_text()
    )
