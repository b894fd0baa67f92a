"""Campaigns on real event stores (SQLite and PostgreSQL): the launch freezes the target a page at a
time, whatever launchers run at once; an agent's calls spread over the campaign's working days
within the daily limit, counting what the days hold already; a paused launch goes on where it
stopped; the results count sales, opportunities and answers from the campaign's own tables. The
target comes from an in-process stand-in for analytics' ``list_segment_targets``."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts import rpc
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import CrmError
from services.sales.application import SalesApplication
from services.sales.application.campaigns import PAGE_SIZE
from services.sales.domain.activity import Activity
from services.sales.domain.campaign import CampaignMember
from services.sales.domain.campaign_rules import in_control
from services.sales.domain.opportunity import Opportunity
from tests.support import staffed

MARKETING = Caller("marketing-1", Role.OPERATOR)
ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
AGENTS = ("A-1001", "A-2002", "A-7")


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        return self.now


class Segment:
    """What analytics would answer: the members of one segment in customer id order, each with its
    facts, a page after a customer id."""

    def __init__(self, facts: list[dict[str, Any]]) -> None:
        self.facts = sorted(facts, key=lambda f: f["customer_id"])
        self.pages = 0

    def page(
        self, scheme: str, segment: str, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.pages += 1
        rows = [f for f in self.facts if (owner is None or f["owning_agent_id"] == owner)]
        rows = [f for f in rows if after is None or f["customer_id"] > after]
        page = rows[:limit]
        return page, page[-1]["customer_id"] if len(rows) > limit else None

    def size_of(self, scheme: str, segment: str) -> int | None:
        return len(self.facts)


class Owners:
    """The customer context's answer to "who owns this customer" for the synthetic customers."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    def owning_agent_of(self, customer_id: str) -> str:
        return self.owners[customer_id]

    def birth_date_of(self, customer_id: str) -> date | None:
        return date(1980, 1, 1)


def fact(i: int, **given: Any) -> dict[str, Any]:
    return {
        "customer_id": str(uuid.UUID(int=i + 1)),
        "owning_agent_id": AGENTS[i % len(AGENTS)],
        "region": "Zhejiang",
        "products_held": ["life"],
        "marketing_consents": {"phone": i % 4 != 3, "sms": i % 2 == 0, "email": False, "post": False},
        "do_not_call": False,
        "erased": False,
        "merged": False,
    } | given


@pytest.fixture
def sales(store_env: dict[str, str]) -> SalesApplication:
    app = staffed(SalesApplication(env=store_env, clock=Clock()))
    app.create_own_tables()
    return app


def create(sales: SalesApplication, **given: Any) -> str:
    payload = {
        "name": "Cross-sell health",
        "purpose": "cross_sell",
        "products": ["health"],
        "offer": "Health cover for the family",
        "target": {"scheme": "value_tier", "segment": "important", "not_holding": ["health"]},
        "channels": ["agent_call", "sms"],
        "start_date": "2026-12-07",
        "end_date": "2026-12-18",
        "budget": "9000.00",
        "control_share": "0.2",
        "daily_calls_per_agent": 4,
        "expected_annual_premium": "3000.00",
    } | given
    data = rpc.CreateCampaign().load(payload)
    return str(sales.create_campaign(data, CommandMeta.new(MARKETING))["campaign_id"])


def launch_all(sales: SalesApplication, segment: Segment) -> None:
    while sales.advance_launches(segment):
        pass


def test_the_target_freezes_a_page_at_a_time_once_however_many_launchers_run(sales: SalesApplication) -> None:
    facts = [fact(i) for i in range(3 * PAGE_SIZE // 2)] + [fact(2_000, products_held=["health"])]
    segment = Segment(facts)
    campaign_id = create(sales)
    sales.launch_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))

    errors: list[BaseException] = []

    def launcher() -> None:
        try:
            launch_all(sales, segment)
        except CrmError as e:
            errors.append(e)

    threads = [threading.Thread(target=launcher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    view = sales.get_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))
    assert view["state"] == "running"
    reachable = [f for f in facts if f["marketing_consents"]["phone"] or f["marketing_consents"]["sms"]]
    reachable = [f for f in reachable if "health" not in f["products_held"]]
    control = {
        f["customer_id"] for f in reachable if in_control(campaign_id, f["customer_id"], Decimal("0.2"))
    }
    assert view["frozen"] == {
        "contacted": len(reachable) - len(control),
        "control": len(control),
        "excluded": {
            "no_consent": sum(1 for f in facts if not any(f["marketing_consents"].values())),
            "outside_narrowing": 1,
        },
    }
    for f in reachable:
        member = sales.find(CampaignMember, CampaignMember.id_for(campaign_id, f["customer_id"]))
        assert member is not None
        assert member.group == ("control" if f["customer_id"] in control else "contacted")
    sales.campaigns.catch_up()
    assert len(sales.campaigns.members_among(campaign_id, [f["customer_id"] for f in facts])) == len(
        reachable
    )


def test_an_agents_calls_spread_over_the_working_days_counting_what_the_days_hold(
    sales: SalesApplication,
) -> None:
    # Two weeks (ten working days) at four a day: room for 40 calls an agent.
    first = create(sales, control_share="0", channels=["agent_call"])
    owned = [fact(i * 3, marketing_consents={"phone": True}) for i in range(30)]  # all A-1001's
    sales.launch_campaign({"campaign_id": first}, CommandMeta.new(MARKETING))
    launch_all(sales, Segment(owned))
    second = create(sales, name="Renewals", purpose="renewal", control_share="0", channels=["agent_call"])
    more = [fact(9_999 + i * 3, marketing_consents={"phone": True}) for i in range(20)]
    sales.launch_campaign({"campaign_id": second}, CommandMeta.new(MARKETING))
    launch_all(sales, Segment(more))
    sales.campaigns.catch_up()
    days = {
        day: n
        for (agent, day), n in sales.campaigns.calls_per_day(
            ["A-1001"], date(2026, 12, 7), date(2026, 12, 18)
        ).items()
    }
    sales.work.catch_up()
    start = datetime(2026, 12, 7, tzinfo=ZONE)
    for row in sales.work.activities_of("A-1001", start, start + timedelta(days=14)):
        moment = datetime.fromisoformat(row["planned_start"]).astimezone(ZONE)
        # Working days, working hours, never before the launch (09:00 Monday: from 09:30).
        assert moment.weekday() < 5 and 9 <= moment.hour < 17 and moment > MONDAY
    assert sum(days.values()) == 50
    # Forty fit at four a day (Monday's first half hour had begun); the ten beyond the room land
    # on the last working day.
    assert [days[d] for d in sorted(days)] == [4] * 9 + [14]
    calls = [sales.find(Activity, CampaignMember.activity_id_of(second, f["customer_id"])) for f in more]
    assert all(c is not None and c.kind == "call" and c.agent_id == "A-1001" for c in calls)


def test_a_paused_launch_goes_on_where_it_stopped_and_results_count_what_came_of_it(
    sales: SalesApplication, store_env: dict[str, str]
) -> None:
    facts = [fact(i, marketing_consents={"phone": True, "sms": True}) for i in range(PAGE_SIZE + 10)]
    segment = Segment(facts)
    campaign_id = create(sales, control_share="0.5")
    sales.launch_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))
    assert sales.advance_launches(segment) == 1
    sales.pause_campaign({"campaign_id": campaign_id, "reason": "hold"}, CommandMeta.new(MARKETING))
    assert sales.advance_launches(segment) == 0
    paused = sales.get_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))
    assert sum(paused["frozen"][k] for k in ("contacted", "control")) == PAGE_SIZE
    again = sales.launch_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))
    assert again["state"] == "launching" and not again["already_launched"]
    launch_all(sales, segment)
    view = sales.get_campaign({"campaign_id": campaign_id}, CommandMeta.new(MARKETING))
    assert view["state"] == "running"
    assert view["frozen"]["contacted"] + view["frozen"]["control"] == len(facts)

    members = [
        sales.find(CampaignMember, CampaignMember.id_for(campaign_id, f["customer_id"])) for f in facts
    ]
    contacted = [m for m in members if m is not None and m.group == "contacted"]
    control = [m for m in members if m is not None and m.group == "control"]
    # Two contacted customers buy the offered product on their campaign opportunity, one of the
    # control group buys it too, and one contacted customer buys something else.
    directory = Owners({f["customer_id"]: f["owning_agent_id"] for f in facts})
    sales.clock.now = MONDAY + timedelta(days=2)  # type: ignore[attr-defined]

    def sell(customer_id: str, product: str, premium: str) -> str:
        data = rpc.SellPolicy().load(
            {
                "customer_id": customer_id,
                "product": product,
                "annual_premium": premium,
                "start_date": "2026-12-09",
                "term_years": 1,
            }
        )
        return str(sales.sell_policy(data, CommandMeta.new(MARKETING), directory, sales)["policy_number"])

    for member in contacted[:2]:
        policy = sell(member.customer_id, "health", "2500.00")
        assert member.opportunity_id is not None
        for stage in ("contacted", "needs_analysis", "proposal"):
            sales.move_opportunity(
                {"opportunity_id": member.opportunity_id, "stage": stage}, CommandMeta.new(MARKETING)
            )
        sales.move_opportunity(
            {"opportunity_id": member.opportunity_id, "stage": "won", "policy_number": policy},
            CommandMeta.new(MARKETING),
        )
        sales.record_campaign_response(
            {
                "campaign_id": campaign_id,
                "customer_id": member.customer_id,
                "channel": "sms",
                "response": "clicked",
            },
            CommandMeta.new(MARKETING),
        )
    sell(control[0].customer_id, "health", "1000.00")
    sell(contacted[2].customer_id, "auto", "900.00")
    results = sales.get_campaign_results(
        rpc.GetCampaignResults().load({"campaign_id": campaign_id}), CommandMeta.new(MARKETING)
    )
    overall = results["overall"]
    assert (overall["contacted"], overall["control"]) == (len(contacted), len(control))
    assert (overall["customers_who_bought"], overall["control_who_bought"]) == (2, 1)
    assert (overall["premium_sold"], overall["control_premium_sold"]) == ("5000.00", "1000.00")
    assert (overall["opportunities_opened"], overall["opportunities_won"], overall["responded"]) == (
        len(contacted),
        2,
        2,
    )
    sms = next(c for c in results["by_channel"] if c["channel"] == "sms")
    assert sms["responses"] == {"clicked": 2} and sms["reached"] == len(contacted)
    assert results["spend"]["spent"] == str(Decimal("12.05") * len(contacted))
    won = sales.find(Opportunity, contacted[0].opportunity_id)
    assert won is not None and won.source == "campaign" and won.stage == "won"
