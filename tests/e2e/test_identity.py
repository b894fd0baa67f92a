"""Accounts and sign-in on real processes: the first administrator opens an agent's and a
manager's accounts; both sign in (the agent changes a temporary password first) and work; the
agent leaves the sales force: their account is disabled by itself, their live token is refused by
every service within five seconds, and their book moves to their successor. A token made the old
way (HMAC with a shared secret) is refused everywhere. Twenty wrong passwords lock an account, and
neither the answers nor the logs tell an existing user id from an unknown one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import jwt
import pytest

from crm_cli.client import CrmClient
from crm_cli.system import REPO, System
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


def create_account(client: CrmClient, user_id: str, name: str, role: str, **given: str) -> dict:
    """An administrator's ``client`` opens an account (a temporary password unless one is given)."""
    return ok(
        client.call(
            "identity", "create_account", {"user_id": user_id, "display_name": name, "role": role, **given}
        )
    )


def payload_for(service: str, method: str, user_id: str, customer_id: str) -> dict:
    return {
        "get_account": {"user_id": user_id},
        "get_customer": {"customer_id": customer_id},
        "get_daily_plan": {},
        "list_ticket_categories": {},
        "get_customer_360": {"customer_id": customer_id},
        "ping": {},
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
        made = create_account(client, agent_user, "Zhang Min", "agent", agent_id=leaving)
        create_account(client, manager_id, "Wang Li", "manager", password="the manager's own pass phrase")
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
    # Every process, not one per service: the service desk runs two, which take turns at its queue;
    # each refusal is in the log of the process that refused it, under its correlation id.
    refusals: dict[str, set[str]] = {}

    def every_replica_refused() -> bool:
        with signed(system, agent["access_token"]) as client:
            reply = client.call("service_desk", "list_ticket_categories", {})
        assert reply["error"]["code"] == "unauthenticated", reply
        asked = reply["error"]["correlation_id"]
        for name in system.replica_names("service_desk"):
            if asked in (system.run_dir / "logs" / f"{name}.log").read_text():
                refusals.setdefault(name, set()).add(asked)
        return len(refusals) == len(system.replica_names("service_desk")) > 1

    assert len(system.replica_names("service_desk")) == 2, "the test asks two service desk processes"
    wait_until(every_replica_refused, timeout=10, interval=0.1, what="both service desk processes to refuse")
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


def old_style_token(claims: dict, secret: bytes) -> str:
    """A token as every process could make one before identity: the claims' JSON and its
    HMAC-SHA256 under the shared secret (``.run/auth_secret``), both base64url."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    body = b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{b64(hmac.new(secret, body.encode('ascii'), hashlib.sha256).digest())}"


def test_a_token_made_with_the_old_shared_secret_is_refused_everywhere(system: System) -> None:
    # No process keeps or is given a shared secret any more.
    assert not (system.run_dir / "auth_secret").exists()
    assert not {"CRM_AUTH_SECRET", "CRM_AUTH_SECRET_FILE"} & set(system.env)
    now = time.time()
    claims = {"user_id": "intruder", "sub": "intruder", "role": "admin", "iat": now, "exp": now + 600}
    old = {"user_id": "intruder", "role": "admin", "agent_id": None, "exp": int(now) + 600}
    for forged in (
        old_style_token(old, secrets.token_bytes(32)),
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
        create_account(client, user_id, "Li Na", "service_desk", password="li na's pass phrase")
    answers = set()
    unknowns_tries: set[str] = set()  # the correlation ids of the tries with the unknown id
    for attempt in range(20):
        for who in (user_id, unknown):
            reply = sign_in(system, who, f"wrong guess {attempt}")
            answers.add(
                (reply["error"]["code"], reply["error"]["message"], str(reply["error"].get("fields")))
            )
            if who == unknown:
                unknowns_tries.add(reply["error"]["correlation_id"])
    locked = sign_in(system, user_id, "li na's pass phrase")
    answers.add((locked["error"]["code"], locked["error"]["message"], str(locked["error"].get("fields"))))
    assert len(answers) == 1 and next(iter(answers))[0] == "unauthenticated"
    logs = "".join(p.read_text(errors="replace") for p in (system.run_dir / "logs").glob("*.log"))
    assert user_id not in logs and unknown not in logs
    with signed(system, admin["access_token"]) as client:
        # The audit, for administrators alone, keeps every try: the account's failures by name,
        # the unknown id's refusals with the id hashed.
        def audited(**query: str) -> list[dict]:
            return ok(client.call("analytics", "get_audit_log", {**query, "limit": 100}))["entries"]

        wait_until(
            lambda: sum(e["event_type"] == "identity.sign_in_failed" for e in audited(account=user_id)) == 21,
            timeout=30,
            what="the audit to show each failed sign-in",
        )

        def refusals() -> list[dict]:
            return [
                e
                for e in audited()
                if e["event_type"] == "identity.sign_in_refused" and e["correlation_id"] in unknowns_tries
            ]

        refused = wait_until(
            lambda: len(found := refusals()) == 20 and found,
            timeout=30,
            what="the audit to show each of the unknown id's refusals",
        )
        assert not any(unknown in str(e) for e in refused)
        account = ok(client.call("identity", "get_account", {"user_id": user_id}))
        assert account["disabled"] is False  # locked for a while, not disabled
        reset = ok(client.call("identity", "reset_password", {"user_id": user_id}))
    # An administrator's reset lifts the lock: the temporary password asks to be changed.
    assert (
        sign_in(system, user_id, reset["temporary_password"])["error"]["code"] == "password_change_required"
    )


def test_crm_login_keeps_a_private_session_that_renews_itself_until_logout(system: System, tmp_path) -> None:
    """``crm login`` as a newcomer does it: the temporary password changed at the prompt, the
    session in a file its owner alone may read, an expired access token renewed by itself on the
    next command, and ``crm logout`` ending the session at identity too."""
    admin = ok(sign_in(system, "admin", system.first_admin_password or ""))
    user_id = f"admin-{uuid.uuid4().hex[:6]}"
    with signed(system, admin["access_token"]) as client:
        create_account(client, user_id, "Wang Fang", "admin", password="first pass phrase")
        # What a newcomer is handed: a temporary password, changed at the first sign-in.
        temporary = ok(client.call("identity", "reset_password", {"user_id": user_id}))["temporary_password"]
    session_file = tmp_path / "config" / "session.json"
    env = {
        **{k: v for k, v in os.environ.items() if k != "CRM_TOKEN"},
        "CRM_CONFIG_DIR": str(tmp_path / "config"),
        "CRM_SESSION_FILE": str(session_file),
        "PYTHONWARNINGS": "ignore",
    }

    def crm(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crm_cli.main", "--amqp-uri", system.amqp_uri, *args],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    login = crm(
        "login", "--user", user_id, "--password-stdin", stdin=f"{temporary}\nwang fang's own phrase\n"
    )
    assert login.returncode == 0, login.stderr
    assert "temporary" in login.stderr and f"signed in as {user_id} (admin)" in login.stdout
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    shown = crm("account", "show", user_id)
    assert shown.returncode == 0 and "Wang Fang" in shown.stdout, shown.stderr

    # The access token has expired: the next command renews it with the refresh token by itself.
    kept = json.loads(session_file.read_text())
    expired = jwt.encode(
        {"sub": user_id, "exp": int(time.time()) - 1},
        "not checked here: the CLI reads exp only",
        algorithm="HS256",
    )
    session_file.write_text(json.dumps({**kept, "access_token": expired}))
    shown = crm("account", "show", user_id)
    assert shown.returncode == 0 and "Wang Fang" in shown.stdout, shown.stderr
    renewed = json.loads(session_file.read_text())
    assert renewed["access_token"] != expired and renewed["refresh_token"] != kept["refresh_token"]
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600

    out = crm("logout")
    assert out.returncode == 0 and not session_file.exists(), out.stderr
    with anonymous(system) as client:
        refresh = client.call("identity", "refresh_session", {"refresh_token": renewed["refresh_token"]})
    assert refresh["error"]["code"] == "unauthenticated"
    after = crm("account", "show", user_id)
    assert after.returncode != 0 and "crm login" in after.stderr


def test_a_service_account_calls_only_the_operations_of_its_scopes(system: System) -> None:
    """An internal system signs in with its client credentials and may call what its scopes name
    and nothing else, in every service; a wrong secret is refused."""
    admin = ok(sign_in(system, "admin", system.first_admin_password or ""))
    client_id = f"service:billing-{uuid.uuid4().hex[:6]}"
    with signed(system, admin["access_token"]) as client:
        made = ok(
            client.call(
                "identity",
                "create_service_account",
                {
                    "user_id": client_id,
                    "display_name": "Billing",
                    "scopes": ["identity.list_revocations"],
                },
            )
        )
    with CrmClient.for_service(system.amqp_uri, client_id, made["client_secret"], timeout=30) as billing:
        allowed = billing.call("identity", "list_revocations", {"since": None})
        assert allowed["ok"] is True, allowed
        for service, method in [*EVERY_SERVICE, *((s, "ping") for s, _ in EVERY_SERVICE)]:
            reply = billing.call(service, method, payload_for(service, method, client_id, str(uuid.uuid4())))
            assert reply["error"]["code"] == "permission_denied", (service, reply)
            assert f"may not call {service}.{method}" in reply["error"]["message"]
    with (
        CrmClient.for_service(system.amqp_uri, client_id, "a guessed secret", timeout=30) as intruder,
        pytest.raises(PermissionError, match="refused the credentials"),
    ):
        intruder.call("service_desk", "list_ticket_categories", {})
