"""Campaigns: drafted by a manager (for their teams) or by marketing (operators, admins), previewed,
launched, paused, closed, and measured against their control group.

Launching records the launch and returns at once; the campaign launcher (``crm-campaigns``) then
freezes the target a page at a time (``advance_launches``): each page of the segment's customers,
read from analytics with what the campaign rules need, becomes the campaign's members (contacted or
control), the calls in their owners' days with an opportunity each (agent channels) and the
messages for the gateways (sms, email, post), in one atomic append with the page's progress. Two
launchers on one campaign collide on its version and one page is appended once; a launcher killed
anywhere goes on from the last page recorded."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from time import monotonic
from typing import Any, Protocol

from eventsourcing.persistence import IntegrityError

from crm_shared.access import may_act_on
from crm_shared.auth import Caller, Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from services.sales.application.opportunities import yuan
from services.sales.application.planning import Planning
from services.sales.campaign_tables import CampaignTables
from services.sales.domain.activity import Activity, ActivityKind
from services.sales.domain.agent import pool_of
from services.sales.domain.campaign import (
    Campaign,
    CampaignMember,
    CampaignState,
    Chosen,
    Exclusion,
    Group,
    LaunchPage,
    Position,
    Tally,
    TargetFacts,
    select,
)
from services.sales.domain.campaign_rules import cost_per_policy, spread, uplift
from services.sales.domain.opportunity import Opportunity

PAGE_SIZE = 500
# A preview of a whole segment counts at most this many of its customers, and scales.
PREVIEW_SAMPLE = 20_000
SLOTS_A_DAY = 16  # half hours from 09:00 to 17:00
TEAMS_KEPT_SECONDS = 60.0
CALLS_START = time(9, 0)
CALL_LASTS = timedelta(minutes=30)
COSTS_FILE = Path(__file__).resolve().parent.parent / "config" / "campaign_costs.json"
# Who runs campaigns: marketing (operators, admins) for anyone, managers for their own teams.
RUNS_CAMPAIGNS = (Role.MANAGER, Role.OPERATOR, Role.ADMIN)
# Who reports what came back: the channel gateways (internal systems) and marketing; an agent or
# a manager for customers they may act on.
REPORTS_RESPONSES = (Role.SYSTEM, Role.OPERATOR, Role.ADMIN, Role.AGENT, Role.MANAGER)
# Whose name the launch's pages are recorded under (who launched is in the launch).
CAMPAIGN_LAUNCHER = Caller("service:sales-campaigns", Role.SYSTEM)
STEP_NAMESPACE = uuid.UUID("93d0b5e1-4a27-4c8f-b6d2-0e5f1a7c9b38")
log = logging.getLogger("crm.sales.campaigns")


class TargetSource(Protocol):
    """Analytics' answer: a page of a segment's customers (one owner's, if named) after a customer
    id, in customer id order, with the facts the campaign rules need (``TargetFacts``)."""

    def page(
        self, scheme: str, segment: str, owner: str | None, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """(the page, the customer id to ask after for the next page; None: this was the last)."""
        ...

    def size_of(self, scheme: str, segment: str) -> int | None:
        """How many customers the segment held at its last count (None: never counted)."""
        ...


@functools.cache
def costs_per_contact(path: Path = COSTS_FILE) -> dict[str, Decimal]:
    return {channel: Decimal(cost) for channel, cost in json.loads(path.read_text())["per_contact"].items()}


def unknown_campaign(campaign_id: str) -> NotFound:
    return NotFound(
        f"no campaign {campaign_id} that you may see",
        fields=[FieldError("campaign_id", "unknown_campaign", "no such campaign in your scope")],
    )


def step_meta(campaign: Campaign, page: int) -> CommandMeta:
    """Who froze a page, and its cause: the page of the campaign (the completion is page 0)."""
    return CommandMeta(
        correlation_id=campaign.campaign_id,
        causation_id=str(uuid.uuid5(STEP_NAMESPACE, f"{campaign.campaign_id}:{page}")),
        actor=CAMPAIGN_LAUNCHER,
    )


def campaign_view(campaign: Campaign, frozen: Tally | None = None) -> dict[str, Any]:
    """``frozen``: the counts of the target frozen so far, while the launch runs."""
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "purpose": campaign.purpose,
        "products": campaign.products,
        "offer": campaign.offer,
        "target": campaign.target.as_dict(),
        "channels": list(campaign.channels),
        "start_date": campaign.start_date.isoformat(),
        "end_date": campaign.end_date.isoformat(),
        "budget": str(campaign.budget),
        "control_share": str(campaign.control_share),
        "daily_calls_per_agent": campaign.daily_calls_per_agent,
        "expected_annual_premium": None
        if campaign.expected_annual_premium is None
        else str(campaign.expected_annual_premium),
        "state": campaign.state,
        "launched_at": campaign.launched_at.isoformat() if campaign.launched_at else None,
        "launch_completed_at": campaign.launch_completed_at.isoformat()
        if campaign.launch_completed_at
        else None,
        "work_from": campaign.work_from.isoformat() if campaign.work_from else None,
        "work_until": campaign.work_until.isoformat() if campaign.work_until else None,
        "closed_on": campaign.closed_on.isoformat() if campaign.closed_on else None,
        # The frozen target so far (all of it once the launch completed).
        "frozen": campaign.frozen or (frozen or Tally()).as_dict(),
        "created_by": campaign.created_by,
        "created_at": campaign.created_on.isoformat(),
        "version": campaign.version,
    }


@dataclass
class Figures:
    """Outcomes of a set of members."""

    members: int = 0
    engaged: int = 0
    opened: int = 0
    won: int = 0
    converted: int = 0
    policies: int = 0
    premium_cents: int = 0

    def add(self, row: dict[str, Any]) -> None:
        self.members += int(row["members"])
        self.engaged += int(row["engaged"] or 0)
        self.opened += int(row["opened"] or 0)
        self.won += int(row["won"] or 0)
        self.converted += int(row["converted"] or 0)
        self.policies += int(row["policies"] or 0)
        self.premium_cents += int(row["premium"] or 0)


@dataclass
class Comparison:
    contacted: Figures
    control: Figures

    @classmethod
    def empty(cls) -> Comparison:
        return cls(Figures(), Figures())

    def add(self, row: dict[str, Any]) -> None:
        (self.control if row["grp"] == Group.CONTROL else self.contacted).add(row)

    def as_dict(self) -> dict[str, Any]:
        c, k = self.contacted, self.control
        return {
            "contacted": c.members,
            "responded": c.engaged,
            "opportunities_opened": c.opened,
            "opportunities_won": c.won,
            "customers_who_bought": c.converted,
            "policies_sold": c.policies,
            "premium_sold": yuan(c.premium_cents),
            "control": k.members,
            "control_who_bought": k.converted,
            "control_premium_sold": yuan(k.premium_cents),
            **uplift(c.converted, c.members, k.converted, k.members).as_dict(),
        }


class Campaigns(Planning):
    _teams_read_at: float = 0.0

    @functools.cached_property
    def campaigns(self) -> CampaignTables:
        return CampaignTables(self)

    @functools.cached_property
    def _teams(self) -> dict[str, str | None]:
        """Owners' teams as the launcher last read them (``_team_at_launch``)."""
        return {}

    def create_own_tables(self) -> None:
        super().create_own_tables()
        self.campaigns.create_tables()

    # Who may see which campaign --------------------------------------------------------------------

    def _owners_named(self, target: dict[str, Any]) -> list[str]:
        """The owners a target is narrowed to, as the sales force has them now: the agents named,
        and the agents and pool of each team named."""
        owners: list[str] = list(target.get("agent_ids") or ())
        for team_id in target.get("team_ids") or ():
            owners += [o for o in (*self.team_agents(team_id), pool_of(team_id)) if o not in owners]
        return owners

    def _may_run(self, caller: Caller, team_ids: Iterable[str], agent_ids: Iterable[str]) -> bool:
        """Marketing runs every campaign; a manager those narrowed to their own teams' agents."""
        if caller.sees_everything:
            return True
        if caller.role != Role.MANAGER:
            return False
        teams, agents = list(team_ids), list(agent_ids)
        if not teams and not agents:
            return False
        managed = self.teams_managed_by(caller.user_id)
        return set(teams) <= managed and all(may_act_on(caller, a, self) for a in agents)

    def campaign_in_scope(self, campaign_id: str, caller: Caller) -> Campaign:
        campaign = self.find(Campaign, campaign_id)
        if campaign is None or not self._may_run(caller, campaign.target.team_ids, campaign.target.agent_ids):
            raise unknown_campaign(campaign_id)
        return campaign

    # Commands -------------------------------------------------------------------------------------

    @command
    def create_campaign(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        caller = meta.actor
        caller.require_role(*RUNS_CAMPAIGNS)
        target = data["target"]
        for i, team_id in enumerate(target.get("team_ids") or ()):
            self.known_team(team_id, field=f"target.team_ids.{i}")
        for i, agent_id in enumerate(target.get("agent_ids") or ()):
            if self.find_agent(agent_id) is None:
                raise ValidationFailed.single(
                    f"target.agent_ids.{i}", "unknown_agent", f"the sales force has no agent {agent_id}"
                )
        if not self._may_run(caller, target.get("team_ids") or (), target.get("agent_ids") or ()):
            raise PermissionDenied(
                "a manager's campaign is for their own teams: name them (or their agents) in "
                "target.team_ids or target.agent_ids"
            )
        if data["end_date"] < self.today():
            raise ValidationFailed.single(
                "end_date", "past", f"the campaign would end before today ({self.today()})"
            )
        campaign = Campaign.create(data, meta)
        return Decision(campaign_view(campaign), (campaign,))

    @command
    def launch_campaign(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """Freezes the target and creates the work, in the background (``advance_launches``); a
        paused campaign goes on. Launching a launched campaign changes nothing."""
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        owners = self._owners_named(campaign.target.as_dict()) if campaign.target.by_owner else None
        changed = campaign.launch(owners, self.today(), meta)
        answer = campaign_view(campaign, self._frozen_so_far(campaign)) | {"already_launched": not changed}
        return Decision(
            answer,
            (campaign,) if changed else (),
            # Launched at the same moment by another command: the same answer as a second launch.
            explain_conflict=lambda: self._launched_already(campaign.campaign_id),
        )

    def _launched_already(self, campaign_id: str) -> Decision | None:
        campaign = self.find(Campaign, campaign_id)
        if campaign is None or campaign.state not in (CampaignState.LAUNCHING, CampaignState.RUNNING):
            return None
        return Decision(campaign_view(campaign, self._frozen_so_far(campaign)) | {"already_launched": True})

    @command
    def pause_campaign(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        changed = campaign.pause(data["reason"], meta)
        return Decision(campaign_view(campaign), (campaign,) if changed else ())

    @command
    def close_campaign(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        changed = campaign.close(data["reason"], self.today(), meta)
        return Decision(campaign_view(campaign), (campaign,) if changed else ())

    @command
    def record_campaign_response(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        caller = meta.actor
        caller.require_role(*REPORTS_RESPONSES)
        campaign_id, customer_id = str(data["campaign_id"]), str(data["customer_id"])
        member = self.find(CampaignMember, CampaignMember.id_for(campaign_id, customer_id))
        holder = self._owner_now(customer_id, member.owning_agent_id) if member else None
        # One answer for an unknown campaign, a customer not in it, and one outside the caller's
        # scope: nobody learns which campaigns or members exist by asking.
        if member is None or not may_act_on(caller, holder, self, also=(Role.SYSTEM,)):
            raise ValidationFailed.single(
                "customer_id", "not_in_campaign", f"customer {customer_id} is not in campaign {campaign_id}"
            )
        member.record_response(
            data["channel"], data["response"], data.get("message_id"), data.get("note"), meta
        )
        answer = {
            "campaign_id": campaign_id,
            "customer_id": customer_id,
            "channel": data["channel"],
            "response": data["response"],
            "responses": len(member.responses),
        }
        return Decision(answer, (member,))

    # The launch, a page at a time (the campaign launcher) -------------------------------------------

    def advance_launches(self, targets: TargetSource) -> int:
        """One page of every launch under way, oldest first; how many pages were recorded. A
        launch that fails (analytics refusing, a store error) is logged and left for the next
        round; the others go on."""
        self.campaigns.catch_up()
        recorded = 0
        for campaign_id in self.campaigns.in_state(CampaignState.LAUNCHING):
            campaign = self.find(Campaign, campaign_id)
            if campaign is None or campaign.state != CampaignState.LAUNCHING:
                continue
            try:
                recorded += self.advance_launch(campaign, targets)
            except Exception:
                log.exception("the launch of campaign %s failed a step; it is tried again", campaign_id)
        return recorded

    def advance_launch(self, campaign: Campaign, targets: TargetSource) -> bool:
        """Freezes the next page of the campaign's target, with its work and messages, in one
        append with the page. False if another launcher recorded that page first."""
        last = self.campaigns.last_page(campaign.campaign_id)
        number, before, position, done = (0, Tally(), Position(), False) if last is None else last
        meta = step_meta(campaign, number + 1)
        owners = campaign.owners
        if done or (owners is not None and position.owner_index >= len(owners)):
            # The last page was recorded, and not (yet) the completion.
            campaign.complete_launch(before, step_meta(campaign, 0))
            return self._save_step(campaign)
        owner = owners[position.owner_index] if owners is not None else None
        target = campaign.target
        rows, next_after = targets.page(target.scheme, target.segment, owner, position.after, PAGE_SIZE)
        facts = [TargetFacts.from_dict(row) for row in rows]
        known = self.campaigns.members_among(campaign.campaign_id, [f.customer_id for f in facts])
        counts = Tally()
        chosen: list[Chosen] = []
        for fact in facts:
            if fact.customer_id in known:  # a customer met again (moved between owners meanwhile)
                continue
            outcome = select(campaign.campaign_id, target, campaign.channels, campaign.control_share, fact)
            counts.count(outcome)
            if not isinstance(outcome, Exclusion):
                chosen.append(outcome)
        changed = self._freeze(campaign, chosen, meta)
        going_on = (
            Position(position.owner_index, next_after) if next_after else Position(position.owner_index + 1)
        )
        finished = next_after is None and (owners is None or going_on.owner_index >= len(owners))
        page = LaunchPage.record(campaign, number + 1, counts, before, going_on, finished, meta)
        if finished:
            campaign.complete_launch(page.totals, meta)
            changed.append(campaign)
        return self._save_step(page, *changed)

    def _save_step(self, *changed: CrmAggregate) -> bool:
        try:
            self.save(*changed)
        except IntegrityError:
            return False  # another launcher recorded this page (or the campaign changed): look again
        return True

    def _freeze(self, campaign: Campaign, chosen: list[Chosen], meta: CommandMeta) -> list[CrmAggregate]:
        """The members of a page, and for the contacted: a call in the owner's day and an
        opportunity (agent channels), and the messages (in the member's own events)."""
        owners = {c.facts.customer_id: self._owner_of(c) for c in chosen}
        due = self._calls_due(
            campaign, [c for c in chosen if c.group == Group.CONTACTED and c.agent_channel], owners
        )
        changed: list[CrmAggregate] = []
        for c in chosen:
            customer_id = c.facts.customer_id
            owner = owners[customer_id]
            activity_id = opportunity_id = None
            if customer_id in due:
                premium = campaign.expected_annual_premium
                assert premium is not None  # a campaign with an agent channel has one (Campaign.create)
                activity = self._campaign_call(campaign, c, owner, due[customer_id], meta)
                opportunity = Opportunity.open(
                    customer_id=customer_id,
                    customer_kind="existing" if c.facts.products_held else "prospect",
                    agent_id=owner,
                    product=campaign.products[0],
                    expected_annual_premium=premium,
                    source="campaign",
                    expected_close_date=campaign.work_until,
                    note=f"campaign {campaign.name}",
                    meta=meta,
                    opportunity_id=CampaignMember.opportunity_id_for(campaign.campaign_id, customer_id),
                )
                activity_id, opportunity_id = activity.id, opportunity.id
                changed += [activity, opportunity]
            changed.append(
                CampaignMember.select(
                    campaign, c, owner, self._team_at_launch(owner), activity_id, opportunity_id, meta
                )
            )
        return changed

    def _team_at_launch(self, owner: str) -> str | None:
        """The owner's team, for the results by team: what the sales force said within the last
        minute (a launch meets each of thousands of agents on many pages)."""
        now = monotonic()
        if now - self._teams_read_at > TEAMS_KEPT_SECONDS:
            self._teams.clear()
            self._teams_read_at = now
        if owner not in self._teams:
            self._teams[owner] = self.team_of(owner)
        return self._teams[owner]

    def _owner_of(self, chosen: Chosen) -> str:
        """The customer's owner: the newest owner change sales followed, else analytics' answer (an
        owner change it has not followed yet moves the work when it comes)."""
        return self._owner_now(chosen.facts.customer_id, chosen.facts.owning_agent_id) or (
            chosen.facts.owning_agent_id
        )

    def _calls_due(
        self, campaign: Campaign, calling: list[Chosen], owners: dict[str, str]
    ) -> dict[str, datetime]:
        """When each customer's call is planned: an owner's calls spread over the campaign's
        working days from today, at most ``daily_calls_per_agent`` of every campaign's calls a day
        (counting what their days hold already), from nine o'clock a half hour apart, never at a
        time already past (today's past half hours count as taken)."""
        if not calling:
            return {}
        assert campaign.work_from is not None and campaign.work_until is not None
        by_owner: dict[str, list[str]] = {}
        for c in calling:
            by_owner.setdefault(owners[c.facts.customer_id], []).append(c.facts.customer_id)
        now = self.now().astimezone(self.zone)
        today = now.date()
        first = min(max(campaign.work_from, today), campaign.work_until)
        passed = self._slots_passed(now) if first == today else 0
        held = self.campaigns.calls_per_day(list(by_owner), first, campaign.work_until)
        due: dict[str, datetime] = {}
        for owner, customers in by_owner.items():
            already = {day: n for (agent, day), n in held.items() if agent == owner}
            if passed:
                already[today] = max(already.get(today, 0), passed)
            taken = dict(already)
            days = spread(len(customers), first, campaign.work_until, campaign.daily_calls_per_agent, already)
            for customer_id, day in zip(customers, days, strict=True):
                slot = min(taken.get(day, 0), SLOTS_A_DAY - 1)  # the last half hour takes the rest
                taken[day] = taken.get(day, 0) + 1
                due[customer_id] = datetime.combine(day, CALLS_START, self.zone) + slot * CALL_LASTS
        return due

    @staticmethod
    def _slots_passed(now: datetime) -> int:
        """How many of the day's call slots (09:00 to 17:00, a half hour each) have begun by
        ``now`` (in the business's zone)."""
        begun = datetime.combine(now.date(), CALLS_START, now.tzinfo)
        if now < begun:
            return 0
        return min(SLOTS_A_DAY, int((now - begun) / CALL_LASTS) + 1)

    def _campaign_call(
        self, campaign: Campaign, chosen: Chosen, owner: str, start: datetime, meta: CommandMeta
    ) -> Activity:
        customer_id = chosen.facts.customer_id
        visit = chosen.agent_channel == "visit"
        key = CampaignMember.activity_key(campaign.campaign_id, customer_id)
        products = ", ".join(campaign.products)
        return Activity.plan(
            agent_id=owner,
            customer_id=customer_id,
            # A visit is arranged by phone first: the call is the work, the visit a later appointment.
            kind=ActivityKind.FOLLOW_UP if visit else ActivityKind.CALL,
            planned_start=start,
            planned_end=start + CALL_LASTS,
            purpose=f"Campaign '{campaign.name}' ({campaign.purpose}, {products}): {campaign.offer} "
            + ("Call to arrange a visit." if visit else "Call your customer."),
            source="campaign",
            source_key=key,
            meta=meta,
            activity_id=CampaignMember.activity_id_of(campaign.campaign_id, customer_id),
        )

    # Queries -------------------------------------------------------------------------------------

    def get_campaign(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        return campaign_view(campaign, self._frozen_so_far(campaign))

    def _frozen_so_far(self, campaign: Campaign) -> Tally | None:
        if campaign.frozen is not None or campaign.launched_at is None:
            return None
        self.campaigns.catch_up()
        last = self.campaigns.last_page(campaign.campaign_id)
        return last[1] if last else None

    def list_campaigns(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """The campaigns the caller runs, newest first. A manager's are those narrowed to their
        teams: the walk reads on until a page is full, so a page is short only at the end."""
        caller = meta.actor
        caller.require_role(*RUNS_CAMPAIGNS)
        self.campaigns.catch_up()
        limit = data["limit"]
        after: tuple[str, str] | None = None
        if data.get("cursor"):
            created_at, _, campaign_id = data["cursor"].partition("|")
            if not campaign_id:
                raise ValidationFailed.single(
                    "cursor", "format", "pass back the next_cursor of the last page"
                )
            after = (created_at, campaign_id)
        shown: list[dict[str, Any]] = []
        while len(shown) <= limit:
            rows = self.campaigns.page(data.get("state"), after, limit + 1)
            for row in rows:
                teams = [t for t in row["team_ids"].split(",") if t]
                agents = [a for a in row["agent_ids"].split(",") if a]
                if self._may_run(caller, teams, agents):
                    shown.append(
                        {
                            k: row[k]
                            for k in (
                                "campaign_id",
                                "name",
                                "purpose",
                                "state",
                                "created_at",
                                "start_date",
                                "end_date",
                                "created_by",
                            )
                        }
                    )
            if len(rows) <= limit:
                break
            after = (rows[-1]["created_at"], rows[-1]["campaign_id"])
        page = shown[:limit]
        return {
            "campaigns": page,
            "next_cursor": f"{page[-1]['created_at']}|{page[-1]['campaign_id']}"
            if len(shown) > limit
            else None,
        }

    def preview_campaign(
        self, data: dict[str, Any], meta: CommandMeta, targets: TargetSource
    ) -> dict[str, Any]:
        """How many customers the campaign would reach now, per channel, after the narrowing,
        consent and do-not-call, and how many the control group would hold back; and the spend.
        A target narrowed to owners is counted whole; a whole segment larger than
        ``PREVIEW_SAMPLE`` is counted on its first ``PREVIEW_SAMPLE`` customers (in customer id
        order: a random sample) and scaled to the segment's size (``exact`` false)."""
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        target = campaign.target
        owners: list[str | None] = list(self._owners_named(target.as_dict())) if target.by_owner else [None]
        tally = Tally()
        per_channel = {channel: 0 for channel in campaign.channels}
        seen: set[str] = set()  # a customer met twice (moved between two named owners meanwhile)
        sampled = 0
        exact = True
        for owner in owners:
            after: str | None = None
            while True:
                rows, after = targets.page(target.scheme, target.segment, owner, after, PAGE_SIZE)
                for row in rows:
                    fact = TargetFacts.from_dict(row)
                    if fact.customer_id in seen:
                        continue
                    if target.by_owner:
                        seen.add(fact.customer_id)
                    sampled += 1
                    outcome = select(
                        campaign.campaign_id, target, campaign.channels, campaign.control_share, fact
                    )
                    tally.count(outcome)
                    if isinstance(outcome, Chosen) and outcome.group == Group.CONTACTED:
                        for channel in outcome.channels:
                            per_channel[channel] += 1
                if after is None:
                    break
                if not target.by_owner and sampled >= PREVIEW_SAMPLE:
                    exact = False
                    break
        size = sampled
        if not exact:
            size = max(targets.size_of(target.scheme, target.segment) or sampled, sampled)
            scale = size / sampled
            tally = Tally(
                round(tally.contacted * scale),
                round(tally.control * scale),
                {reason: round(n * scale) for reason, n in tally.excluded.items()},
            )
            per_channel = {channel: round(n * scale) for channel, n in per_channel.items()}
        costs = costs_per_contact()
        spend = sum((costs[c] * n for c, n in per_channel.items()), Decimal("0"))
        return {
            "campaign_id": campaign.campaign_id,
            "as_of": self.now().isoformat(),
            **tally.as_dict(),
            "segment_customers": size,
            "exact": exact,
            "sampled": sampled,
            "reach_by_channel": per_channel,
            "estimated_spend": str(spend.quantize(Decimal("0.01"))),
            "budget": str(campaign.budget),
            "within_budget": spend <= campaign.budget,
        }

    def get_campaign_results(self, data: dict[str, Any], meta: CommandMeta) -> dict[str, Any]:
        """What the campaign brought: of the contacted and of the control group, who bought an
        offered product between the launch and the end (or the closing), the uplift with its 95%
        interval, the opportunities opened and won, the premium sold, the spend and the cost per
        policy won; overall, by channel, by team and by agent."""
        meta.actor.require_role(*RUNS_CAMPAIGNS)
        campaign = self.campaign_in_scope(str(data["campaign_id"]), meta.actor)
        if campaign.launched_at is None:
            raise ValidationFailed.single(
                "campaign_id", "not_launched", "the campaign has not been launched: preview it instead"
            )
        self.work.catch_up()
        self.campaigns.catch_up()
        until = datetime.combine(campaign.measured_until() + timedelta(days=1), time.min, self.zone)
        groups = self.campaigns.outcome_groups(
            campaign.campaign_id, campaign.products, campaign.launched_at, until
        )
        overall = Comparison.empty()
        by_team: dict[str | None, Comparison] = {}
        by_agent: dict[str, Comparison] = {}
        team_of_agent: dict[str, str | None] = {}
        by_channel: dict[str, Figures] = {c: Figures() for c in campaign.channels}
        for row in groups:
            overall.add(row)
            by_team.setdefault(row["team_id"], Comparison.empty()).add(row)
            by_agent.setdefault(row["owning_agent_id"], Comparison.empty()).add(row)
            team_of_agent[row["owning_agent_id"]] = row["team_id"]
            if row["grp"] == Group.CONTACTED:
                for channel in row["channels"].split(","):
                    by_channel.setdefault(channel, Figures()).add(row)
        responses: dict[str, dict[str, int]] = {}
        for r in self.campaigns.responses_by_channel(campaign.campaign_id):
            responses.setdefault(r["channel"], {})[r["response"]] = int(r["n"])
        engaged = self.campaigns.engaged_by_channel(campaign.campaign_id)
        costs = costs_per_contact()
        spent = sum((costs.get(c, Decimal(0)) * f.members for c, f in by_channel.items()), Decimal("0"))
        won = overall.contacted.policies
        team_filter = data.get("team_id")
        agents = sorted(
            # The team at the launch, as the by-team figures count it.
            (a for a in by_agent if team_filter is None or team_of_agent[a] == team_filter),
            key=lambda a: (-by_agent[a].contacted.members, a),
        )[: data["agent_limit"]]
        return {
            "campaign_id": campaign.campaign_id,
            "name": campaign.name,
            "state": campaign.state,
            "measured_from": campaign.launched_at.isoformat(),
            "measured_until": campaign.measured_until().isoformat(),
            "frozen": campaign.frozen or (self._frozen_so_far(campaign) or Tally()).as_dict(),
            "overall": overall.as_dict(),
            "spend": {
                "budget": str(campaign.budget),
                "spent": str(spent.quantize(Decimal("0.01"))),
                "policies_won": won,
                "cost_per_policy_won": None if (cost := cost_per_policy(spent, won)) is None else str(cost),
            },
            "by_channel": [
                {
                    "channel": channel,
                    "reached": f.members,
                    # Customers who engaged on this channel (the other figures count the customers
                    # reached on it, whichever channel they answered on).
                    "responded": engaged.get(channel, 0),
                    "responses": responses.get(channel, {}),
                    "opportunities_opened": f.opened,
                    "opportunities_won": f.won,
                    "customers_who_bought": f.converted,
                    "premium_sold": yuan(f.premium_cents),
                }
                for channel, f in by_channel.items()
            ],
            "by_team": [
                {"team_id": team, **c.as_dict()}
                for team, c in sorted(by_team.items(), key=lambda item: str(item[0]))
            ],
            "by_agent": [{"agent_id": a, **by_agent[a].as_dict()} for a in agents],
        }
