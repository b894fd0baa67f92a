"""A month's figures from the business facts: an agent's and a team's performance, the sales funnel
and forecast, the complaint statistics beside last month and the same month a year ago. Each is one
aggregate over the facts of one month and one scope (an agent, a team's agents, or everyone the
caller may see), through the (kind, month, agent) index."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from pymongo.database import Database

from crm_shared.access import SalesForceScope
from crm_shared.domain import CommandMeta
from services.analytics.catalog import ReadModelCatalog
from services.analytics.facts import BUSINESS_FACTS
from services.analytics.scoring.queries import SegmentQueries, month_before
from services.analytics.scoring.recompute import SCORES
from services.analytics.store import CUSTOMER_360

PERFORMANCE_KINDS = (
    "activity_planned",
    "activity_done",
    "activity_cancelled",
    "opportunity_opened",
    "opportunity_won",
    "opportunity_lost",
    "premium_sold",
    "premium_retained",
    "ticket_opened",
    "survey_answered",
)
CONTACTED_WITHIN_DAYS = 90


def yuan(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class BusinessFigures:
    def __init__(
        self, database: Database, segments: SegmentQueries, catalog: ReadModelCatalog | None = None
    ) -> None:
        self.database = database
        self.segments = segments
        self.catalog = catalog or ReadModelCatalog(database)

    def _facts(self) -> Any:
        return self.database[self.catalog.targets(BUSINESS_FACTS).active]

    def _grouped(
        self, month: str, kinds: tuple[str, ...], owners: list[str] | None, by: dict[str, str]
    ) -> list[dict[str, Any]]:
        """One aggregate per kind (each row's ``_id`` holds its kind: the lists just add up), each
        an index range of (kind, month, agent): SecantusDB walks an index for equalities followed by
        at most one operator (here the owners' ``$in``); a second would read the month's every fact."""
        rows: list[dict[str, Any]] = []
        for kind in kinds:
            match: dict[str, Any] = {"kind": kind, "month": month}
            if owners is not None:
                match["agent_id"] = {"$in": owners}
            rows += self._grouped_one(match, by)
        return rows

    def _grouped_one(self, match: dict[str, Any], by: dict[str, str]) -> list[dict[str, Any]]:
        return list(
            self._facts().aggregate(
                [
                    {"$match": match},
                    {
                        "$group": {
                            "_id": {"kind": "$kind", **by},
                            "n": {"$sum": 1},
                            "amount": {"$sum": "$amount_cents"},
                            "scored": {"$sum": {"$cond": [{"$gt": ["$dims.score", None]}, 1, 0]}},
                            "score": {"$sum": {"$ifNull": ["$dims.score", 0]}},
                        }
                    },
                ]
            )
        )

    # Performance ---------------------------------------------------------------------------------

    def get_agent_performance(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = self.segments.owners({"agent_id": data["agent_id"]}, meta, scope)
        assert owners is not None
        figures = self._performance(data["month"], owners, by_agent=False)
        return {"agent_id": data["agent_id"], "month": data["month"], **figures[None]}

    def get_team_performance(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = self.segments.owners({"team_id": data["team_id"]}, meta, scope)
        assert owners is not None
        per_agent = self._performance(data["month"], owners, by_agent=True)
        team = self._performance(data["month"], owners, by_agent=False)[None]
        agents = [{"agent_id": agent, **figures} for agent, figures in sorted(per_agent.items()) if agent]
        return {"team_id": data["team_id"], "month": data["month"], **team, "agents": agents}

    def _performance(self, month: str, owners: list[str], by_agent: bool) -> dict[str | None, dict[str, Any]]:
        rows = self._grouped(month, PERFORMANCE_KINDS, owners, {"agent": "$agent_id"} if by_agent else {})
        complaints = self._grouped(
            month,
            ("ticket_opened",),
            owners,
            {"agent": "$agent_id", "t": "$dims.ticket_kind"} if by_agent else {"t": "$dims.ticket_kind"},
        )
        counts: dict[str | None, Counter[str]] = defaultdict(Counter)
        amounts: dict[str | None, Counter[str]] = defaultdict(Counter)
        for row in rows:
            agent = row["_id"].get("agent") if by_agent else None
            counts[agent][row["_id"]["kind"]] += row["n"]
            amounts[agent][row["_id"]["kind"]] += row["amount"]
            if row["_id"]["kind"] == "survey_answered":
                counts[agent]["scored"] += row["scored"]
                amounts[agent]["score"] += row["score"]
        for row in complaints:
            if row["_id"].get("t") == "complaint":
                counts[row["_id"].get("agent") if by_agent else None]["complaints"] += row["n"]
        books = self._books(owners, by_agent)
        agents = set(counts) | set(books) if by_agent else {None}
        return {
            agent: self._figures(counts[agent], amounts[agent], books.get(agent, (0, 0))) for agent in agents
        }

    def _books(self, owners: list[str], by_agent: bool) -> dict[str | None, tuple[int, int]]:
        """(customers owned, of them contacted in the last 90 days), per agent or together."""
        books: dict[str | None, tuple[int, int]] = {}
        for owner in owners:
            # The owner's documents through the owner index, the merged ones left out here: a null
            # equality beside another field is a scan of the whole collection on SecantusDB.
            owned = self.database[self.catalog.targets(CUSTOMER_360).active].find(
                {"owning_agent_id": owner}, {"merged_into": 1}
            )
            size = sum(1 for doc in owned if doc.get("merged_into") is None)
            contacted = self.database[SCORES].count_documents(
                {"owning_agent_id": owner, "features.days_since_contact": {"$lte": CONTACTED_WITHIN_DAYS}}
            )
            key = owner if by_agent else None
            before = books.get(key, (0, 0))
            books[key] = (before[0] + size, before[1] + contacted)
        return books

    @staticmethod
    def _figures(counts: Counter[str], amounts: Counter[str], book: tuple[int, int]) -> dict[str, Any]:
        won, lost = counts["opportunity_won"], counts["opportunity_lost"]
        size, contacted = book
        return {
            "activities": {
                "planned": counts["activity_planned"],
                "done": counts["activity_done"],
                "cancelled": counts["activity_cancelled"],
                "done_share": share(counts["activity_done"], counts["activity_planned"]),
            },
            "opportunities": {
                "opened": counts["opportunity_opened"],
                "won": won,
                "lost": lost,
                "conversion": share(won, won + lost),
                "expected_premium_opened": yuan(amounts["opportunity_opened"]),
            },
            "premium": {"sold": yuan(amounts["premium_sold"]), "retained": yuan(amounts["premium_retained"])},
            "customers": {
                "book": size,
                "complaints": counts["complaints"],
                "complaint_rate": share(counts["complaints"], size),
                "surveys": counts["survey_answered"],
                "satisfaction": round(amounts["score"] / counts["scored"], 2) if counts["scored"] else None,
                "contacted_in_90_days": contacted,
                "contacted_share": share(contacted, size),
            },
        }

    # Funnel and forecast -------------------------------------------------------------------------

    def get_funnel(self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope) -> dict[str, Any]:
        owners = self.segments.owners(data, meta, scope)
        month = data["month"]
        rows = self._grouped(
            month,
            ("opportunity_opened", "opportunity_moved"),
            owners,
            {"stage": "$dims.to_stage", "opened": "$dims.stage"},
        )
        opened, reached, premium = 0, Counter[str](), 0
        for row in rows:
            if row["_id"]["kind"] == "opportunity_opened":
                opened += row["n"]
                premium += row["amount"]
                reached[row["_id"].get("opened") or "lead"] += row["n"]
            else:
                reached[row["_id"].get("stage") or "?"] += row["n"]
        won, lost = reached.get("won", 0), reached.get("lost", 0)
        return {
            "month": month,
            "agent_id": data.get("agent_id"),
            "team_id": data.get("team_id"),
            "opened": opened,
            "expected_premium_opened": yuan(premium),
            "reached": dict(sorted(reached.items())),
            "won": won,
            "lost": lost,
            "conversion": share(won, won + lost),
            "forecast": self._forecast(owners) if owners is not None else None,
        }

    def _forecast(self, owners: list[str]) -> list[dict[str, Any]]:
        """Open opportunities of the owners' customers by the month they are expected to close:
        the premium expected, weighted by each one's probability."""
        by_month: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
        docs = self.database[self.catalog.targets(CUSTOMER_360).active].find(
            {"owning_agent_id": {"$in": owners}}, {"opportunities": 1}
        )
        for doc in docs:
            for o in doc.get("opportunities", []):
                if o.get("stage") in ("won", "lost"):
                    continue
                month = (o.get("expected_close_date") or "unscheduled")[:7]
                expected = Decimal(o.get("expected_annual_premium") or 0)
                cell = by_month[month]
                cell[0] += 1
                cell[1] += expected
                cell[2] += expected * Decimal(str(o.get("probability") or 0))
        return [
            {
                "month": month,
                "open": int(cell[0]),
                "expected_premium": str(cell[1].quantize(Decimal("0.01"))),
                "weighted_premium": str(cell[2].quantize(Decimal("0.01"))),
            }
            for month, cell in sorted(by_month.items())
        ]

    # Complaint statistics ------------------------------------------------------------------------

    def get_complaint_statistics(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = self.segments.owners(data, meta, scope)
        month = data["month"]
        months = {
            "count": month,
            "last_month": month_before(month, 1),
            "same_month_last_year": month_before(month, 12),
        }
        cuts: dict[str, dict[str, dict[str, int]]] = {"category": {}, "channel": {}, "priority": {}}
        totals = dict.fromkeys(months, 0)
        closed = {name: Counter[str]() for name in months}
        for name, wanted in months.items():
            opened = self._grouped(
                wanted,
                ("ticket_opened",),
                owners,
                {
                    "t": "$dims.ticket_kind",
                    "category": "$dims.category",
                    "channel": "$dims.channel",
                    "priority": "$dims.priority",
                },
            )
            for row in opened:
                if row["_id"].get("t") != "complaint":
                    continue
                totals[name] += row["n"]
                for cut in cuts:
                    value = str(row["_id"].get(cut))
                    cuts[cut].setdefault(value, dict.fromkeys(months, 0))[name] += row["n"]
            for row in self._grouped(
                wanted,
                ("ticket_closed",),
                owners,
                {"t": "$dims.ticket_kind", "sla": "$dims.closed_within_sla"},
            ):
                if row["_id"].get("t") == "complaint":
                    closed[name]["within_sla" if row["_id"].get("sla") else "late"] += row["n"]
        return {
            "month": month,
            "agent_id": data.get("agent_id"),
            "team_id": data.get("team_id"),
            "complaints": totals,
            **{
                f"by_{cut}": [{"value": v, **figures} for v, figures in sorted(values.items())]
                for cut, values in cuts.items()
            },
            "sla_compliance": {
                name: share(c["within_sla"], c["within_sla"] + c["late"]) for name, c in closed.items()
            },
            "closed": {name: c["within_sla"] + c["late"] for name, c in closed.items()},
        }
