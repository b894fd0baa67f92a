"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against the real
processes: an operator sees every process healthy, a chart drawn with data, requeues a dead letter
and sees it leave the list, starts a rebuild and watches its progress finish; an agent finds and
opens their own customer and is refused another agent's and the operators' pages; a manager sees
their team's day. A screenshot of each page is kept under ``.test-artifacts/dashboard``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from crm_cli.client import CrmClient
from crm_cli.system import System
from tests.e2e.browser import LAPTOP, PHONE, browser, screenshot
from tests.e2e.conftest import CONTRACT_TAP, ok
from tests.e2e.running import recompute
from tests.e2e.test_sales_force import new_team, register_for
from tests.support import wait_until

PASSWORD = "a long pass phrase for the browser"
# Seconds a page may take to show what a test waits for (heartbeats come every five).
SHOWN_MS = 30_000


@dataclass(frozen=True)
class People:
    operator: str
    manager: str
    agent: str
    team_id: str
    own_customer: str
    own_name: str
    others_customer: str


@pytest.fixture(scope="module")
def people(system: System, operator_rpc: CrmClient) -> People:
    suffix = uuid.uuid4().hex[:6]
    operator, manager, agent = f"op-{suffix}", f"mgr-{suffix}", f"agent-{suffix}"
    team_id, (mine, theirs) = new_team(operator_rpc, manager, 2)
    with CrmClient(system.amqp_uri, timeout=30) as anonymous:
        credentials = {"user_id": "admin", "password": system.first_admin_password}
        admin = ok(anonymous.call("identity", "sign_in", credentials))
    with CrmClient(system.amqp_uri, admin["access_token"], timeout=30) as client:
        for user_id, role, extra in (
            (operator, "operator", {}),
            (manager, "manager", {}),
            (agent, "agent", {"agent_id": mine}),
        ):
            account = {"user_id": user_id, "display_name": user_id, "role": role, "password": PASSWORD}
            ok(client.call("identity", "create_account", {**account, **extra}))
    own_name = f"Dashboard Zhou {suffix}"
    own = register_for(operator_rpc, mine, full_name=own_name)
    others = register_for(operator_rpc, theirs)

    def found() -> bool:
        reply = operator_rpc.call("analytics", "find_customers", {"name": own_name, "limit": 5})
        return bool(reply.get("ok") and reply["result"]["customers"])

    wait_until(found, timeout=60, what="the new customer in the search")
    recompute(system)  # the segment tables hold every customer registered so far
    return People(operator, manager, agent, team_id, own, own_name, others)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as launched:
        yield launched


def signed_in(chromium: Any, system: System, user_id: str, viewport: dict[str, int] = LAPTOP) -> Any:
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(SHOWN_MS)
    page.goto(f"{system.dashboard_url}/sign-in")
    page.get_by_label("User id").fill(user_id)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{system.dashboard_url}/")
    return page


def a_dead_letter(system: System, queue: str) -> str:
    """A real event, set aside as a dead letter of ``queue`` (as a consumer does with the reason)."""
    with Connection(system.amqp_uri) as conn:
        channel = conn.channel()
        # One event from the tap of every event, put back at once.
        message = wait_until(lambda: channel.basic_get(CONTRACT_TAP, no_ack=False), timeout=30)
        body = message.body
        channel.basic_reject(message.delivery_tag, requeue=True)
        message_id = f"dead-{uuid.uuid4().hex[:8]}"
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange("crm.dead-letters", type="direct", no_declare=True),
            routing_key=queue,
            message_id=message_id,
            headers={
                "x-crm-dead-letter-reason": "a test: the consumer refused it",
                "x-crm-original-routing-key": json.loads(body)["event_type"],
            },
            content_type="application/json",
            delivery_mode=2,
        )
    return message_id


def test_an_operator_sees_health_a_chart_requeues_a_dead_letter_and_watches_a_rebuild(
    system: System, people: People, chromium: Any
) -> None:
    page = signed_in(chromium, system, people.operator)
    page.get_by_role("heading", name="The system").wait_for()
    screenshot(page, "operator-summary")

    page.goto(f"{system.dashboard_url}/ops/health")
    page.locator("#all-up", has_text="Every process is up").wait_for()
    processes = page.get_by_role("table", name="Processes")
    for process in ("customer", "projector", "relay-customer", "identity-reactions", "rebuilds", "dashboard"):
        assert processes.get_by_role("cell", name=process, exact=True).count() == 1, process
    screenshot(page, "operator-health")

    page.goto(f"{system.dashboard_url}/segments?scheme=value_tier")
    page.locator("canvas").wait_for()
    drawn = page.wait_for_function(
        "() => { const c = window.Chart && Chart.getChart(document.querySelector('canvas'));"
        " return c && c.data.datasets[0].data.reduce((a, b) => a + b, 0); }"
    ).json_value()
    assert drawn > 0, "the chart is drawn with the segment counts"
    screenshot(page, "operator-segments")

    queue = "identity.departures"
    message_id = a_dead_letter(system, queue)
    page.goto(f"{system.dashboard_url}/ops/dead-letters?queue={queue}")
    row = page.get_by_role("row").filter(has_text=message_id)
    row.wait_for()
    assert "the consumer refused it" in row.inner_text()
    screenshot(page, "operator-dead-letters")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Requeue {message_id}").click()
    row.wait_for(state="detached")
    assert page.get_by_text(message_id).count() == 0

    page.goto(f"{system.dashboard_url}/ops/projections")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rebuild customer_search").click()
    progress = page.get_by_role("progressbar", name="rebuild of customer_search").first
    progress.wait_for()
    page.locator(".state-finished").first.wait_for(timeout=120_000)
    assert progress.get_attribute("value") == "1"
    screenshot(page, "operator-projections")

    page.goto(f"{system.dashboard_url}/ops/queues")
    page.get_by_role("cell", name="analytics.customer_360", exact=True).wait_for()
    screenshot(page, "operator-queues")
    page.goto(f"{system.dashboard_url}/api/docs")
    page.get_by_text("CRM dashboard").first.wait_for()
    screenshot(page, "api-docs")

    # Each action taken on a page is in the audit log, under the operator's own name.
    with CrmClient(system.amqp_uri, timeout=30) as anonymous:
        credentials = {"user_id": "admin", "password": system.first_admin_password}
        admin = ok(anonymous.call("identity", "sign_in", credentials))
    with CrmClient(system.amqp_uri, admin["access_token"], timeout=30) as client:

        def actions() -> set[str]:
            asked = {"user_id": people.operator, "limit": 50}
            entries = ok(client.call("analytics", "get_audit_log", asked))["entries"]
            return {e["detail"] for e in entries if e["event_type"] == "identity.operator_action_recorded"}

        seen = wait_until(
            lambda: len(found := actions()) >= 2 and found, timeout=30, what="the actions audited"
        )
    assert f"dead_letter_requeued {queue} {message_id}: 1 message(s)" in seen
    assert any(action.startswith("rebuild_started customer_search: job ") for action in seen), seen


def test_an_agent_finds_their_own_customer_and_is_refused_anothers_and_the_operators_pages(
    system: System, people: People, chromium: Any
) -> None:
    page = signed_in(chromium, system, people.agent)
    page.get_by_role("region", name="Your day").wait_for()
    screenshot(page, "agent-summary")

    page.goto(f"{system.dashboard_url}/customers")
    page.get_by_label("Name").fill(people.own_name)
    page.keyboard.press("Enter")
    page.get_by_role("link", name=people.own_name).click()
    page.wait_for_url(f"**/customers/{people.own_customer}")
    try:
        page.get_by_role("heading", name=people.own_name).wait_for()
    except Exception:
        screenshot(page, "agent-customer-failed")
        raise
    page.get_by_role("heading", name="Timeline").wait_for()
    screenshot(page, "agent-customer")

    page.goto(f"{system.dashboard_url}/customers/{people.others_customer}")
    refusal = page.locator("#problem")
    refusal.wait_for()
    assert people.others_customer not in page.locator("#content").inner_text()
    screenshot(page, "agent-refused-customer")

    answer = page.goto(f"{system.dashboard_url}/ops/health")
    assert answer is not None and answer.status == 403
    page.get_by_role("heading", name="Not for you").wait_for()
    screenshot(page, "agent-refused-ops")
    refused = page.request.get(f"{system.dashboard_url}/api/ops/dead-letters")
    assert refused.status == 403 and refused.json()["error"]["code"] == "permission_denied"


def test_a_manager_sees_the_teams_day_on_a_phone(system: System, people: People, chromium: Any) -> None:
    page = signed_in(chromium, system, people.manager, viewport=PHONE)
    day = page.get_by_role("region", name=f"Team {people.team_id}'s day")
    day.wait_for()
    assert "agent" in day.inner_text().lower()
    screenshot(page, "manager-summary-phone")
    page.goto(f"{system.dashboard_url}/plans?team_id={people.team_id}")
    page.get_by_role("heading", name=f"Team {people.team_id}", exact=False).wait_for()
    screenshot(page, "manager-team-plan-phone")
