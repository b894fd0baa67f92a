"""One customer's story through all four services, as real processes over nameko RPC."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jwt
from kombu import Connection, Queue

from contracts.events import validate_message
from crm_cli.client import CrmClient
from crm_cli.system import System
from crm_shared.auth import Caller, Role, issue_token
from crm_shared.relay import Relay
from crm_shared.tokens import KeyRing
from tests.e2e.conftest import CLOSE, COMPLAINT, CONTRACT_TAP, SALE, Stores, new_id, ok
from tests.support import customer_payload, wait_until

ClientFor = Callable[[Caller], AbstractContextManager[CrmClient]]


def view_360(client: CrmClient, customer_id: str) -> dict | None:
    reply = client.call("analytics", "get_customer_360", {"customer_id": customer_id})
    return reply["result"] if reply["ok"] else None


def test_register_sell_complain_close_and_see_it_all_in_the_360_view(
    operator_rpc: CrmClient,
) -> None:
    client = operator_rpc
    customer_id = ok(client.call("customer", "register_customer", customer_payload(full_name="Chen Jing")))[
        "customer_id"
    ]
    policies = [
        ok(
            client.call(
                "sales",
                "sell_policy",
                {
                    "customer_id": customer_id,
                    "product": product,
                    "annual_premium": premium,
                    "start_date": "2026-12-01",
                    "term_years": 10,
                },
            )
        )["policy_number"]
        for product, premium in [("life", "12000.00"), ("auto", "3150.50")]
    ]
    opened = ok(
        client.call(
            "service_desk",
            "open_complaint",
            {
                "customer_id": customer_id,
                "channel": "phone",
                "category": "claims",
                "priority": "urgent",
                "description": "The claim of last month is unpaid.",
            },
        )
    )
    deadline = datetime.fromisoformat(opened["sla_deadline"])
    ticket = ok(client.call("service_desk", "get_ticket", {"ticket_id": opened["ticket_id"]}))
    assert deadline - datetime.fromisoformat(ticket["opened_at"]) == timedelta(days=2)
    closed = ok(
        client.call(
            "service_desk",
            "close_complaint",
            {
                "ticket_id": opened["ticket_id"],
                "resolution": "Paid with apologies",
                "satisfaction": 4,
            },
        )
    )
    assert closed["closed_within_sla"] is True

    def complete() -> dict | None:
        view = view_360(client, customer_id)
        if (
            view
            and view["policy_count"] == 2
            and view["complaints"]
            and view["complaints"][0]["status"] == "closed"
            and view["profile"]
        ):
            return view
        return None

    view = wait_until(complete, timeout=30, what="the 360 view to show the whole story")
    assert view["profile"]["full_name"] == "Chen Jing"
    assert view["owning_agent_id"] == "A-1001"
    assert sorted(p["policy_number"] for p in view["policies"]) == sorted(policies)
    assert all(p["status"] == "active" for p in view["policies"])
    assert Decimal(view["total_annual_premium"]) == Decimal("15150.50")
    (complaint,) = view["complaints"]
    assert complaint["ticket_id"] == opened["ticket_id"]
    assert complaint["satisfaction"] == 4
    assert complaint["sla_deadline"] == opened["sla_deadline"]
    assert view["open_complaint_count"] == 0
    assert view["last_event_at"] is not None
    policy = ok(client.call("sales", "get_policy", {"policy_number": policies[1]}))
    assert policy["annual_premium"] == "3150.50" and policy["end_date"] == "2036-12-01"


def test_registering_a_known_national_id_names_the_existing_customer(
    operator_rpc: CrmClient, stores: Stores
) -> None:
    payload = customer_payload()
    first = ok(operator_rpc.call("customer", "register_customer", payload))["customer_id"]
    before = stores.positions()
    again = operator_rpc.call("customer", "register_customer", {**payload, "full_name": "Another Name"})
    assert again["ok"] is False
    assert again["error"]["code"] == "duplicate_customer"
    assert again["error"]["existing_customer_id"] == first
    assert stores.positions() == before


def test_agents_see_only_their_own_customers_and_cannot_tell_others_exist(
    rpc: ClientFor, operator_rpc: CrmClient
) -> None:
    owner = Caller("u-a7", Role.AGENT, "A-7")
    other = Caller("u-a2", Role.AGENT, "A-2")
    payload = customer_payload(agent_id="A-7")
    with rpc(owner) as mine:
        customer_id = ok(mine.call("customer", "register_customer", payload))["customer_id"]
        refused = mine.call("customer", "register_customer", customer_payload(agent_id="A-2"))
        assert refused["error"]["code"] == "permission_denied"
        wait_until(lambda: view_360(mine, customer_id), what="the agent's own 360 view")
    with rpc(other) as theirs:
        for service, operation in (("analytics", "get_customer_360"), ("customer", "get_customer")):
            unknown_id = str(uuid.uuid4())
            denied = theirs.call(service, operation, {"customer_id": customer_id})["error"]
            unknown = theirs.call(service, operation, {"customer_id": unknown_id})["error"]
            assert denied["code"] == unknown["code"] == "not_found"
            assert denied["fields"] == unknown["fields"]
            assert denied["message"].replace(customer_id, "?") == unknown["message"].replace(unknown_id, "?")
        duplicate = theirs.call("customer", "register_customer", {**payload, "owning_agent_id": "A-2"})
        assert duplicate["error"]["code"] == "duplicate_customer"
        assert "existing_customer_id" not in duplicate["error"]  # whose customer it is stays hidden
        sale = theirs.call(
            "sales",
            "sell_policy",
            {
                "customer_id": customer_id,
                "product": "life",
                "annual_premium": "100.00",
                "start_date": "2027-01-01",
                "term_years": 1,
            },
        )
        assert sale["error"]["code"] == "validation_failed"
        assert sale["error"]["fields"][0]["rule"] == "unknown_customer"
    assert view_360(operator_rpc, customer_id)["owning_agent_id"] == "A-7"


def test_a_call_without_a_valid_caller_is_refused(system: System, tmp_path: Path) -> None:
    other_key = issue_token(Caller("intruder", Role.ADMIN), KeyRing.ensure(tmp_path / "not-identity"))
    # The scheme before identity: HMAC over the claims with a secret the services shared.
    claims = {"sub": "intruder", "role": "admin", "iss": "crm-identity", "aud": "crm", "iat": time.time()}
    hmac_signed = jwt.encode(claims | {"exp": time.time() + 600}, "the services' old shared secret" * 2)
    expired = issue_token(Caller("op", Role.OPERATOR), system.signer, ttl_seconds=-100)
    too_long = issue_token(Caller("op", Role.OPERATOR), system.signer, ttl_seconds=30 * 86400)
    for token in (None, "", "forged.token", other_key, hmac_signed, expired, too_long, "tök.én"):
        with CrmClient(system.amqp_uri, "", timeout=10) as client:
            context = client._proxy._worker_ctx.data  # type: ignore[union-attr]
            if token is None:
                context.pop("auth_token", None)  # no header at all
            else:
                context["auth_token"] = token
            for service, method in [("customer", "register_customer"), ("analytics", "get_customer_360")]:
                reply = client.call(service, method, customer_payload())
                assert reply["ok"] is False, token
                assert reply["error"]["code"] == "unauthenticated", (token, reply)


def test_two_concurrent_closes_of_one_complaint_apply_exactly_once(
    rpc: ClientFor, operator_rpc: CrmClient, stores: Stores
) -> None:
    customer_id = ok(operator_rpc.call("customer", "register_customer", customer_payload()))["customer_id"]
    ticket_id = ok(
        operator_rpc.call(
            "service_desk",
            "open_complaint",
            {
                "customer_id": customer_id,
                "channel": "web",
                "category": "billing",
                "priority": "ordinary",
                "description": "charged twice",
            },
        )
    )["ticket_id"]
    replies: list[dict] = []
    barrier = threading.Barrier(2)

    def close(satisfaction: int) -> None:
        with rpc(Caller(f"desk-{satisfaction}", Role.SERVICE_DESK)) as client:
            barrier.wait()
            replies.append(
                client.call(
                    "service_desk",
                    "close_complaint",
                    {
                        "ticket_id": ticket_id,
                        "resolution": "refunded",
                        "satisfaction": satisfaction,
                    },
                )
            )

    threads = [threading.Thread(target=close, args=(s,)) for s in (2, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["ok"] for r in replies) == [False, True]
    (refused,) = [r for r in replies if not r["ok"]]
    # Whichever loses either conflicted on the version or, if it loaded after the winner's append,
    # found the complaint already closed. It is never retried behind the caller's back.
    assert refused["error"]["code"] in {"concurrency_conflict", "invalid_state"}
    closed = [
        e
        for e in stores.events("service_desk", "service_desk.ticket_closed")
        if e["aggregate_id"] == ticket_id
    ]
    assert len(closed) == 1


def test_events_stored_while_the_relay_is_down_reach_the_360_view_once(
    system: System, operator_rpc: CrmClient, stores: Stores
) -> None:
    customer_id = ok(operator_rpc.call("customer", "register_customer", customer_payload()))["customer_id"]
    wait_until(lambda: view_360(operator_rpc, customer_id), what="the registration")
    system.stop(["relay-sales"])
    try:
        for premium in ("500.00", "700.00"):
            ok(
                operator_rpc.call(
                    "sales",
                    "sell_policy",
                    {
                        "customer_id": customer_id,
                        "product": "health",
                        "annual_premium": premium,
                        "start_date": "2027-01-01",
                        "term_years": 1,
                    },
                )
            )
        relay = Relay(stores.apps["sales"], system.amqp_uri)
        assert relay.position() < stores.apps["sales"].max_position()  # stored, not published
        assert view_360(operator_rpc, customer_id)["policy_count"] == 0
    finally:
        system.start(["relay-sales"])
    view = wait_until(
        lambda: (v := view_360(operator_rpc, customer_id)) and v["policy_count"] == 2 and v,
        what="the policies sold while the relay was down",
    )
    assert Decimal(view["total_annual_premium"]) == Decimal("1200.00")


def test_a_command_without_a_command_id_is_refused(system: System, stores: Stores) -> None:
    before = stores.positions()
    with CrmClient.for_caller(system.amqp_uri, Caller("op", Role.OPERATOR), system.signer) as client:
        client._proxy._worker_ctx.data.pop("command_id", None)  # type: ignore[union-attr]
        reply = client._cluster.customer.register_customer(customer_payload())  # type: ignore[union-attr]
    assert reply["error"]["code"] == "validation_failed"
    assert reply["error"]["fields"][0]["field"] == "command_id"
    assert stores.positions() == before


def test_every_command_sent_twice_with_one_command_id_answers_the_same_and_takes_effect_once(
    operator_rpc: CrmClient, stores: Stores
) -> None:
    """A client retry, or the broker redelivering a request whose reply was lost: the second
    delivery of each command gets the first answer, and appends nothing."""
    command_id = new_id()

    def twice(service: str, method: str, payload: dict, suffix: str) -> dict:
        first = ok(operator_rpc.call(service, method, payload, command_id=f"{command_id}-{suffix}"))
        before = stores.positions()
        again = operator_rpc.call(service, method, payload, command_id=f"{command_id}-{suffix}")
        assert ok(again) == first, (method, again)
        assert stores.positions() == before, f"the repeated {method} appended events"
        return first

    customer_id = twice("customer", "register_customer", customer_payload(), "register")["customer_id"]
    sold = twice("sales", "sell_policy", {"customer_id": customer_id, **SALE}, "sell")
    opened = twice("service_desk", "open_complaint", {"customer_id": customer_id, **COMPLAINT}, "open")
    closed = twice("service_desk", "close_complaint", {"ticket_id": opened["ticket_id"], **CLOSE}, "close")
    assert closed["ticket_id"] == opened["ticket_id"]
    assert sold["policy_number"].startswith("POL-")
    assert [e["aggregate_id"] for e in stores.events("customer", "customer.registered")].count(
        customer_id
    ) == 1
    closes = [e for e in stores.events("service_desk", "service_desk.ticket_closed")]
    assert [e["payload"]["ticket_id"] for e in closes].count(opened["ticket_id"]) == 1


def test_a_command_id_reused_for_another_command_is_refused(operator_rpc: CrmClient, stores: Stores) -> None:
    command_id = new_id()
    ok(operator_rpc.call("customer", "register_customer", customer_payload(), command_id=command_id))
    before = stores.positions()
    reply = operator_rpc.call("customer", "register_customer", customer_payload(), command_id=command_id)
    assert reply["ok"] is False
    assert reply["error"]["fields"][0]["field"] == "command_id"
    assert reply["error"]["fields"][0]["rule"] == "reused"
    assert stores.positions() == before


def test_every_published_message_follows_its_contract(system: System) -> None:
    """Runs last in this module: every message the relays published so far must validate."""
    messages = []
    with Connection(system.amqp_uri) as conn:
        queue = Queue(CONTRACT_TAP).bind(conn.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            messages.append(json.loads(message.body))
    types = {m["event_type"] for m in messages}
    assert {
        "customer.registered",
        "sales.policy_sold",
        "service_desk.ticket_opened",
        "service_desk.ticket_closed",
    } <= types
    for message in messages:
        assert validate_message(message) == {}, message
