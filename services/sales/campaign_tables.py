"""The campaigns' tables beside the sales store, derived from its own log
(``crm_shared.local_tables``): the campaigns by state (which launches are under way), the pages of
each launch (where it goes on, its counts so far), each campaign's frozen target (who was contacted
on which channels and who is in the control group, with the work made for them), the answers that
came back, and how many campaign calls each agent's day holds. The results join them with the
opportunities and the policies sold (``work.WorkIndex``), in the same database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from eventsourcing.utils import get_topic

from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables, by_event_name, placeholders
from services.sales.domain.activity import Activity
from services.sales.domain.campaign import (
    Campaign,
    CampaignMember,
    CampaignState,
    LaunchPage,
    Position,
    Tally,
)
from services.sales.work import OPPORTUNITIES, POLICIES, POSITIONS, stamp

CAMPAIGNS = "sales_campaigns"
PAGES = "sales_campaign_pages"
MEMBERS = "sales_campaign_members"
RESPONSES = "sales_campaign_responses"
CALLS = "sales_campaign_calls"
# A response that shows the customer engaged (delivery and opting out do not).
ENGAGED = ("replied", "clicked", "converted")


class CampaignTables:
    def __init__(self, app: CrmApplication) -> None:
        self.tables = LocalTables(app)
        self.zone = app.zone
        events = [
            Campaign.Created,
            Campaign.Launched,
            Campaign.LaunchCompleted,
            Campaign.Paused,
            Campaign.Resumed,
            Campaign.Closed,
            LaunchPage.Recorded,
            CampaignMember.Selected,
            CampaignMember.ResponseRecorded,
            Activity.Planned,
            Activity.Rescheduled,
            Activity.Cancelled,
            Activity.Reassigned,
        ]
        self.projection = LocalProjection(
            self.tables, "campaigns", [get_topic(e) for e in events], by_event_name(self), POSITIONS
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {CAMPAIGNS} ("
            "campaign_id TEXT PRIMARY KEY, name TEXT NOT NULL, purpose TEXT NOT NULL, state TEXT NOT NULL, "
            "team_ids TEXT NOT NULL, agent_ids TEXT NOT NULL, created_by TEXT NOT NULL, "
            "created_at TEXT NOT NULL, start_date TEXT NOT NULL, end_date TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {CAMPAIGNS}_by_state ON {CAMPAIGNS} (state, created_at)",
            f"CREATE INDEX IF NOT EXISTS {CAMPAIGNS}_by_creation ON {CAMPAIGNS} (created_at, campaign_id)",
            f"CREATE TABLE IF NOT EXISTS {PAGES} ("
            "campaign_id TEXT NOT NULL, page BIGINT NOT NULL, owner_index BIGINT NOT NULL, after_id TEXT, "
            "contacted_total BIGINT NOT NULL, control_total BIGINT NOT NULL, excluded_total TEXT NOT NULL, "
            "last_page BIGINT NOT NULL, PRIMARY KEY (campaign_id, page))",
            f"CREATE TABLE IF NOT EXISTS {MEMBERS} ("
            "campaign_id TEXT NOT NULL, customer_id TEXT NOT NULL, owning_agent_id TEXT NOT NULL, "
            "team_id TEXT, grp TEXT NOT NULL, channels TEXT NOT NULL, activity_id TEXT, "
            "opportunity_id TEXT, PRIMARY KEY (campaign_id, customer_id))",
            f"CREATE TABLE IF NOT EXISTS {RESPONSES} ("
            "campaign_id TEXT NOT NULL, customer_id TEXT NOT NULL, channel TEXT NOT NULL, "
            "response TEXT NOT NULL, PRIMARY KEY (campaign_id, customer_id, channel, response))",
            f"CREATE TABLE IF NOT EXISTS {CALLS} ("
            "activity_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, day TEXT NOT NULL, "
            "cancelled BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {CALLS}_by_day ON {CALLS} (agent_id, day)",
        )
        self.projection.create()

    def catch_up(self) -> int:
        return self.projection.catch_up()

    # Writing ------------------------------------------------------------------------------------

    def _campaign_created(self, cursor: Cursor, e: Campaign.Created) -> None:
        cursor.execute(
            f"INSERT INTO {CAMPAIGNS} (campaign_id, name, purpose, state, team_ids, agent_ids, created_by, "
            "created_at, start_date, end_date) VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (campaign_id) DO NOTHING",
            (
                e.campaign_id,
                e.name,
                e.purpose,
                ",".join(e.target.get("team_ids") or ()),
                ",".join(e.target.get("agent_ids") or ()),
                e.meta["actor"]["user_id"],
                stamp(e.timestamp),
                e.start_date.isoformat(),
                e.end_date.isoformat(),
            ),
        )

    def _state(self, cursor: Cursor, campaign_id: str, state: str) -> None:
        cursor.execute(f"UPDATE {CAMPAIGNS} SET state = ? WHERE campaign_id = ?", (state, campaign_id))

    def _campaign_launched(self, cursor: Cursor, e: Campaign.Launched) -> None:
        self._state(cursor, e.campaign_id, CampaignState.LAUNCHING.value)

    def _campaign_launchcompleted(self, cursor: Cursor, e: Campaign.LaunchCompleted) -> None:
        self._state(cursor, e.campaign_id, CampaignState.RUNNING.value)

    def _campaign_paused(self, cursor: Cursor, e: Campaign.Paused) -> None:
        self._state(cursor, e.campaign_id, CampaignState.PAUSED.value)

    def _campaign_resumed(self, cursor: Cursor, e: Campaign.Resumed) -> None:
        self._state(cursor, e.campaign_id, e.state)

    def _campaign_closed(self, cursor: Cursor, e: Campaign.Closed) -> None:
        self._state(cursor, e.campaign_id, CampaignState.CLOSED.value)

    def _launchpage_recorded(self, cursor: Cursor, e: LaunchPage.Recorded) -> None:
        cursor.execute(
            f"INSERT INTO {PAGES} (campaign_id, page, owner_index, after_id, contacted_total, control_total, "
            "excluded_total, last_page) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, page) DO NOTHING",
            (
                e.campaign_id,
                e.page,
                e.owner_index,
                e.after,
                e.contacted_total,
                e.control_total,
                json.dumps(e.excluded_total, sort_keys=True),
                int(e.last),
            ),
        )

    def _campaignmember_selected(self, cursor: Cursor, e: CampaignMember.Selected) -> None:
        cursor.execute(
            f"INSERT INTO {MEMBERS} (campaign_id, customer_id, owning_agent_id, team_id, grp, channels, "
            "activity_id, opportunity_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, customer_id) DO NOTHING",
            (
                e.campaign_id,
                e.customer_id,
                e.owning_agent_id,
                e.team_id,
                e.group,
                ",".join(e.channels),
                e.activity_id,
                e.opportunity_id,
            ),
        )

    def _campaignmember_responserecorded(self, cursor: Cursor, e: CampaignMember.ResponseRecorded) -> None:
        cursor.execute(
            f"INSERT INTO {RESPONSES} (campaign_id, customer_id, channel, response) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (campaign_id, customer_id, channel, response) DO NOTHING",
            (e.campaign_id, e.customer_id, e.channel, e.response),
        )

    def _day(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()

    def _activity_planned(self, cursor: Cursor, e: Activity.Planned) -> None:
        if e.source == "campaign":
            cursor.execute(
                f"INSERT INTO {CALLS} (activity_id, agent_id, day, cancelled) VALUES (?, ?, ?, 0) "
                "ON CONFLICT (activity_id) DO NOTHING",
                (e.activity_id, e.agent_id, self._day(e.planned_start)),
            )

    def _activity_rescheduled(self, cursor: Cursor, e: Activity.Rescheduled) -> None:
        cursor.execute(
            f"UPDATE {CALLS} SET day = ? WHERE activity_id = ?", (self._day(e.planned_start), e.activity_id)
        )

    def _activity_cancelled(self, cursor: Cursor, e: Activity.Cancelled) -> None:
        cursor.execute(f"UPDATE {CALLS} SET cancelled = 1 WHERE activity_id = ?", (e.activity_id,))

    def _activity_reassigned(self, cursor: Cursor, e: Activity.Reassigned) -> None:
        cursor.execute(
            f"UPDATE {CALLS} SET agent_id = ? WHERE activity_id = ?", (e.to_agent_id, e.activity_id)
        )

    # Reading ------------------------------------------------------------------------------------

    def in_state(self, state: CampaignState, limit: int = 100) -> list[str]:
        rows = self.tables.query(
            f"SELECT campaign_id FROM {CAMPAIGNS} WHERE state = ? ORDER BY created_at LIMIT ?",
            (state.value, limit),
        )
        return [r["campaign_id"] for r in rows]

    def page(self, state: str | None, after: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        """Campaigns, newest first, after the (created_at, campaign_id) of the last one seen."""
        where, params = [], []
        if state:
            where.append("state = ?")
            params.append(state)
        if after:
            where.append("(created_at < ? OR (created_at = ? AND campaign_id < ?))")
            params += [after[0], after[0], after[1]]
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self.tables.query(
            f"SELECT * FROM {CAMPAIGNS} {clause}ORDER BY created_at DESC, campaign_id DESC LIMIT ?",
            (*params, limit),
        )

    def last_page(self, campaign_id: str) -> tuple[int, Tally, Position, bool] | None:
        """The launch's last page recorded: its number, the counts so far, where the launch goes on,
        and whether it was the last; None before the first."""
        rows = self.tables.query(
            f"SELECT * FROM {PAGES} WHERE campaign_id = ? ORDER BY page DESC LIMIT 1", (campaign_id,)
        )
        if not rows:
            return None
        r = rows[0]
        totals = Tally(int(r["contacted_total"]), int(r["control_total"]), json.loads(r["excluded_total"]))
        return int(r["page"]), totals, Position(int(r["owner_index"]), r["after_id"]), bool(r["last_page"])

    def members_among(self, campaign_id: str, customer_ids: Sequence[str]) -> set[str]:
        """Which of these customers the campaign's frozen target holds already."""
        if not customer_ids:
            return set()
        rows = self.tables.query(
            f"SELECT customer_id FROM {MEMBERS} WHERE campaign_id = ? "
            f"AND customer_id IN ({placeholders(customer_ids)})",
            (campaign_id, *customer_ids),
        )
        return {r["customer_id"] for r in rows}

    def calls_per_day(self, agent_ids: Sequence[str], first: date, last: date) -> dict[tuple[str, date], int]:
        """How many calls of every campaign each agent's days from ``first`` to ``last`` hold."""
        if not agent_ids:
            return {}
        rows = self.tables.query(
            f"SELECT agent_id, day, COUNT(*) AS n FROM {CALLS} WHERE agent_id IN ({placeholders(agent_ids)}) "
            "AND day >= ? AND day <= ? AND cancelled = 0 GROUP BY agent_id, day",
            (*agent_ids, first.isoformat(), last.isoformat()),
        )
        return {(r["agent_id"], date.fromisoformat(r["day"])): int(r["n"]) for r in rows}

    def outcome_groups(
        self, campaign_id: str, products: Sequence[str], sold_from: datetime, sold_until: datetime
    ) -> list[dict[str, Any]]:
        """The campaign's members grouped by (group, team, agent, channels): how many, how many
        engaged, opportunities opened and won for them, how many bought an offered product in
        ``[sold_from, sold_until)``, those policies and their annual premium (cents)."""
        bought = (
            f"FROM {POLICIES} p WHERE p.customer_id = m.customer_id "
            f"AND p.product IN ({placeholders(products)}) AND p.sold_at >= ? AND p.sold_at < ?"
        )
        window = (*products, stamp(sold_from), stamp(sold_until))
        return self.tables.query(
            "SELECT grp, team_id, owning_agent_id, channels, COUNT(*) AS members, "
            "SUM(engaged) AS engaged, SUM(opened) AS opened, SUM(won) AS won, "
            "SUM(CASE WHEN policies > 0 THEN 1 ELSE 0 END) AS converted, SUM(policies) AS policies, "
            "SUM(premium) AS premium "
            "FROM (SELECT m.grp, m.team_id, m.owning_agent_id, m.channels, "
            f"CASE WHEN EXISTS (SELECT 1 FROM {RESPONSES} r WHERE r.campaign_id = m.campaign_id "
            f"AND r.customer_id = m.customer_id AND r.response IN ({placeholders(ENGAGED)})) "
            "THEN 1 ELSE 0 END AS engaged, "
            "CASE WHEN o.opportunity_id IS NULL THEN 0 ELSE 1 END AS opened, "
            "CASE WHEN o.stage = 'won' THEN 1 ELSE 0 END AS won, "
            f"(SELECT COUNT(*) {bought}) AS policies, "
            f"COALESCE((SELECT SUM(p.annual_premium_cents) {bought}), 0) AS premium "
            f"FROM {MEMBERS} m LEFT JOIN {OPPORTUNITIES} o ON o.opportunity_id = m.opportunity_id "
            "WHERE m.campaign_id = ?) AS outcome "
            "GROUP BY grp, team_id, owning_agent_id, channels",
            (*ENGAGED, *window, *window, campaign_id),
        )

    def responses_by_channel(self, campaign_id: str) -> list[dict[str, Any]]:
        """Per channel and response: how many customers."""
        return self.tables.query(
            f"SELECT channel, response, COUNT(*) AS n FROM {RESPONSES} WHERE campaign_id = ? "
            "GROUP BY channel, response",
            (campaign_id,),
        )

    def engaged_by_channel(self, campaign_id: str) -> dict[str, int]:
        """Per channel: how many customers engaged on it (replied, clicked or converted)."""
        rows = self.tables.query(
            f"SELECT channel, COUNT(DISTINCT customer_id) AS n FROM {RESPONSES} WHERE campaign_id = ? "
            f"AND response IN ({placeholders(ENGAGED)}) GROUP BY channel",
            (campaign_id, *ENGAGED),
        )
        return {r["channel"]: int(r["n"]) for r in rows}
