"""A retention campaign on the "high value at risk" segment of a 2,000-customer book with mixed
consents, on real processes: exactly the consenting customers outside the control group are
reached, on exactly the channels they consented to; their agents' days gain one call each, never
more than the campaign allows a day; a second launch, and a launcher killed in the middle, change
nothing; responses and sales flow into the results against the control group; an agent who leaves
mid-campaign hands the open calls over with the book.

The book: 2,000 customers of 10 agents in two teams, each insured for a year at a distinct premium
(a few very large). Of the top 20% (high value), those with ``i % 8 < 5`` are made at risk (a
second policy cancelled and a complaint: 40 + 20 on the churn rules), and so are some of low
value (``low_value_at_risk``: never targeted). Consents by ``i % 6``: 0 phone and sms, 1 phone,
2 sms, 3 none for marketing, 4 phone but do-not-call, 5 phone and sms with sms withdrawn."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_cli.client import CrmClient
from crm_cli.system import System
from crm_shared.auth import Caller, Role
from crm_shared.clock import FileClock
from services.sales.domain.campaign_rules import in_control
from tests.e2e.conftest import Stores, ok
from tests.e2e.running import calling, recompute, settle, staffed_system
from tests.support import customer_payload, wait_until

OPERATOR = Caller("marketing-e2e", Role.OPERATOR)
MANAGER = Caller("mgr-c1", Role.MANAGER)
ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
DAY0 = T0.astimezone(ZONE).date()
TEAMS = {"T-C1": tuple(f"C-{i}" for i in range(1, 6)), "T-C2": tuple(f"C-{i}" for i in range(6, 11))}
AGENTS = tuple(a for agents in TEAMS.values() for a in agents)
CUSTOMERS = 2_000
HIGH = CUSTOMERS // 5  # value tiers: the top 20%
CONTROL_SHARE = Decimal("0.2")
CALLS_A_DAY = 3
GRANTED, WITHDRAWN = "granted", "withdrawn"


def owner_of(i: int) -> str:
    return AGENTS[i % len(AGENTS)]


def rank_of(i: int) -> int:
    return (i * 7919) % CUSTOMERS  # a permutation: premiums mixed over agents and consents


def premium(i: int) -> int:
    r = rank_of(i)
    return 1000 + (CUSTOMERS - r) + 300_000 // (r + 1)


def at_risk(i: int) -> bool:
    return (rank_of(i) < HIGH and i % 8 < 5) or (rank_of(i) >= 1_000 and i % 8 == 0)


def channels_of(i: int) -> tuple[str, ...]:
    """The channels of ("agent_call", "sms") the customer may be reached on."""
    return {0: ("agent_call", "sms"), 1: ("agent_call",), 2: ("sms",), 5: ("agent_call",)}.get(i % 6, ())


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, FileClock]]:
    with staffed_system(tmp_path_factory.mktemp("crm-campaigns"), T0, TEAMS) as (system, clock):
        with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
            ok(
                client.call(
                    "sales",
                    "appoint_team_manager",
                    {"team_id": "T-C1", "manager_user_id": MANAGER.user_id, "reason": "campaigns"},
                )
            )
        yield system, clock


def consent(customer_id: str, channel: str, status: str, purpose: str = "marketing") -> tuple[str, str, dict]:
    payload = {
        "customer_id": customer_id,
        "channel": channel,
        "purpose": purpose,
        "status": status,
        "source": {"kind": "form", "reference": f"F-{customer_id[:8]}"},
    }
    return ("customer", "record_consent", payload)


@pytest.fixture(scope="module")
def book(crm: tuple[System, FileClock]) -> list[str]:
    system, clock = crm
    ids = [
        r["customer_id"]
        for r in calling(
            system,
            [("customer", "register_customer", customer_payload(owner_of(i))) for i in range(CUSTOMERS)],
        )
    ]
    a_year_ago = (DAY0 - timedelta(days=365)).isoformat()
    calling(
        system,
        [
            (
                "sales",
                "sell_policy",
                {
                    "customer_id": ids[i],
                    "product": "life",
                    "annual_premium": f"{premium(i)}.00",
                    "start_date": a_year_ago,
                    "term_years": 10,
                },
            )
            for i in range(CUSTOMERS)
        ],
    )
    risky = [i for i in range(CUSTOMERS) if at_risk(i)]
    second = calling(
        system,
        [
            (
                "sales",
                "sell_policy",
                {
                    "customer_id": ids[i],
                    "product": "health",
                    "annual_premium": "100.00",
                    "start_date": DAY0.isoformat(),
                    "term_years": 1,
                },
            )
            for i in risky
        ],
    )
    calling(
        system,
        [
            ("sales", "cancel_policy", {"policy_number": s["policy_number"], "reason": "customer_request"})
            for s in second
        ],
    )
    complaint = {"channel": "phone", "category": "billing", "priority": "ordinary", "description": "twice"}
    opened = calling(
        system, [("service_desk", "open_complaint", {"customer_id": ids[i], **complaint}) for i in risky]
    )
    calling(
        system,
        [
            (
                "service_desk",
                "close_complaint",
                {"ticket_id": t["ticket_id"], "resolution": "refund", "satisfaction": 3},
            )
            for t in opened
        ],
    )
    consents: list[tuple[str, str, dict]] = []
    for i in risky:
        match i % 6:
            case 0:
                consents += [consent(ids[i], "phone", GRANTED), consent(ids[i], "sms", GRANTED)]
            case 1 | 4:
                consents.append(consent(ids[i], "phone", GRANTED))
            case 2:
                consents.append(consent(ids[i], "sms", GRANTED))
            case 3:
                consents.append(consent(ids[i], "phone", GRANTED, purpose="service"))
            case 5:
                consents += [consent(ids[i], "phone", GRANTED), consent(ids[i], "sms", GRANTED)]
    calling(system, consents)
    calling(system, [consent(ids[i], "sms", WITHDRAWN) for i in risky if i % 6 == 5])
    calling(
        system,
        [
            (
                "customer",
                "set_contact_preferences",
                {"customer_id": ids[i], "do_not_call": True, "reason": "asked on the phone"},
            )
            for i in risky
            if i % 6 == 4
        ],
    )
    settle(system)
    recompute(system)
    # The campaigns start an hour later: what the book bought before is no effect of theirs.
    clock.set(T0 + timedelta(hours=1))
    return ids


def client_of(system: System, caller: Caller = OPERATOR) -> CrmClient:
    return CrmClient.for_caller(system.amqp_uri, caller, system.signer, timeout=120)


def campaign_payload(**given: Any) -> dict[str, Any]:
    return {
        "name": "Keep our best",
        "purpose": "retention",
        "products": ["life"],
        "offer": "A loyalty review of your cover, with a discount on renewal.",
        "target": {"scheme": "value_churn", "segment": "high_value_at_risk"},
        "channels": ["agent_call", "sms"],
        "start_date": DAY0.isoformat(),
        "end_date": (DAY0 + timedelta(days=25)).isoformat(),
        "budget": "20000.00",
        "control_share": str(CONTROL_SHARE),
        "daily_calls_per_agent": CALLS_A_DAY,
        "expected_annual_premium": "6000.00",
    } | given


def launched(client: CrmClient, campaign_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        campaign = ok(client.call("sales", "get_campaign", {"campaign_id": campaign_id}))
        return campaign if campaign["state"] == "running" else None

    return wait_until(done, timeout=120, interval=0.3, what="the launch to complete")


def of_campaign(stores: Stores, event_type: str, campaign_id: str) -> list[dict[str, Any]]:
    return [e for e in stores.events("sales", event_type) if e["payload"].get("campaign_id") == campaign_id]


def test_a_retention_campaign_reaches_exactly_the_consenting_and_measures_against_its_control_group(
    crm: tuple[System, FileClock], book: list[str]
) -> None:
    system, _ = crm
    ids = book
    index = {c: i for i, c in enumerate(ids)}
    stores = Stores(system.run_dir / "data")
    target = {ids[i] for i in range(CUSTOMERS) if at_risk(i) and rank_of(i) < HIGH}
    with client_of(system) as client:
        segment = set()
        cursor = None
        while True:
            page = ok(
                client.call(
                    "analytics",
                    "list_segment_members",
                    {
                        "scheme": "value_churn",
                        "segment": "high_value_at_risk",
                        "limit": 500,
                        "cursor": cursor,
                    },
                )
            )
            segment |= {m["customer_id"] for m in page["members"]}
            if not (cursor := page["next_cursor"]):
                break
        assert segment == target

        campaign = ok(client.call("sales", "create_campaign", campaign_payload()))
        campaign_id = campaign["campaign_id"]
        reachable = {c for c in target if channels_of(index[c])}
        control = {c for c in reachable if in_control(campaign_id, c, CONTROL_SHARE)}
        contacted = reachable - control
        excluded = Counter({3: "no_consent", 4: "do_not_call"}[index[c] % 6] for c in target - reachable)

        preview = ok(client.call("sales", "preview_campaign", {"campaign_id": campaign_id}))
        assert (preview["contacted"], preview["control"], preview["excluded"]) == (
            len(contacted),
            len(control),
            dict(excluded),
        )
        assert preview["reach_by_channel"] == {
            channel: sum(1 for c in contacted if channel in channels_of(index[c]))
            for channel in ("agent_call", "sms")
        }
        assert preview["segment_customers"] == len(target)

        first = ok(client.call("sales", "launch_campaign", {"campaign_id": campaign_id}))
        assert first["already_launched"] is False
        running = launched(client, campaign_id)
        assert running["frozen"] == {
            "contacted": len(contacted),
            "control": len(control),
            "excluded": dict(excluded),
        }

        # The frozen target: each customer once, in their group, on their consented channels.
        selected = of_campaign(stores, "sales.campaign_member_selected", campaign_id)
        assert Counter(e["payload"]["customer_id"] for e in selected) == dict.fromkeys(reachable, 1)
        for event in selected:
            p = event["payload"]
            i = index[p["customer_id"]]
            assert p["group"] == ("control" if p["customer_id"] in control else "contacted")
            assert tuple(p["channels"]) == channels_of(i)
            assert p["owning_agent_id"] == owner_of(i)
            assert (p["activity_id"] is not None) == (
                p["group"] == "contacted" and "agent_call" in p["channels"]
            )
        messages = of_campaign(stores, "sales.campaign_message_requested", campaign_id)
        sms = {c for c in contacted if "sms" in channels_of(index[c])}
        assert Counter(e["payload"]["customer_id"] for e in messages) == dict.fromkeys(sms, 1)
        assert {e["payload"]["channel"] for e in messages} == {"sms"}

        # The calls: one per customer called, in the owner's day, at most so many a working day.
        calls = [
            e
            for e in stores.events("sales", "sales.activity_planned")
            if e["payload"]["source"] == "campaign"
        ]
        called = {c for c in contacted if "agent_call" in channels_of(index[c])}
        assert Counter(e["payload"]["customer_id"] for e in calls) == dict.fromkeys(called, 1)
        per_day = Counter(
            (
                e["payload"]["agent_id"],
                datetime.fromisoformat(e["payload"]["planned_start"]).astimezone(ZONE).date(),
            )
            for e in calls
        )
        assert max(per_day.values()) <= CALLS_A_DAY
        assert all(day.weekday() < 5 and DAY0 <= day <= DAY0 + timedelta(days=25) for _, day in per_day)
        # Launched at 11:00 on its first day: no call at a time already past.
        launched_at = datetime.fromisoformat(running["launched_at"])
        assert all(datetime.fromisoformat(e["payload"]["planned_start"]) >= launched_at for e in calls)
        assert all(e["payload"]["agent_id"] == owner_of(index[e["payload"]["customer_id"]]) for e in calls)
        opportunities = [
            e
            for e in stores.events("sales", "sales.opportunity_opened")
            if e["payload"]["source"] == "campaign"
        ]
        assert Counter(e["payload"]["customer_id"] for e in opportunities) == dict.fromkeys(called, 1)

        # The agent's plan shows the campaign's calls of the day, once.
        agent, first_day = min(per_day, key=lambda pair: (pair[1], pair[0]))
        plan = ok(client.call("sales", "get_daily_plan", {"agent_id": agent, "date": first_day.isoformat()}))
        shown = [a for a in plan["activities"] if a["source"] == "campaign"]
        assert len(shown) == per_day[(agent, first_day)] > 0
        assert len({a["activity_id"] for a in shown}) == len(shown)

        # A second launch changes nothing.
        again = ok(client.call("sales", "launch_campaign", {"campaign_id": campaign_id}))
        assert again["already_launched"] is True
        settle(system)
        assert len(of_campaign(stores, "sales.campaign_member_selected", campaign_id)) == len(reachable)
        assert len(of_campaign(stores, "sales.campaign_launched", campaign_id)) == 1

        # What comes back: sms delivered and clicked, one opt-out, and sales made on the calls.
        clickers = sorted(c for c in contacted if channels_of(index[c]) == ("sms",))[:10]
        buyers = sorted(c for c in contacted if channels_of(index[c]) == ("agent_call",))[:6]
        opted = sorted(c for c in contacted if channels_of(index[c]) == ("agent_call", "sms"))[0]

        def sms_responses(response: str) -> list[tuple[str, str, dict[str, Any]]]:
            return [
                (
                    "sales",
                    "record_campaign_response",
                    {"campaign_id": campaign_id, "customer_id": c, "channel": "sms", "response": response},
                )
                for c in clickers
            ]

        calling(system, sms_responses("delivered"))  # first: the clicks come after
        responses = sms_responses("clicked")
        responses.append(
            (
                "sales",
                "record_campaign_response",
                {"campaign_id": campaign_id, "customer_id": opted, "channel": "sms", "response": "opted_out"},
            )
        )
        responses += [
            (
                "sales",
                "record_campaign_response",
                {
                    "campaign_id": campaign_id,
                    "customer_id": c,
                    "channel": "agent_call",
                    "response": "converted",
                },
            )
            for c in buyers
        ]
        calling(system, responses)
        held_back = next(iter(control))
        refused = client.call(
            "sales",
            "record_campaign_response",
            {"campaign_id": campaign_id, "customer_id": held_back, "channel": "sms", "response": "replied"},
        )
        assert refused["error"]["fields"][0]["rule"] == "control_group"
        by_customer = {e["payload"]["customer_id"]: e["payload"]["opportunity_id"] for e in opportunities}
        for c in buyers:
            sold = ok(
                client.call(
                    "sales",
                    "sell_policy",
                    {
                        "customer_id": c,
                        "product": "life",
                        "annual_premium": "5000.00",
                        "start_date": DAY0.isoformat(),
                        "term_years": 10,
                    },
                )
            )
            for stage in ("contacted", "needs_analysis", "proposal"):
                ok(
                    client.call(
                        "sales", "move_opportunity", {"opportunity_id": by_customer[c], "stage": stage}
                    )
                )
            ok(
                client.call(
                    "sales",
                    "move_opportunity",
                    {
                        "opportunity_id": by_customer[c],
                        "stage": "won",
                        "policy_number": sold["policy_number"],
                    },
                )
            )
        control_buyers = sorted(control)[:2]
        for c in control_buyers:
            ok(
                client.call(
                    "sales",
                    "sell_policy",
                    {
                        "customer_id": c,
                        "product": "life",
                        "annual_premium": "3000.00",
                        "start_date": DAY0.isoformat(),
                        "term_years": 10,
                    },
                )
            )
        # A product the campaign does not offer is no conversion.
        ok(
            client.call(
                "sales",
                "sell_policy",
                {
                    "customer_id": clickers[0],
                    "product": "auto",
                    "annual_premium": "2000.00",
                    "start_date": DAY0.isoformat(),
                    "term_years": 1,
                },
            )
        )

        results = ok(client.call("sales", "get_campaign_results", {"campaign_id": campaign_id}))
        overall = results["overall"]
        assert (overall["contacted"], overall["control"]) == (len(contacted), len(control))
        assert (overall["customers_who_bought"], overall["control_who_bought"]) == (6, 2)
        assert (overall["opportunities_opened"], overall["opportunities_won"]) == (len(called), 6)
        assert (overall["premium_sold"], overall["control_premium_sold"]) == ("30000.00", "6000.00")
        assert overall["responded"] == 16
        assert overall["treated_rate"] == round(6 / len(contacted), 4)
        assert overall["control_rate"] == round(2 / len(control), 4)
        assert overall["uplift"] == round(6 / len(contacted) - 2 / len(control), 4)
        assert overall["uplift_low"] < overall["uplift"] < overall["uplift_high"]
        channels = {c["channel"]: c for c in results["by_channel"]}
        assert channels["agent_call"]["reached"] == len(called) and channels["sms"]["reached"] == len(sms)
        assert channels["sms"]["responses"] == {"delivered": 10, "clicked": 10, "opted_out": 1}
        assert (channels["sms"]["responded"], channels["agent_call"]["responded"]) == (10, 6)
        assert channels["agent_call"]["customers_who_bought"] == 6
        spent = Decimal("12.00") * len(called) + Decimal("0.05") * len(sms)
        assert results["spend"]["spent"] == str(spent.quantize(Decimal("0.01")))
        # Money rounds half up (a cost of 194.725 is 194.73), as everywhere in sales.
        cost = (spent / 6).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert results["spend"]["cost_per_policy_won"] == str(cost)
        teams = {t["team_id"]: t for t in results["by_team"]}
        for team, agents in TEAMS.items():
            assert teams[team]["contacted"] == sum(1 for c in contacted if owner_of(index[c]) in agents)
            assert teams[team]["control"] == sum(1 for c in control if owner_of(index[c]) in agents)
        assert sum(a["contacted"] for a in results["by_agent"]) == len(contacted)

        # The 360 view lists the campaign and how the customer answered; the control group's too.
        settle(system)
        view = ok(client.call("analytics", "get_customer_360", {"customer_id": clickers[1]}))
        entry = next(c for c in view["campaigns"] if c["campaign_id"] == campaign_id)
        assert (entry["group"], entry["last_response"], entry["channels"]) == (
            "contacted",
            "clicked",
            ["sms"],
        )
        assert entry["sms_requested_at"] and entry["delivered_at"]
        held = ok(client.call("analytics", "get_customer_360", {"customer_id": held_back}))
        assert [c["group"] for c in held["campaigns"]] == ["control"]

        # The customer who opted out of the sms no longer consents to marketing by sms.
        def withdrawn() -> dict[str, Any] | None:
            consents = ok(client.call("customer", "get_consents", {"customer_id": opted}))["current"]
            sms_marketing = next(c for c in consents if (c["channel"], c["purpose"]) == ("sms", "marketing"))
            return sms_marketing if sms_marketing["status"] == "withdrawn" else None

        consent_now = wait_until(
            withdrawn, timeout=60, interval=0.3, what="the opt-out to withdraw the consent"
        )
        sent = next(e["payload"]["message_id"] for e in messages if e["payload"]["customer_id"] == opted)
        assert consent_now["source"] == {
            "kind": "campaign",
            "reference": f"campaign {campaign_id}, message {sent}",
        }

        # An agent leaves mid-campaign: the open calls and opportunities go with the book.
        leaving = "C-10"
        open_calls = {
            e["payload"]["activity_id"]
            for e in calls
            if e["payload"]["agent_id"] == leaving and e["payload"]["customer_id"] not in buyers
        }
        ok(
            client.call(
                "sales",
                "record_agent_departure",
                {
                    "agent_id": leaving,
                    "departed_on": DAY0.isoformat(),
                    "reason": "resigned",
                    "successor": {"kind": "agent", "agent_id": "C-9"},
                },
            )
        )

        def moved() -> bool:
            reassigned = {
                e["payload"]["activity_id"]
                for e in stores.events("sales", "sales.activity_reassigned")
                if e["payload"]["to_agent_id"] == "C-9"
            }
            return open_calls <= reassigned

        wait_until(moved, timeout=120, interval=0.5, what="the departed agent's campaign calls to move")
        assert open_calls


def test_a_launch_killed_in_the_middle_resumes_and_selects_nobody_twice(
    crm: tuple[System, FileClock], book: list[str]
) -> None:
    system, _ = crm
    ids = book
    index = {c: i for i, c in enumerate(ids)}
    stores = Stores(system.run_dir / "data")
    launcher = system.processes["campaigns"]
    with client_of(system, MANAGER) as manager:
        # A manager's campaign is for their own teams.
        refused = manager.call("sales", "create_campaign", campaign_payload(name="everyone"))
        assert refused["error"]["code"] == "permission_denied"
        other = {"scheme": "value_churn", "segment": "high_value_at_risk", "team_ids": ["T-C2"]}
        assert manager.call("sales", "create_campaign", campaign_payload(target=other))["error"]["code"] == (
            "permission_denied"
        )
        mine = {"scheme": "value_churn", "segment": "high_value_at_risk", "team_ids": ["T-C1"]}
        campaign = ok(
            manager.call(
                "sales",
                "create_campaign",
                campaign_payload(name="T-C1 by sms", target=mine, channels=["sms"], control_share="0.1"),
            )
        )
        campaign_id = campaign["campaign_id"]
        system.stop(["campaigns"])
        ok(manager.call("sales", "launch_campaign", {"campaign_id": campaign_id}))
        launcher.start(system.env)
        wait_until(
            lambda: of_campaign(stores, "sales.campaign_launch_progressed", campaign_id),
            timeout=60,
            interval=0.05,
            what="a first page",
        )
        launcher.stop(signal.SIGKILL)
        launcher.start(system.env)
        running = launched(manager, campaign_id)
    # Those who opted out of another campaign's sms consent to it no more.
    opted_out = {
        e["payload"]["customer_id"]
        for e in stores.events("sales", "sales.campaign_response_recorded")
        if (e["payload"]["channel"], e["payload"]["response"]) == ("sms", "opted_out")
    }
    in_team = {
        ids[i]
        for i in range(CUSTOMERS)
        if at_risk(i) and rank_of(i) < HIGH and owner_of(i) in TEAMS["T-C1"] and "sms" in channels_of(i)
    } - opted_out
    selected = of_campaign(stores, "sales.campaign_member_selected", campaign_id)
    assert Counter(e["payload"]["customer_id"] for e in selected) == dict.fromkeys(in_team, 1)
    control = {c for c in in_team if in_control(campaign_id, c, Decimal("0.1"))}
    assert running["frozen"]["contacted"] == len(in_team - control)
    assert running["frozen"]["control"] == len(control)
    messages = of_campaign(stores, "sales.campaign_message_requested", campaign_id)
    assert Counter(e["payload"]["customer_id"] for e in messages) == dict.fromkeys(in_team - control, 1)
    assert {index[c] % 6 for c in in_team} <= {0, 2}
    # Closing ends it: a launch of a closed campaign is refused, with what to do instead.
    with client_of(system) as client:
        closed = ok(client.call("sales", "close_campaign", {"campaign_id": campaign_id, "reason": "done"}))
        assert closed["state"] == "closed" and closed["closed_on"] == DAY0.isoformat()
        refused = client.call("sales", "launch_campaign", {"campaign_id": campaign_id})
        assert refused["error"]["code"] == "invalid_state"
        listed = ok(client.call("sales", "list_campaigns", {"state": "closed"}))
        assert [c["campaign_id"] for c in listed["campaigns"]] == [campaign_id]
    with client_of(system, MANAGER) as manager:
        mine_only = ok(manager.call("sales", "list_campaigns", {}))
        assert [c["campaign_id"] for c in mine_only["campaigns"]] == [campaign_id]
    with client_of(system, Caller("agent-c1", Role.AGENT, "C-1")) as agent:
        assert agent.call("sales", "list_campaigns", {})["error"]["code"] == "permission_denied"
