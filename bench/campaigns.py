"""Launching a campaign over a large target (``make bench``): a segment of N customers with mixed
consents, spread over 2,000 agents, seeded straight into the read models (the 360 documents and
the segment rows analytics would hold); then ``launch_campaign`` over RPC and the time until the
launcher has frozen the whole target and created its work (a call and an opportunity in the owner's
day for each customer called, a message event for each texted one), with the launcher's own peak
memory. Every process of the system runs meanwhile (the relay and projectors take the launch's
events as they come), so the figure is what a launch costs on a live system."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import InsertOne

from bench.run import OPERATOR
from crm_cli.client import CrmClient
from crm_cli.system import System
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.customer_360 import empty_document
from services.analytics.rebuild import peak_rss_mb
from services.analytics.scoring.recompute import MEMBERS, member_id
from services.analytics.store import CUSTOMER_360

TEAM = "T-CAMPAIGN"
AGENTS = tuple(f"K-{i:04d}" for i in range(2_000))
SCHEME, SEGMENT = "value_churn", "high_value_at_risk"
SEED_BATCH = 2_000


@dataclass(frozen=True)
class Launch:
    targets: int
    seconds: float
    contacted: int
    control: int
    excluded: int
    peak_rss_mb: float

    @property
    def per_second(self) -> float:
        return self.targets / self.seconds


def register_agents(system: System) -> None:
    """A team of 2,000 agents, registered over RPC by four clients at once."""

    def share(part: int) -> None:
        with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
            for n in range(part, len(AGENTS), 4):
                agent = {
                    "agent_id": AGENTS[n],
                    "name": f"Agent {n}",
                    "team_id": TEAM,
                    "hired_on": "2020-01-01",
                }
                reply = client.call("sales", "register_agent", agent)
                assert reply["ok"] or reply["error"]["fields"][0]["rule"] == "already_exists", reply

    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=60) as client:
        client.call(
            "sales",
            "create_team",
            {"team_id": TEAM, "name": "Campaign bench", "branch": "Hangzhou", "manager_user_id": "mgr-k"},
        )
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(share, range(4)))


def target_document(customer_id: str, n: int) -> dict[str, Any]:
    """A customer of the segment as the 360 view has them: consents mixed (phone 60%, sms 70%,
    neither about 12%), one in twenty do-not-call, insured for life."""
    doc = empty_document(customer_id)
    owner = AGENTS[n % len(AGENTS)]
    doc |= {
        "owning_agent_id": owner,
        "registered_at": "2025-01-06T02:00:00+00:00",
        "profile": {"full_name": None, "address": {"province": ("Zhejiang", "Jiangsu", "Shanghai")[n % 3]}},
        "policies": [{"policy_number": f"POL-{n:016X}", "product": "life", "status": "active"}],
        "consents": {
            f"{channel}_marketing": {"status": "granted"}
            for channel, share in (("phone", 60), ("sms", 70))
            if (n * 37 + len(channel)) % 100 < share
        },
        "contact_preferences": {
            "preferred_channel": None,
            "best_time_to_call": None,
            "do_not_call": n % 20 == 0,
        },
    }
    return doc


def seed_segment(system: System, targets: int) -> None:
    """``targets`` customers of the segment in the read models, in batches."""
    client = mongo_client(system.mongo_uri)
    database = client["crm"]
    views = database[ReadModelCatalog(database).targets(CUSTOMER_360).active]
    members = database[MEMBERS]
    for start in range(0, targets, SEED_BATCH):
        docs, rows = [], []
        for n in range(start, min(start + SEED_BATCH, targets)):
            customer_id = str(uuid.uuid4())
            doc = target_document(customer_id, n)
            docs.append(InsertOne(doc))
            rows.append(
                InsertOne(
                    {
                        "_id": member_id(SCHEME, customer_id),
                        "scheme": SCHEME,
                        "segment": SEGMENT,
                        "customer_id": customer_id,
                        "owning_agent_id": doc["owning_agent_id"],
                        "since": "2026-01-01",
                    }
                )
            )
        views.bulk_write(docs, ordered=False)
        members.bulk_write(rows, ordered=False)
    client.close()


def clear_segment(system: System) -> None:
    client = mongo_client(system.mongo_uri)
    client["crm"][MEMBERS].delete_many({"scheme": SCHEME, "segment": SEGMENT})
    client.close()


def launch(system: System, targets: int) -> Launch:
    """A campaign over the seeded target, from ``launch_campaign`` until its launch completed,
    with a launcher process started afresh for it (its peak memory is this launch's)."""
    launcher = system.processes["campaigns"]
    launcher.stop()
    launcher.start(system.env)
    with CrmClient.for_caller(system.amqp_uri, OPERATOR, system.signer, timeout=120) as client:
        today = time.strftime("%Y-%m-%d", time.gmtime())
        until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + timedelta(days=28).total_seconds()))
        created = client.call(
            "sales",
            "create_campaign",
            {
                "name": f"Bench {targets:,}",
                "purpose": "retention",
                "products": ["life"],
                "offer": "A loyalty review",
                "target": {"scheme": SCHEME, "segment": SEGMENT},
                "channels": ["agent_call", "sms"],
                "start_date": today,
                "end_date": until,
                "budget": "1000000.00",
                "expected_annual_premium": "5000.00",
            },
        )
        assert created["ok"], created
        campaign_id = created["result"]["campaign_id"]
        began = time.monotonic()
        assert client.call("sales", "launch_campaign", {"campaign_id": campaign_id})["ok"]
        while True:
            campaign = client.call("sales", "get_campaign", {"campaign_id": campaign_id})["result"]
            if campaign["state"] != "launching":
                break
            time.sleep(0.2)
        seconds = time.monotonic() - began
    frozen = campaign["frozen"]
    assert launcher.process is not None
    return Launch(
        targets=targets,
        seconds=seconds,
        contacted=frozen["contacted"],
        control=frozen["control"],
        excluded=sum(frozen["excluded"].values()),
        peak_rss_mb=peak_rss_mb(launcher.process.pid),
    )


def campaign_launches(system: System, sizes: tuple[int, ...]) -> list[Launch]:
    """A launch over a target of each size (the segment seeded afresh for each)."""
    system.stop(["segments"])  # the nightly recompute would redraw the seeded segment
    register_agents(system)
    launches = []
    for targets in sizes:
        clear_segment(system)
        seed_segment(system, targets)
        launches.append(launch(system, targets))
    clear_segment(system)
    return launches
