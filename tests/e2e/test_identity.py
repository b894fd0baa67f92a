"""Accounts and sign-in on real processes: the first administrator opens an agent's and a
manager's accounts; both sign in (the agent changes a temporary password first) and work; the
agent leaves the sales force: their account is disabled by itself, their live token is refused by
every service within five seconds, and their book moves to their successor. A token made the old
way (HMAC with a shared secret) is refused everywhere. Twenty wrong passwords lock an account, and
neither the answers nor the logs tell an existing user id from an unknown one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import jwt

from crm_cli.client import CrmClient
from crm_cli.system import System
from tests.e2e.conftest import ok
from tests.e2e.test_sales_force import new_team, register_for
from tests.support import customer_payload, wait_until

ClientFor = Callable[..., AbstractContextManager[CrmClient]]
# Every service, and an operation of each that a signed-in agent may call.
EVERY_SERVICE = (
    ("identity", "get_account"),
    ("customer", "get_customer"),
    ("sales", "get_daily_plan"),
    ("service_desk", "list_ticket_categories"),
    ("analytics", "get_customer_360"),
)


def anonymous(system: System) -> CrmClient:
    return CrmClient(system.amqp_uri, timeout=30)


def signed(system: System, token: str) -> CrmClient:
    return CrmClient(system.amqp_uri, token, timeout=30)


def sign_in(system: System, user_id: str, password: str) -> dict:
    with anonymous(system) as client:
        return client.call("identity", "sign_in", {"user_id": user_id, "password": password})


def payload_for(service: str, method: str, user_id: str, customer_id: str) -> dict:
    return {
        "get_account": {"user_id": user_id},
        "get_customer": {"customer_id": customer_id},
        "get_daily_plan": {},
        "list_ticket_categories": {},
        "get_customer_360": {"customer_id": customer_id},
    }[method]


def test_people_sign_in_and_work_and_a_departed_agents_token_is_refused_everywhere_within_seconds(
    system: System, operator_rpc: CrmClient
) -> None:
    assert system.first_admin_password, "the first start makes the administrator and says its password"
    admin = ok(sign_in(system, "admin", system.first_admin_password))
    suffix = uuid.uuid4().hex[:6]
    manager_id, agent_user = f"mgr-{suffix}", f"agent-{suffix}"
    team, (leaving, successor) = new_team(operator_rpc, manager_id, 2)
    with signed(system, admin["access_token"]) as client:
        made = ok(
            client.call(
                "identity",
                "create_account",
                {"user_id": agent_user, "display_name": "Zhang Min", "role": "agent", "agent_id": leaving},
            )
        )
        ok(
            client.call(
                "identity",
                "create_account",
                {
                    "user_id": manager_id,
                    "display_name": "Wang Li",
                    "role": "manager",
                    "password": "the manager's own pass phrase",
                },
            )
        )
    # The agent's temporary password works only to choose their own.
    temporary = made["temporary_password"]
    assert sign_in(system, agent_user, temporary)["error"]["code"] == "password_change_required"
    with anonymous(system) as client:
        change = {
            "user_id": agent_user,
            "current_password": temporary,
            "new_password": "zhang min's pass phrase",
        }
        ok(client.call("identity", "change_password", change))
    agent = ok(sign_in(system, agent_user, "zhang min's pass phrase"))
    manager = ok(sign_in(system, manager_id, "the manager's own pass phrase"))

    # Both work: the agent registers a customer of their own and sees it; the manager sees the day.
    with signed(system, agent["access_token"]) as client:
        customer_id = ok(client.call("customer", "register_customer", customer_payload(leaving)))[
            "customer_id"
        ]
        assert (
            ok(client.call("customer", "get_customer", {"customer_id": customer_id}))["owning_agent_id"]
            == leaving
        )
        others = register_for(operator_rpc, successor)
        assert (
            client.call("customer", "get_customer", {"customer_id": others})["error"]["code"] == "not_found"
        )
        wait_until(
            lambda: client.call("analytics", "get_customer_360", {"customer_id": customer_id})["ok"],
            timeout=30,
            what="the 360 view",
        )
    with signed(system, manager["access_token"]) as client:
        day = ok(client.call("sales", "get_team_day", {"team_id": team}))
        assert {a["agent_id"] for a in day["agents"]} >= {leaving, successor}

    # The agent leaves: every service refuses their live token within seconds.
    left_at = time.monotonic()
    ok(
        operator_rpc.call(
            "sales",
            "record_agent_departure",
            {
                "agent_id": leaving,
                "departed_on": "2026-12-01",
                "reason": "resigned",
                "successor": {"kind": "agent", "agent_id": successor},
            },
        )
    )

    def refused_everywhere() -> bool:
        with signed(system, agent["access_token"]) as client:
            replies = [
                client.call(service, method, payload_for(service, method, agent_user, customer_id))
                for service, method in EVERY_SERVICE
            ]
            return all(reply.get("error", {}).get("code") == "unauthenticated" for reply in replies)

    wait_until(refused_everywhere, timeout=10, interval=0.2, what="the departed agent's token to be refused")
    assert time.monotonic() - left_at < 5.0
    with signed(system, admin["access_token"]) as client:
        assert ok(client.call("identity", "get_account", {"user_id": agent_user}))["disabled"] is True
    assert sign_in(system, agent_user, "zhang min's pass phrase")["error"]["code"] == "unauthenticated"
    with anonymous(system) as client:
        refresh = client.call("identity", "refresh_session", {"refresh_token": agent["refresh_token"]})
        assert refresh["error"]["code"] == "unauthenticated"
    # The audit shows who did what: the agent's own registration, and their account's life, its
    # disabling by identity's own process (a service account, shown as such).
    with signed(system, admin["access_token"]) as client:
        by_agent = ok(client.call("analytics", "get_audit_log", {"user_id": agent_user, "limit": 50}))
        assert "customer.registered" in {e["event_type"] for e in by_agent["entries"]}

        def account_life() -> list[dict]:
            return ok(client.call("analytics", "get_audit_log", {"account": agent_user, "limit": 50}))[
                "entries"
            ]

        wait_until(
            lambda: "identity.account_disabled" in {e["event_type"] for e in account_life()},
            timeout=30,
            what="the audit to show the disabling",
        )
        life = {e["event_type"]: e for e in account_life()}
        assert {"identity.account_created", "identity.password_changed", "identity.signed_in"} <= set(life)
        disabled = life["identity.account_disabled"]
        assert (disabled["user_id"], disabled["role"]) == ("service:identity-reactions", "system")
        assert disabled["reason"].startswith(f"agent {leaving} departed")
    with signed(system, manager["access_token"]) as as_manager:
        assert as_manager.call("analytics", "get_audit_log", {})["error"]["code"] == "permission_denied"
    # The book moved with the existing transfer.
    wait_until(
        lambda: (
            ok(operator_rpc.call("customer", "get_customer", {"customer_id": customer_id}))["owning_agent_id"]
            == successor
        ),
        timeout=60,
        what="the departed agent's book to move",
    )


def test_a_token_made_with_the_old_shared_secret_is_refused_everywhere(system: System) -> None:
    now = time.time()
    claims = {"user_id": "intruder", "sub": "intruder", "role": "admin", "iat": now, "exp": now + 600}
    for forged in (
        jwt.encode(
            claims | {"iss": "crm-identity", "aud": "crm"}, "the old shared secret, 48 chars long........"
        ),
        jwt.encode(claims, "x" * 48, headers={"kid": "not-a-key"}),
    ):
        with signed(system, forged) as client:
            for service, method in EVERY_SERVICE:
                reply = client.call(
                    service, method, payload_for(service, method, "intruder", str(uuid.uuid4()))
                )
                assert reply["error"]["code"] == "unauthenticated", (service, reply)


def test_twenty_wrong_passwords_lock_the_account_and_nothing_tells_whether_it_exists(
    system: System,
) -> None:
    admin = ok(sign_in(system, "admin", system.first_admin_password or ""))
    user_id = f"desk-{uuid.uuid4().hex[:6]}"
    unknown = f"nobody-{uuid.uuid4().hex[:6]}"
    with signed(system, admin["access_token"]) as client:
        ok(
            client.call(
                "identity",
                "create_account",
                {
                    "user_id": user_id,
                    "display_name": "Li Na",
                    "role": "service_desk",
                    "password": "li na's pass phrase",
                },
            )
        )
    answers = set()
    for attempt in range(20):
        for who in (user_id, unknown):
            reply = sign_in(system, who, f"wrong guess {attempt}")
            answers.add(
                (reply["error"]["code"], reply["error"]["message"], str(reply["error"].get("fields")))
            )
    locked = sign_in(system, user_id, "li na's pass phrase")
    answers.add((locked["error"]["code"], locked["error"]["message"], str(locked["error"].get("fields"))))
    assert len(answers) == 1 and next(iter(answers))[0] == "unauthenticated"
    logs = "".join(p.read_text(errors="replace") for p in (system.run_dir / "logs").glob("*.log"))
    assert user_id not in logs and unknown not in logs
    with signed(system, admin["access_token"]) as client:
        account = ok(client.call("identity", "get_account", {"user_id": user_id}))
        assert account["disabled"] is False  # locked for a while, not disabled
        reset = ok(client.call("identity", "reset_password", {"user_id": user_id}))
    # An administrator's reset lifts the lock: the temporary password asks to be changed.
    assert (
        sign_in(system, user_id, reset["temporary_password"])["error"]["code"] == "password_change_required"
    )
