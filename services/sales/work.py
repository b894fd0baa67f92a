"""The sales context's tables beside its store, derived from its own log
(``crm_shared.local_tables``): activities by agent and time (daily plans, a manager's team day),
opportunities by agent and stage with every stage each one entered (pipelines and conversion), and
the policies sold (premium sold per agent and day, and whether a customer holds a policy in force).
Read after catching up with the store, so a reader sees every command that was answered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic

from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables, by_event_name, placeholders
from services.sales.domain.activity import Activity
from services.sales.domain.opportunity import Opportunity, Stage
from services.sales.domain.policy import Policy, PolicyStatus

ACTIVITIES = "sales_activities"
OPPORTUNITIES = "sales_opportunities"
STAGE_ENTRIES = "sales_stage_entries"
POLICIES = "sales_policy_book"
POSITIONS = "sales_local_positions"
CLOSED = (Stage.WON.value, Stage.LOST.value)


def stamp(moment: datetime) -> str:
    """A time as the tables keep it: UTC to the second, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def cents(amount: Decimal) -> int:
    return int(amount * 100)


class WorkIndex:
    def __init__(self, app: CrmApplication) -> None:
        self.tables = LocalTables(app)
        events = [
            Activity.Planned,
            Activity.Rescheduled,
            Activity.Completed,
            Activity.Cancelled,
            Activity.Reassigned,
            Opportunity.Opened,
            Opportunity.Moved,
            Opportunity.Reassigned,
            Policy.Sold,
            Policy.Renewed,
            Policy.Lapsed,
            Policy.Reinstated,
            Policy.Cancelled,
        ]
        self.projection = LocalProjection(
            self.tables, "work", [get_topic(e) for e in events], by_event_name(self), POSITIONS
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {ACTIVITIES} ("
            "activity_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, customer_id TEXT, kind TEXT NOT NULL, "
            "planned_start TEXT NOT NULL, planned_end TEXT NOT NULL, state TEXT NOT NULL, "
            "purpose TEXT NOT NULL, source TEXT NOT NULL, outcome TEXT, completed_at TEXT)",
            f"CREATE INDEX IF NOT EXISTS {ACTIVITIES}_by_agent ON {ACTIVITIES} (agent_id, planned_start)",
            f"CREATE INDEX IF NOT EXISTS {ACTIVITIES}_by_customer ON {ACTIVITIES} (customer_id, state)",
            # Work still planned from earlier days, without walking all that was done.
            f"CREATE INDEX IF NOT EXISTS {ACTIVITIES}_open ON {ACTIVITIES} (agent_id, state, planned_start)",
            f"CREATE TABLE IF NOT EXISTS {OPPORTUNITIES} ("
            "opportunity_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, customer_id TEXT NOT NULL, "
            "customer_kind TEXT NOT NULL, product TEXT NOT NULL, source TEXT NOT NULL, stage TEXT NOT NULL, "
            "expected_premium_cents BIGINT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT)",
            f"CREATE INDEX IF NOT EXISTS {OPPORTUNITIES}_by_agent ON {OPPORTUNITIES} (agent_id, stage)",
            f"CREATE INDEX IF NOT EXISTS {OPPORTUNITIES}_by_customer ON {OPPORTUNITIES} (customer_id, stage)",
            f"CREATE INDEX IF NOT EXISTS {OPPORTUNITIES}_by_opening ON {OPPORTUNITIES} (agent_id, opened_at)",
            f"CREATE TABLE IF NOT EXISTS {STAGE_ENTRIES} ("
            "opportunity_id TEXT NOT NULL, version BIGINT NOT NULL, stage TEXT NOT NULL, "
            "agent_id TEXT NOT NULL, entered_at TEXT NOT NULL, PRIMARY KEY (opportunity_id, version))",
            f"CREATE INDEX IF NOT EXISTS {STAGE_ENTRIES}_by_agent ON {STAGE_ENTRIES} (agent_id, entered_at)",
            f"CREATE TABLE IF NOT EXISTS {POLICIES} ("
            "policy_number TEXT PRIMARY KEY, customer_id TEXT NOT NULL, agent_id TEXT NOT NULL, "
            "product TEXT NOT NULL, annual_premium_cents BIGINT NOT NULL, sold_at TEXT NOT NULL, "
            "end_date TEXT NOT NULL, status TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {POLICIES}_by_customer ON {POLICIES} (customer_id, status)",
            f"CREATE INDEX IF NOT EXISTS {POLICIES}_by_agent ON {POLICIES} (agent_id, sold_at)",
        )
        self.projection.create()

    def catch_up(self) -> int:
        return self.projection.catch_up()

    # Writing ------------------------------------------------------------------------------------

    def _activity_planned(self, cursor: Cursor, e: Activity.Planned) -> None:
        cursor.execute(
            f"INSERT INTO {ACTIVITIES} (activity_id, agent_id, customer_id, kind, planned_start, "
            "planned_end, state, purpose, source) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?) "
            "ON CONFLICT (activity_id) DO NOTHING",
            (
                e.activity_id,
                e.agent_id,
                e.customer_id,
                e.kind,
                stamp(e.planned_start),
                stamp(e.planned_end),
                e.purpose,
                e.source,
            ),
        )

    def _activity_rescheduled(self, cursor: Cursor, e: Activity.Rescheduled) -> None:
        cursor.execute(
            f"UPDATE {ACTIVITIES} SET planned_start = ?, planned_end = ? WHERE activity_id = ?",
            (stamp(e.planned_start), stamp(e.planned_end), e.activity_id),
        )

    def _activity_completed(self, cursor: Cursor, e: Activity.Completed) -> None:
        cursor.execute(
            f"UPDATE {ACTIVITIES} SET state = 'done', outcome = ?, completed_at = ? WHERE activity_id = ?",
            (e.outcome, stamp(e.completed_at), e.activity_id),
        )

    def _activity_cancelled(self, cursor: Cursor, e: Activity.Cancelled) -> None:
        cursor.execute(f"UPDATE {ACTIVITIES} SET state = 'cancelled' WHERE activity_id = ?", (e.activity_id,))

    def _activity_reassigned(self, cursor: Cursor, e: Activity.Reassigned) -> None:
        cursor.execute(
            f"UPDATE {ACTIVITIES} SET agent_id = ? WHERE activity_id = ?", (e.to_agent_id, e.activity_id)
        )

    def _opportunity_opened(self, cursor: Cursor, e: Opportunity.Opened) -> None:
        cursor.execute(
            f"INSERT INTO {OPPORTUNITIES} (opportunity_id, agent_id, customer_id, customer_kind, product, "
            "source, stage, expected_premium_cents, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (opportunity_id) DO NOTHING",
            (
                e.opportunity_id,
                e.agent_id,
                e.customer_id,
                e.customer_kind,
                e.product,
                e.source,
                e.stage,
                cents(e.expected_annual_premium),
                stamp(e.timestamp),
            ),
        )
        self._entered(cursor, e.opportunity_id, e.originator_version, e.stage, e.agent_id, e.timestamp)

    def _opportunity_moved(self, cursor: Cursor, e: Opportunity.Moved) -> None:
        cursor.execute(
            f"UPDATE {OPPORTUNITIES} SET stage = ?, closed_at = ? WHERE opportunity_id = ?",
            (e.to_stage, stamp(e.timestamp) if e.to_stage in CLOSED else None, e.opportunity_id),
        )
        self._entered(cursor, e.opportunity_id, e.originator_version, e.to_stage, e.agent_id, e.timestamp)

    def _entered(
        self, cursor: Cursor, opportunity_id: str, version: int, stage: str, agent_id: str, at: datetime
    ) -> None:
        cursor.execute(
            f"INSERT INTO {STAGE_ENTRIES} (opportunity_id, version, stage, agent_id, entered_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (opportunity_id, version) DO NOTHING",
            (opportunity_id, version, stage, agent_id, stamp(at)),
        )

    def _opportunity_reassigned(self, cursor: Cursor, e: Opportunity.Reassigned) -> None:
        cursor.execute(
            f"UPDATE {OPPORTUNITIES} SET agent_id = ? WHERE opportunity_id = ?",
            (e.to_agent_id, e.opportunity_id),
        )

    def _policy_sold(self, cursor: Cursor, e: Policy.Sold) -> None:
        cursor.execute(
            f"INSERT INTO {POLICIES} (policy_number, customer_id, agent_id, product, annual_premium_cents, "
            "sold_at, end_date, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'active') "
            "ON CONFLICT (policy_number) DO NOTHING",
            (
                e.policy_number,
                e.customer_id,
                e.agent_id,
                e.product,
                cents(e.annual_premium),
                stamp(e.timestamp),
                e.end_date.isoformat(),
            ),
        )

    def _policy_renewed(self, cursor: Cursor, e: Policy.Renewed) -> None:
        cursor.execute(
            f"UPDATE {POLICIES} SET end_date = ? WHERE policy_number = ?",
            (e.end_date.isoformat(), e.policy_number),
        )

    def _status(self, cursor: Cursor, policy_number: str, status: PolicyStatus) -> None:
        cursor.execute(
            f"UPDATE {POLICIES} SET status = ? WHERE policy_number = ?", (status.value, policy_number)
        )

    def _policy_lapsed(self, cursor: Cursor, e: Policy.Lapsed) -> None:
        self._status(cursor, e.policy_number, PolicyStatus.LAPSED)

    def _policy_reinstated(self, cursor: Cursor, e: Policy.Reinstated) -> None:
        self._status(cursor, e.policy_number, PolicyStatus.ACTIVE)

    def _policy_cancelled(self, cursor: Cursor, e: Policy.Cancelled) -> None:
        self._status(cursor, e.policy_number, PolicyStatus.CANCELLED)

    # Reading ------------------------------------------------------------------------------------

    def activities_of(
        self, agent_id: str, start: datetime, end: datetime, limit: int = 500
    ) -> list[dict[str, Any]]:
        """An agent's activities starting in ``[start, end)``, in plan order."""
        return self.tables.query(
            f"SELECT * FROM {ACTIVITIES} WHERE agent_id = ? AND planned_start >= ? AND planned_start < ? "
            "ORDER BY planned_start, activity_id LIMIT ?",
            (agent_id, stamp(start), stamp(end), limit),
        )

    def carried_over(self, agent_id: str, before: datetime, limit: int = 50) -> list[dict[str, Any]]:
        """Activities still planned from before ``before`` (overdue work left from earlier days),
        the most recent first."""
        return self.tables.query(
            f"SELECT * FROM {ACTIVITIES} WHERE agent_id = ? AND planned_start < ? AND state = 'planned' "
            "ORDER BY planned_start DESC, activity_id LIMIT ?",
            (agent_id, stamp(before), limit),
        )

    def day_counts(
        self, agent_ids: Sequence[str], start: datetime, end: datetime, now: datetime
    ) -> dict[str, dict[str, int]]:
        """Per agent, the day's activities: planned (not cancelled), done, overdue, cancelled."""
        if not agent_ids:
            return {}
        rows = self.tables.query(
            "SELECT agent_id, "
            "SUM(CASE WHEN state <> 'cancelled' THEN 1 ELSE 0 END) AS planned, "
            "SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END) AS done, "
            "SUM(CASE WHEN state = 'planned' AND planned_end <= ? THEN 1 ELSE 0 END) AS overdue, "
            "SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled "
            f"FROM {ACTIVITIES} WHERE agent_id IN ({placeholders(agent_ids)}) "
            "AND planned_start >= ? AND planned_start < ? GROUP BY agent_id",
            (stamp(now), *agent_ids, stamp(start), stamp(end)),
        )
        return {
            r["agent_id"]: {k: int(r[k] or 0) for k in ("planned", "done", "overdue", "cancelled")}
            for r in rows
        }

    def moves_on(self, agent_ids: Sequence[str], start: datetime, end: datetime) -> dict[str, int]:
        """Per agent, how many opportunities they moved to another stage in ``[start, end)``."""
        if not agent_ids:
            return {}
        rows = self.tables.query(
            f"SELECT agent_id, COUNT(DISTINCT opportunity_id) AS n FROM {STAGE_ENTRIES} "
            f"WHERE agent_id IN ({placeholders(agent_ids)}) AND entered_at >= ? AND entered_at < ? "
            "AND version > 1 GROUP BY agent_id",
            (*agent_ids, stamp(start), stamp(end)),
        )
        return {r["agent_id"]: int(r["n"]) for r in rows}

    def premium_sold(
        self, agent_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, tuple[int, int]]:
        """Per agent, the policies sold in ``[start, end)`` and their annual premium in cents."""
        if not agent_ids:
            return {}
        rows = self.tables.query(
            f"SELECT agent_id, COUNT(*) AS n, SUM(annual_premium_cents) AS total FROM {POLICIES} "
            f"WHERE agent_id IN ({placeholders(agent_ids)}) AND sold_at >= ? AND sold_at < ? "
            "GROUP BY agent_id",
            (*agent_ids, stamp(start), stamp(end)),
        )
        return {r["agent_id"]: (int(r["n"]), int(r["total"] or 0)) for r in rows}

    def pipeline_of(self, agent_ids: Sequence[str], closed_since: datetime) -> list[dict[str, Any]]:
        """Per stage now: count and expected premium (cents) of the open opportunities, and of
        those won or lost since ``closed_since``."""
        if not agent_ids:
            return []
        return self.tables.query(
            "SELECT stage, COUNT(*) AS n, SUM(expected_premium_cents) AS expected "
            f"FROM {OPPORTUNITIES} WHERE agent_id IN ({placeholders(agent_ids)}) "
            "AND (closed_at IS NULL OR closed_at >= ?) GROUP BY stage",
            (*agent_ids, stamp(closed_since)),
        )

    def stages_reached(self, agent_ids: Sequence[str], opened_since: datetime) -> list[dict[str, Any]]:
        """For conversion: of the opportunities opened since ``opened_since``, per stage reached
        and stage now, how many."""
        if not agent_ids:
            return []
        return self.tables.query(
            "SELECT e.stage AS reached, o.stage AS now, COUNT(DISTINCT o.opportunity_id) AS n "
            f"FROM {OPPORTUNITIES} o JOIN {STAGE_ENTRIES} e ON e.opportunity_id = o.opportunity_id "
            f"WHERE o.agent_id IN ({placeholders(agent_ids)}) AND o.opened_at >= ? GROUP BY e.stage, o.stage",
            (*agent_ids, stamp(opened_since)),
        )

    def open_work_of(self, customer_id: str) -> tuple[list[str], list[str]]:
        """A customer's open opportunities and planned activities (ids)."""
        opportunities = self.tables.query(
            f"SELECT opportunity_id FROM {OPPORTUNITIES} WHERE customer_id = ? AND stage NOT IN (?, ?)",
            (customer_id, *CLOSED),
        )
        activities = self.tables.query(
            f"SELECT activity_id FROM {ACTIVITIES} WHERE customer_id = ? AND state = 'planned'",
            (customer_id,),
        )
        return [r["opportunity_id"] for r in opportunities], [r["activity_id"] for r in activities]

    def holds_policy_in_force(self, customer_id: str, on: date) -> bool:
        rows = self.tables.query(
            f"SELECT 1 AS one FROM {POLICIES} "
            "WHERE customer_id = ? AND status = 'active' AND end_date > ? LIMIT 1",
            (customer_id, on.isoformat()),
        )
        return bool(rows)
