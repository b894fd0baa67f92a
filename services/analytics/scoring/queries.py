"""Questions about segments: how many customers each segment holds (beside last month and the same
month a year ago), who they are, and a customer's own scores for the 360 view. Every answer keeps
to the owners the caller may see (the shared access rule)."""

from __future__ import annotations

import heapq
from itertools import islice
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from contracts.fields import SEGMENTS
from crm_shared.access import SalesForceScope, owners_in_scope
from crm_shared.clock import Clock, utc_now
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, PermissionDenied
from services.analytics.facts import ZONE
from services.analytics.paging import decode_cursor, encode_cursor
from services.analytics.scoring.definitions import DefinedSegments
from services.analytics.scoring.recompute import ALL_OWNERS, COUNTS, MEMBERS, SCORES, month_of
from services.analytics.search import CUSTOMER_SEARCH

# How far back a count is looked for when no month is asked.
LATEST_LOOKBACK_MONTHS = 36

# The first batch read of each owner's rows when a team's members are merged (most pages need few).
OWNER_BATCH = 20

# What the 360 view shows of a customer's scores.
SHOWN_SCORES = ("segments", "rfm", "risk", "churn", "lifecycle", "watch", "features", "at")


def month_before(month: str, months: int) -> str:
    year, number = int(month[:4]), int(month[5:7]) - months
    while number < 1:
        year, number = year - 1, number + 12
    return f"{year:04d}-{number:02d}"


def out_of_scope(field: str) -> PermissionDenied:
    return PermissionDenied(
        "you may see only your own customers' segments (agents), or your teams' (managers)",
        fields=[FieldError(field, "out_of_scope", "not an agent or team you may see")],
    )


class SegmentQueries:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self.database = database
        self.clock = clock

    def owners(self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope) -> list[str] | None:
        """The owners asked about (None: the whole book), once the caller may see every one."""
        allowed = owners_in_scope(meta.actor, scope)
        field = "team_id" if data.get("team_id") else "agent_id"
        if data.get("agent_id"):
            asked: list[str] | None = [data["agent_id"]]
        elif data.get("team_id"):
            asked = scope.owners_in_team(data["team_id"])
        else:
            asked = None
        if allowed is None:
            return asked
        if asked is None:
            if not allowed:
                raise out_of_scope(field)
            return allowed
        if not set(asked) <= set(allowed):
            raise out_of_scope(field)
        return asked

    def get_segment_counts(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = self.owners(data, meta, scope)
        scheme = data["scheme"]
        counts = self.database[COUNTS]
        month = data.get("month") or self._latest_month(scheme)
        months = {
            "count": month,
            "last_month": month_before(month, 1),
            "same_month_last_year": month_before(month, 12),
        }
        totals: dict[str, dict[str, int]] = {}
        # One equality per month and owner, each an index range of (month, scheme, owner): a filter
        # with $in is a scan of the whole table on SecantusDB, a row per owner and segment.
        for name, wanted in months.items():
            for owner in [ALL_OWNERS] if owners is None else dict.fromkeys(owners):
                for row in counts.find(
                    {"month": wanted, "scheme": scheme, "owner": owner}, {"segment": 1, "count": 1}
                ):
                    totals.setdefault(row["segment"], {}).setdefault(name, 0)
                    totals[row["segment"]][name] += row["count"]
        # Every segment of a scheme, empty ones too; of the 125 RFM codes, those with customers.
        order = list(SEGMENTS[scheme]) or sorted(totals, reverse=scheme == "rfm")
        segments = []
        for segment in order:
            figures = {name: totals.get(segment, {}).get(name, 0) for name in months}
            segments.append(
                {
                    "segment": segment,
                    **figures,
                    "change_on_last_month": figures["count"] - figures["last_month"],
                    "change_on_last_year": figures["count"] - figures["same_month_last_year"],
                }
            )
        return {
            "scheme": scheme,
            "month": month,
            "agent_id": data.get("agent_id"),
            "team_id": data.get("team_id"),
            "total": sum(s["count"] for s in segments),
            "segments": segments,
        }

    def _latest_month(self, scheme: str) -> str:
        """The last month a recompute counted, looked for month by month back from this one (an
        equality each; the nightly run makes it this month); this month if none in the lookback."""
        # The business's month, as the recompute counts it (early on the 1st it is not UTC's).
        this_month = month_of(self.clock().astimezone(ZONE))
        for back in range(LATEST_LOOKBACK_MONTHS):
            month = month_before(this_month, back)
            if self.database[COUNTS].find_one(
                {"month": month, "scheme": scheme, "owner": ALL_OWNERS}, {"_id": 1}
            ):
                return month
        return this_month

    def list_segment_members(
        self, data: dict[str, Any], meta: CommandMeta, scope: SalesForceScope
    ) -> dict[str, Any]:
        owners = self.owners(data, meta, scope)
        query: dict[str, Any] = {"scheme": data["scheme"], "segment": data["segment"]}
        if data.get("cursor"):
            (after,) = decode_cursor(data["cursor"], 1)
            query["customer_id"] = {"$gt": after}
        limit = data["limit"]
        # One index range per owner, merged in customer order: equalities and one range is the shape
        # SecantusDB walks an index for (the owners' $in beside the cursor's range would read every
        # row of the segment).
        walks = [
            self.database[MEMBERS]
            .find(q)
            .sort("customer_id", ASCENDING)
            .limit(limit + 1)
            .batch_size(min(limit + 1, OWNER_BATCH))
            for q in (
                [query]
                if owners is None
                else [{**query, "owning_agent_id": o} for o in dict.fromkeys(owners)]
            )
        ]
        found = list(islice(heapq.merge(*walks, key=lambda m: m["customer_id"]), limit + 1))
        page = found[:limit]
        ids = [m["customer_id"] for m in page]
        scores = {
            d["_id"]: d
            for d in self.database[SCORES].find({"_id": {"$in": ids}}, {"risk": 1, "churn": 1, "features": 1})
        }
        names = {
            d["_id"]: d.get("full_name")
            for d in self.database[CUSTOMER_SEARCH].find({"_id": {"$in": ids}}, {"full_name": 1})
        }
        members = []
        for m in page:
            score = scores.get(m["customer_id"], {})
            members.append(
                {
                    "customer_id": m["customer_id"],
                    "full_name": names.get(m["customer_id"]),
                    "owning_agent_id": m["owning_agent_id"],
                    "since": m["since"],
                    "premium_12m": (score.get("features") or {}).get("premium_12m"),
                    "risk_score": (score.get("risk") or {}).get("score"),
                    "churn_score": (score.get("churn") or {}).get("score"),
                }
            )
        return {
            "scheme": data["scheme"],
            "segment": data["segment"],
            "members": members,
            "next_cursor": encode_cursor([page[-1]["customer_id"]]) if len(found) > limit else None,
        }

    def scores_of(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's scores as the last recompute left them (None before the first)."""
        doc = self.database[SCORES].find_one({"_id": customer_id}, dict.fromkeys(SHOWN_SCORES, 1))
        if doc is None:
            return None
        shown = {name: doc.get(name) for name in SHOWN_SCORES}
        shown["computed_at"] = shown.pop("at")
        shown["tags"] = DefinedSegments(self.database).tags_of(customer_id)
        return shown
