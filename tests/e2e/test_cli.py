"""The ``crm`` client as a newcomer uses it against the running system: a team, an agent, a
customer, a profile change and its history, the agent's book, a reassignment with the ownership
history, and a book transfer followed to the end."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from crm_cli.system import REPO, System
from tests.support import cli_env, customer_payload, signed_in


def crm(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """``crm ARGS`` as a signed-in user: an operator, or whom a leading ``--as ROLE [--user U]
    [--agent-id A]`` names (the test signs that caller's token with its system's keys)."""
    return subprocess.run(
        [sys.executable, "-m", "crm_cli.main", "--amqp-uri", system.amqp_uri, *signed_in(system, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(system),
    )


def register_with_cli(system: System, person: dict[str, Any], agent: str) -> subprocess.CompletedProcess[str]:
    """``crm register`` of the person of a ``customer_payload``."""
    return crm(
        system,
        "register",
        "--name",
        person["full_name"],
        "--national-id",
        person["national_id"],
        "--phone",
        person["mobile_phone"],
        "--birth-date",
        person["date_of_birth"],
        "--street",
        "1 Road",
        "--city",
        "Ningbo",
        "--province",
        "Zhejiang",
        "--agent",
        agent,
    )


def test_a_newcomers_walkthrough_with_the_cli(system: System) -> None:
    team = f"T-CLI-{uuid.uuid4().hex[:6]}"
    first, second = f"{team}-A1", f"{team}-A2"
    assert (
        crm(
            system, "team", "create", team, "--name", "CLI", "--branch", "Ningbo", "--manager", "m1"
        ).returncode
        == 0
    )
    for agent in (first, second):
        assert (
            crm(
                system,
                "agent",
                "register",
                agent,
                "--name",
                agent,
                "--team",
                team,
                "--hired-on",
                "2024-03-01",
            ).returncode
            == 0
        )
    shown = json.loads(crm(system, "team", "show", team).stdout)
    assert [a["agent_id"] for a in shown["agents"]] == [first, second]

    person = customer_payload(agent_id=first)
    registered = register_with_cli(system, person, first)
    assert registered.returncode == 0, registered.stderr
    customer_id = json.loads(registered.stdout)["customer_id"]

    refused = crm(system, "profile", customer_id, "--birth-date", "1990-01-01", "--reason", "typo")
    assert refused.returncode == 1 and "matches_national_id" in refused.stderr
    assert (
        crm(system, "profile", customer_id, "--phone", "13600000000", "--reason", "new phone").returncode == 0
    )
    history = crm(system, "profile", customer_id, "--history").stdout
    assert "profile_updated" in history and "'13600000000'" in history and "new phone" in history

    book = crm(system, "customers", "--agent", first)
    assert [json.loads(line)["customer_id"] for line in book.stdout.splitlines()] == [customer_id]

    assert crm(system, "reassign", customer_id, "--to", second, "--reason", "closer").returncode == 0
    owners = crm(system, "customer", customer_id, "--history").stdout
    assert f"{first} -> {second}" in owners and "closer" in owners

    moved = crm(system, "transfer-book", second, "--successor-agent", first, "--reason", "back again")
    assert moved.returncode == 0, moved.stderr
    assert '"state": "completed"' in moved.stdout and "customers" in moved.stderr  # the progress bar
    assert json.loads(crm(system, "customer", customer_id).stdout)["owning_agent_id"] == first


def test_contact_points_consents_duplicates_merge_and_erasure_with_the_cli(system: System) -> None:
    person = customer_payload(agent_id="A-1001")
    registered = register_with_cli(system, person, "A-1001")
    customer_id = json.loads(registered.stdout)["customer_id"]

    added = crm(
        system, "contact", "add", customer_id, "--email", "Work@Example.cn", "--label", "work", "--preferred"
    )
    assert added.returncode == 0, added.stderr
    bad = crm(system, "contact", "add", customer_id, "--phone", "12345")
    assert bad.returncode == 1 and "phone: format" in bad.stderr
    assert (
        crm(system, "contact", "preferences", customer_id, "--do-not-call", "--reason", "asked").returncode
        == 0
    )
    listed = crm(system, "contact", "list", customer_id).stdout
    assert "* " in listed and "work@example.cn" in listed and "do not call: yes" in listed

    grant = ("consent", "grant", customer_id, "--channel", "email", "--purpose", "marketing")
    assert crm(system, *grant, "--source", "form", "--reference", "F-9").returncode == 0
    check = crm(system, "consent", "check", customer_id, "--channel", "email", "--purpose", "marketing")
    assert json.loads(check.stdout)["allowed"] is True
    withdraw = ("consent", "withdraw", customer_id, "--channel", "email", "--purpose", "marketing")
    assert crm(system, *withdraw, "--source", "web", "--reference", "prefs-page").returncode == 0
    shown = crm(system, "consent", "show", customer_id, "--history").stdout
    assert "email      marketing  withdrawn" in shown and "history:" in shown

    twin = customer_payload(agent_id="A-1001", mobile_phone=person["mobile_phone"])
    twin_id = json.loads(
        crm(
            system, "register", "--name", twin["full_name"], "--national-id", twin["national_id"],
            "--phone", twin["mobile_phone"], "--birth-date", twin["date_of_birth"], "--street", "1 Road",
            "--city", "Ningbo", "--province", "Zhejiang", "--agent", "A-1001",
        ).stdout
    )["customer_id"]  # fmt: skip
    assert twin_id in crm(system, "duplicates", customer_id).stdout
    merged = crm(system, "merge", customer_id, twin_id, "--reason", "same person")
    assert merged.returncode == 0, merged.stderr
    refused = crm(system, "profile", twin_id, "--phone", "13600000001", "--reason", "x")
    assert refused.returncode == 1 and "customer_merged" in refused.stderr

    erased = crm(system, "erase", customer_id, "--reason", "request", "--request", "DSR-7")
    assert erased.returncode == 0, erased.stderr
    assert sorted(json.loads(erased.stdout)["erased"]) == sorted([customer_id, twin_id])
    assert json.loads(crm(system, "customer", customer_id).stdout)["full_name"] is None
    assert "--storage-path" in crm(system, "compact-read-store", "--help").stdout


def test_selling_and_the_agents_day_with_the_cli(system: System) -> None:
    team = f"T-DAY-{uuid.uuid4().hex[:6]}"
    agent = f"{team}-A1"
    assert (
        crm(
            system, "team", "create", team, "--name", "Day", "--branch", "Wuxi", "--manager", "m-day"
        ).returncode
        == 0
    )
    assert (
        crm(
            system, "agent", "register", agent, "--name", agent, "--team", team, "--hired-on", "2024-03-01"
        ).returncode
        == 0
    )
    person = customer_payload(agent_id=agent, working_age=True)
    customer = json.loads(register_with_cli(system, person, agent).stdout)["customer_id"]
    as_agent = ("--as", "agent", "--agent-id", agent)
    opened = json.loads(
        crm(
            system,
            *as_agent,
            "opportunity",
            "open",
            customer,
            "--product",
            "life",
            "--premium",
            "6000.00",
            "--source",
            "referral",
        ).stdout
    )
    assert opened["stage"] == "new"
    quote = json.loads(
        crm(
            system,
            *as_agent,
            "quote",
            customer,
            "--product",
            "life",
            "--sum-insured",
            "300000.00",
            "--term",
            "10",
        ).stdout
    )
    sold = json.loads(crm(system, *as_agent, "sell", customer, "--quote", quote["quote_id"]).stdout)
    assert sold["annual_premium"] == quote["annual_premium"]
    for stage in ("contacted", "needs_analysis", "proposal"):
        assert (
            crm(
                system, *as_agent, "opportunity", "move", opened["opportunity_id"], "--stage", stage
            ).returncode
            == 0
        )
    won = crm(
        system,
        *as_agent,
        "opportunity",
        "move",
        opened["opportunity_id"],
        "--stage",
        "won",
        "--policy",
        sold["policy_number"],
    )
    assert won.returncode == 0, won.stderr
    wrong = crm(
        system,
        *as_agent,
        "policy",
        "pay",
        sold["policy_number"],
        "--payment-id",
        "P1",
        "--amount",
        "10.00",
        "--due",
        "2027-01-01",
    )
    assert wrong.returncode == 1 and "permission_denied" in wrong.stdout
    planned = crm(
        system,
        *as_agent,
        "plan",
        "add",
        "--kind",
        "visit",
        "--start",
        "2030-03-04 10:00",
        "--end",
        "2030-03-04 11:00",
        "--customer",
        customer,
        "--purpose",
        "policy review",
    )
    assert planned.returncode == 0, planned.stderr
    clash = crm(
        system,
        *as_agent,
        "plan",
        "add",
        "--kind",
        "meeting",
        "--start",
        "2030-03-04 10:30",
        "--end",
        "2030-03-04 11:30",
        "--purpose",
        "team meeting",
    )
    assert clash.returncode == 1 and "planned_start: overlaps" in clash.stderr
    day = crm(system, *as_agent, "day", "--date", "2030-03-04")
    assert day.returncode == 0 and "10:00-11:00  to come    visit      policy review" in day.stdout, (
        day.stdout
    )
    team_day = crm(system, "--as", "manager", "--user", "m-day", "team-day", team, "--date", "2030-03-04")
    assert team_day.returncode == 0 and agent in team_day.stdout, team_day.stderr
    pipeline = json.loads(
        crm(system, "--as", "manager", "--user", "m-day", "pipeline", "--team", team).stdout
    )
    assert {s["stage"]: s["count"] for s in pipeline["stages"]}["won"] == 1


def test_the_service_desk_with_the_cli(system: System) -> None:
    customer_id = json.loads(register_with_cli(system, customer_payload(agent_id="A-1001"), "A-1001").stdout)[
        "customer_id"
    ]

    def desk(*args: str) -> subprocess.CompletedProcess[str]:
        return crm(system, "--as", "service_desk", "--user", "desk-cli", *args)

    categories = desk("ticket", "categories")
    assert '"claims.payment_delay"' in categories.stdout
    opened = desk(
        "ticket", "open", customer_id, "--kind", "complaint", "--channel", "letter",
        "--category", "billing.double_charge", "--priority", "urgent",
        "--subject", "charged twice", "--description", "twice",
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    ticket_id = json.loads(opened.stdout)["ticket_id"]
    assert desk("ticket", "assign", ticket_id, "--to", "desk-cli").returncode == 0
    queue = desk("queue", "--assignee", "desk-cli")
    assert ticket_id in queue.stdout and "on track" in queue.stdout
    board = desk("sla-board", "--queue", "complaints")
    assert "complaints" in board.stdout and "on track" in board.stdout
    refused = desk("ticket", "confirm", ticket_id)
    assert refused.returncode == 1 and "invalid_state" in refused.stdout + refused.stderr
    assert desk("ticket", "resolve", ticket_id, "--resolution", "refunded").returncode == 0
    assert desk("ticket", "confirm", ticket_id).returncode == 0
    survey = json.loads(desk("survey", "show", ticket_id).stdout)
    assert desk("call-back", ticket_id, "--reached", "--satisfied", "yes").returncode == 0
    options = [
        f"--score={q['question_id']}=5" if q["answer"] == "score" else f"--text={q['question_id']}=fine"
        for q in survey["questions"]
    ]
    answered = desk("survey", "answer", ticket_id, *options)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert desk("praise", customer_id, "--channel", "phone", "--text", "kind desk").returncode == 0
    summary = desk("desk-summary", "--person", "desk-cli")
    assert summary.returncode == 0
    assert (
        "call-backs made             1" in summary.stdout
        and "surveys answered            1" in summary.stdout
    )
    shown = json.loads(desk("ticket", "show", ticket_id).stdout)
    assert shown["state"] == "closed" and shown["call_back_id"]
