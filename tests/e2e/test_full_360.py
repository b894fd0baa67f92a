"""The full customer 360 on the real processes: one customer touched by every context, the view now,
its paged timeline, search, the view as of three past moments (each equal to the view folded from
the event stores up to that moment), and each projection's lag."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from crm_cli.client import CrmClient
from crm_shared.auth import Caller, Role
from services.analytics.customer_360 import fold, public_view
from tests.e2e.conftest import SALE, Stores, ok
from tests.support import customer_payload, wait_until

AGENT = Caller("agent-1001", Role.AGENT, agent_id="A-1001")
OTHER_AGENT = Caller("agent-1002", Role.AGENT, agent_id="A-1002")
SYSTEM = Caller("core-claims-system", Role.SYSTEM)


def history_of(stores: Stores, customer_id: str, until: datetime | None = None) -> list[dict]:
    """The customer's public events in the stores, each store in its order."""
    return [
        m
        for app in stores.apps.values()
        for batch in app.notifications(0)
        for n in batch
        if (m := app.envelope(n))
        and m["payload"].get("customer_id") == customer_id
        and (until is None or datetime.fromisoformat(m["occurred_at"]) <= until)
    ]


def test_a_customer_touched_by_every_context_in_full_over_time_and_found(
    operator_rpc: CrmClient, rpc: Callable[[Caller], AbstractContextManager[CrmClient]], stores: Stores
) -> None:
    client = operator_rpc
    payload = customer_payload(full_name="Zhou Meiling")
    customer_id = ok(client.call("customer", "register_customer", payload))["customer_id"]

    def view() -> dict:
        return ok(client.call("analytics", "get_customer_360", {"customer_id": customer_id}))

    def settled(condition: Callable[[dict], bool], what: str) -> datetime:
        wait_until(
            lambda: (
                (r := client.call("analytics", "get_customer_360", {"customer_id": customer_id}))["ok"]
                and condition(r["result"])
            ),
            timeout=30,
            what=what,
        )
        return datetime.now(UTC)

    ok(
        client.call(
            "customer", "add_contact_point", {"customer_id": customer_id, "kind": "email", "email": "z@m.cn"}
        )
    )
    ok(
        client.call(
            "customer",
            "record_consent",
            {
                "customer_id": customer_id,
                "channel": "sms",
                "purpose": "marketing",
                "status": "granted",
                "source": {"kind": "form", "reference": "F-7"},
            },
        )
    )
    first = settled(lambda v: bool(v["consents"]) and len(v["contact_points"]) >= 1, "the record")

    policy = ok(client.call("sales", "sell_policy", {"customer_id": customer_id, **SALE}))["policy_number"]
    with rpc(SYSTEM) as core:
        ok(
            core.call(
                "sales",
                "record_claim",
                {
                    "policy_number": policy,
                    "claim_id": "CL-77",
                    "loss_date": "2027-02-01",
                    "amount_claimed": "800.00",
                    "status": "reported",
                },
            )
        )
    with rpc(AGENT) as agent:
        ok(
            agent.call(
                "sales",
                "open_opportunity",
                {
                    "customer_id": customer_id,
                    "product": "health",
                    "expected_annual_premium": "600.00",
                    "source": "referral",
                },
            )
        )
    second = settled(
        lambda v: v["claims"] and v["open_opportunities"], "the sale, the claim, the opportunity"
    )

    ok(
        client.call(
            "service_desk",
            "open_ticket",
            {
                "customer_id": customer_id,
                "kind": "inquiry",
                "channel": "phone",
                "category": "claims.documents",
                "priority": "ordinary",
                "subject": "what is covered",
                "description": "asks about dental cover",
            },
        )
    )
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    with rpc(AGENT) as agent:
        ok(
            agent.call(
                "sales",
                "plan_activity",
                {
                    "customer_id": customer_id,
                    "kind": "call",
                    "purpose": "talk about health cover",
                    "planned_start": start.isoformat(),
                    "planned_end": (start + timedelta(minutes=30)).isoformat(),
                },
            )
        )
    third = settled(lambda v: v["tickets"] and v["next_activity"], "the ticket and the planned call")

    # The view now, in full.
    now = view()
    assert now["profile"]["full_name"] == "Zhou Meiling" and now["owning_agent_id"] == "A-1001"
    assert [c["kind"] for c in now["contact_points"]] == ["email"]
    assert (
        now["consents"] == {"sms_marketing": now["consents"]["sms_marketing"]}
        and now["consents"]["sms_marketing"]
    )
    assert [p["policy_number"] for p in now["policies"]] == [policy]
    assert [h["status"] for h in now["policy_status_history"]] == ["active"]
    assert [c["claim_id"] for c in now["claims"]] == ["CL-77"]
    assert [o["product"] for o in now["open_opportunities"]] == ["health"]
    assert now["next_activity"]["kind"] == "call" and now["last_activity"] is None
    (ticket,) = now["tickets"]
    assert ticket["kind"] == "inquiry" and ticket["sla_state"] == "on_track"
    assert now["satisfaction_history"] == [] and now["ownership_history"] == []

    # The timeline: every interaction once, newest first, three to a page.
    history = history_of(stores, customer_id)
    entries, cursor = [], None
    while True:
        page = ok(
            client.call(
                "analytics",
                "get_customer_timeline",
                {"customer_id": customer_id, "limit": 3, "cursor": cursor},
            )
        )
        entries += page["entries"]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(e["event_id"] for e in entries) == sorted(m["event_id"] for m in history)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert entries[-1]["event_type"] == "customer.registered"
    assert all("description" not in e["details"] for e in entries)

    # As of three past moments: what the event stores held up to each, folded.
    for moment in (first, second, third):
        past = ok(
            client.call(
                "analytics", "get_customer_360", {"customer_id": customer_id, "as_of": moment.isoformat()}
            )
        )
        assert past.pop("as_of") == moment.isoformat()
        expected = public_view(fold(iter(history_of(stores, customer_id, moment))), moment)  # type: ignore[arg-type]
        assert past == json.loads(json.dumps(expected))
    assert not ok(
        client.call("analytics", "get_customer_360", {"customer_id": customer_id, "as_of": first.isoformat()})
    )["policies"]
    before = client.call(
        "analytics",
        "get_customer_360",
        {"customer_id": customer_id, "as_of": (first - timedelta(days=1)).isoformat()},
    )
    assert before["error"]["fields"][0]["rule"] == "unknown_customer"

    # Found by its owner, by name, phone and national id; not by another agent.
    with rpc(AGENT) as agent, rpc(OTHER_AGENT) as other:
        for criteria in (
            {"name": "zhou mei"},
            {"mobile_phone": payload["mobile_phone"]},
            {"national_id_last4": payload["national_id"][-4:], "name": "Zhou"},
        ):
            found = wait_until(
                lambda c=criteria: [
                    x
                    for x in ok(agent.call("analytics", "find_customers", c))["customers"]
                    if x["customer_id"] == customer_id
                ],
                timeout=30,
                what=f"the customer found by {criteria}",
            )
            assert found[0]["full_name"] == "Zhou Meiling"
            assert ok(other.call("analytics", "find_customers", criteria))["customers"] == []
        refused = agent.call("analytics", "get_projections", {})
        assert refused["error"]["code"] == "permission_denied"

    # Every projection consumed, is caught up, and counts what it applied.
    lags = {p["name"]: p for p in ok(client.call("analytics", "get_projections", {}))["projections"]}
    assert set(lags) == {
        "customer_360",
        "customer_timeline",
        "customer_search",
        "business_facts",
        "audit_log",
    }
    for lag in lags.values():
        assert lag["consumers"] >= 1 and lag["applied_events"] > 0 and lag["rebuilding_into"] is None
