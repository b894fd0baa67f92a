"""Campaigns: an offer taken to a segment of customers through their own agents and through
messages, measured against a control group.

A ``Campaign`` is drafted, launched, maybe paused and resumed, and closed. Launching freezes its
target a page at a time (``LaunchPage``): each page's customers become ``CampaignMember``s (the
snapshot, kept: a later change of segment does not move it), with the work and the messages they
get, in the same atomic append as the page itself, so a launch killed anywhere resumes from the
last page recorded and selects nobody twice. Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState, ValidationFailed
from services.sales.domain.activity import follow_up_id
from services.sales.domain.campaign_rules import (
    AGENT_CHANNELS,
    MESSAGE_CHANNELS,
    Reachable,
    channels_reaching,
    in_control,
)

CAMPAIGN_NAMESPACE = uuid.UUID("4c7e1a93-2d58-4b06-9f31-8a5e0c2d7b64")
MEMBER_NAMESPACE = uuid.UUID("e9b2d461-7c03-4f8a-b5e9-1d6a3f0c8e27")
MESSAGE_NAMESPACE = uuid.UUID("71a5c3e8-0b94-4d2f-8e67-c3f1a9d5b040")
CAMPAIGN_OPPORTUNITY_NAMESPACE = uuid.UUID("2f9d6b70-e381-4a5c-9d14-b07e5c3a1f86")
PAGE_NAMESPACE = uuid.UUID("b8e4f2a1-6d39-4c07-a5b1-9e2c7d0f4a53")


class CampaignState(StrEnum):
    DRAFT = "draft"
    LAUNCHING = "launching"  # its target is being frozen, a page at a time
    RUNNING = "running"
    PAUSED = "paused"
    CLOSED = "closed"


class Group(StrEnum):
    CONTACTED = "contacted"
    CONTROL = "control"


class Exclusion(StrEnum):
    """Why a customer of the target's segment is not in the frozen target."""

    OUTSIDE_NARROWING = "outside_narrowing"  # not in the provinces, or the products held, asked for
    NO_CONSENT = "no_consent"  # no marketing consent in force on any of the campaign's channels
    DO_NOT_CALL = "do_not_call"  # would be reached only by an agent, and asked not to be called
    ERASED = "erased"
    MERGED = "merged"


@dataclass(frozen=True)
class Target:
    scheme: str
    segment: str
    agent_ids: tuple[str, ...] = ()
    team_ids: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    holding: tuple[str, ...] = ()
    not_holding: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(
            scheme=data["scheme"],
            segment=data["segment"],
            **{
                name: tuple(data.get(name) or ())
                for name in ("agent_ids", "team_ids", "regions", "holding", "not_holding")
            },
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def by_owner(self) -> bool:
        """Narrowed to some owners (named agents or teams): walked one owner at a time."""
        return bool(self.agent_ids or self.team_ids)


@dataclass(frozen=True)
class TargetFacts:
    """What the read models say of one customer of the target's segment."""

    customer_id: str
    owning_agent_id: str
    region: str | None
    products_held: frozenset[str]
    reachable: Reachable

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetFacts:
        return cls(
            customer_id=str(data["customer_id"]),
            owning_agent_id=data["owning_agent_id"],
            region=data.get("region"),
            products_held=frozenset(data.get("products_held") or ()),
            reachable=Reachable(
                consents={
                    f"{channel}_marketing": {"status": "granted"}
                    for channel, granted in (data.get("marketing_consents") or {}).items()
                    if granted
                },
                do_not_call=bool(data.get("do_not_call")),
                erased=bool(data.get("erased")),
                merged=bool(data.get("merged")),
            ),
        )


def normalised_region(name: str | None) -> str:
    return (name or "").strip().casefold()


@dataclass(frozen=True)
class Chosen:
    facts: TargetFacts
    group: Group
    channels: tuple[str, ...]

    @property
    def agent_channel(self) -> str | None:
        """The agent's channel the customer gets, a call before a visit."""
        return next((c for c in AGENT_CHANNELS if c in self.channels), None)

    @property
    def message_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if c in MESSAGE_CHANNELS)


def select(
    campaign_id: str, target: Target, channels: tuple[str, ...], control_share: Decimal, facts: TargetFacts
) -> Chosen | Exclusion:
    """Whether a customer of the segment is in the frozen target, and how: the narrowing by
    province and products held first; then the channels that may carry the campaign to them
    (marketing consent per channel; do-not-call closes the agent's channels; erased and merged
    customers never; of an agent's call and visit, the call); then the control draw among those
    who can be reached, so that the control group and the contacted are alike but for the
    contact."""
    if target.regions and normalised_region(facts.region) not in {
        normalised_region(r) for r in target.regions
    }:
        return Exclusion.OUTSIDE_NARROWING
    if target.holding and not facts.products_held & set(target.holding):
        return Exclusion.OUTSIDE_NARROWING
    if facts.products_held & set(target.not_holding):
        return Exclusion.OUTSIDE_NARROWING
    if facts.reachable.erased:
        return Exclusion.ERASED
    if facts.reachable.merged:
        return Exclusion.MERGED
    reaching = channels_reaching(facts.reachable, channels)
    if not reaching:
        if facts.reachable.do_not_call and channels_reaching(Reachable(facts.reachable.consents), channels):
            return Exclusion.DO_NOT_CALL
        return Exclusion.NO_CONSENT
    if "agent_call" in reaching:  # the agent makes one contact: a call (a visit is arranged on it)
        reaching = tuple(c for c in reaching if c != "visit")
    group = Group.CONTROL if in_control(campaign_id, facts.customer_id, control_share) else Group.CONTACTED
    return Chosen(facts, group, reaching)


@dataclass
class Tally:
    """What a page (or the whole launch so far) selected and left out."""

    contacted: int = 0
    control: int = 0
    excluded: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: Chosen | Exclusion) -> None:
        if isinstance(outcome, Exclusion):
            self.excluded[outcome.value] = self.excluded.get(outcome.value, 0) + 1
        elif outcome.group == Group.CONTROL:
            self.control += 1
        else:
            self.contacted += 1

    def add(self, other: Tally) -> None:
        self.contacted += other.contacted
        self.control += other.control
        for reason, n in other.excluded.items():
            self.excluded[reason] = self.excluded.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {"contacted": self.contacted, "control": self.control, "excluded": dict(self.excluded)}


class Campaign(CrmAggregate):
    class Created(CrmAggregate.Created):
        EVENT_TYPE = "sales.campaign_created"
        campaign_id: str
        name: str
        purpose: str
        products: list[str]
        offer: str
        target: dict[str, Any]
        channels: list[str]
        start_date: date
        end_date: date
        budget: Decimal
        control_share: Decimal
        daily_calls_per_agent: int
        expected_annual_premium: Decimal | None

    class Launched(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_launched"
        campaign_id: str
        owners: list[str] | None
        work_from: date
        work_until: date

        def apply(self, campaign: Campaign) -> None:
            campaign.state = CampaignState.LAUNCHING.value
            campaign.owners = self.owners
            campaign.work_from = self.work_from
            campaign.work_until = self.work_until
            campaign.launched_at = self.timestamp

    class LaunchCompleted(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_launch_completed"
        campaign_id: str
        contacted: int
        control: int
        excluded: dict[str, int]

        def apply(self, campaign: Campaign) -> None:
            campaign.state = CampaignState.RUNNING.value
            campaign.launch_completed_at = self.timestamp
            campaign.frozen = {
                "contacted": self.contacted,
                "control": self.control,
                "excluded": self.excluded,
            }

    class Paused(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_paused"
        campaign_id: str
        reason: str

        def apply(self, campaign: Campaign) -> None:
            campaign.state = CampaignState.PAUSED.value

    class Resumed(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_resumed"
        campaign_id: str
        # Running again, or launching again where the launch had not completed.
        state: str

        def apply(self, campaign: Campaign) -> None:
            campaign.state = self.state

    class Closed(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_closed"
        campaign_id: str
        reason: str
        closed_on: date

        def apply(self, campaign: Campaign) -> None:
            campaign.state = CampaignState.CLOSED.value
            campaign.closed_on = self.closed_on

    def __init__(
        self,
        campaign_id: str,
        name: str,
        purpose: str,
        products: list[str],
        offer: str,
        target: dict[str, Any],
        channels: list[str],
        start_date: date,
        end_date: date,
        budget: Decimal,
        control_share: Decimal,
        daily_calls_per_agent: int,
        expected_annual_premium: Decimal | None,
        meta: dict[str, Any],
    ) -> None:
        self.campaign_id = campaign_id
        self.created_by = str(meta["actor"]["user_id"])
        self.name = name
        self.purpose = purpose
        self.products = list(products)
        self.offer = offer
        self.target = Target.from_dict(target)
        self.channels = tuple(channels)
        self.start_date = start_date
        self.end_date = end_date
        self.budget = budget
        self.control_share = control_share
        self.daily_calls_per_agent = daily_calls_per_agent
        self.expected_annual_premium = expected_annual_premium
        self.state = CampaignState.DRAFT.value
        self.owners: list[str] | None = None
        self.work_from: date | None = None
        self.work_until: date | None = None
        self.launched_at: datetime | None = None
        self.launch_completed_at: datetime | None = None
        self.closed_on: date | None = None
        # The frozen target's counts, once the launch completed (``LaunchPage`` has them before).
        self.frozen: dict[str, Any] | None = None

    @classmethod
    def create(cls, data: dict[str, Any], meta: CommandMeta) -> Campaign:
        channels = list(data["channels"])
        if set(channels) & set(AGENT_CHANNELS) and not data.get("expected_annual_premium"):
            raise ValidationFailed.single(
                "expected_annual_premium",
                "required",
                "an agent channel opens opportunities: give their premium",
            )
        if data["end_date"] < data["start_date"]:
            raise ValidationFailed.single("end_date", "after_start", "a campaign ends on or after its start")
        campaign_id = meta.derived_id(CAMPAIGN_NAMESPACE)
        return cls._create(
            cls.Created,
            id=campaign_id,
            meta=meta.as_event_meta(),
            campaign_id=str(campaign_id),
            name=data["name"],
            purpose=data["purpose"],
            products=list(data["products"]),
            offer=data["offer"],
            target=Target.from_dict(data["target"]).as_dict(),
            channels=channels,
            start_date=data["start_date"],
            end_date=data["end_date"],
            budget=data["budget"],
            control_share=data["control_share"],
            daily_calls_per_agent=data["daily_calls_per_agent"],
            expected_annual_premium=data.get("expected_annual_premium"),
        )

    # The launch -------------------------------------------------------------------------------

    @property
    def launched(self) -> bool:
        return self.launched_at is not None

    def launch(self, owners: list[str] | None, today: date, meta: CommandMeta) -> bool:
        """Starts freezing the target (a draft), or resumes a paused campaign. False if it is
        launching or running already: launching twice changes nothing."""
        state = CampaignState(self.state)
        if state in (CampaignState.LAUNCHING, CampaignState.RUNNING):
            return False
        if state == CampaignState.CLOSED:
            raise InvalidState(f"campaign {self.campaign_id} is closed: create a new one")
        if state == CampaignState.PAUSED:
            done = self.launch_completed_at is not None
            self.trigger_event(
                self.Resumed,
                meta=meta.as_event_meta(),
                campaign_id=self.campaign_id,
                state=(CampaignState.RUNNING if done else CampaignState.LAUNCHING).value,
            )
            return True
        if today > self.end_date:
            raise InvalidState(
                f"campaign {self.campaign_id} ended on {self.end_date}: give it a later end date in a new one"
            )
        self.trigger_event(
            self.Launched,
            meta=meta.as_event_meta(),
            campaign_id=self.campaign_id,
            owners=owners,
            work_from=max(self.start_date, today),
            work_until=self.end_date,
        )
        return True

    def complete_launch(self, frozen: Tally, meta: CommandMeta) -> None:
        """The whole target is frozen (``frozen``: its counts, from the last page)."""
        if self.state != CampaignState.LAUNCHING.value:
            raise InvalidState(f"campaign {self.campaign_id} is {self.state}, not launching")
        self.trigger_event(
            self.LaunchCompleted,
            meta=meta.as_event_meta(),
            campaign_id=self.campaign_id,
            **frozen.as_dict(),
        )

    # Pausing and closing ------------------------------------------------------------------------

    def pause(self, reason: str, meta: CommandMeta) -> bool:
        """Stops freezing the target and creating work until launched again. False if paused
        already."""
        state = CampaignState(self.state)
        if state == CampaignState.PAUSED:
            return False
        if state not in (CampaignState.LAUNCHING, CampaignState.RUNNING):
            raise InvalidState(f"campaign {self.campaign_id} is {state}: only a launched campaign pauses")
        self.trigger_event(
            self.Paused, meta=meta.as_event_meta(), campaign_id=self.campaign_id, reason=reason
        )
        return True

    def close(self, reason: str, today: date, meta: CommandMeta) -> bool:
        """Ends the campaign: nothing more is selected or sent, and its results are counted up to
        today (or its end date, if that came first). False if closed already."""
        if self.state == CampaignState.CLOSED.value:
            return False
        self.trigger_event(
            self.Closed,
            meta=meta.as_event_meta(),
            campaign_id=self.campaign_id,
            reason=reason,
            closed_on=min(today, self.end_date),
        )
        return True

    def measured_until(self) -> date:
        """The last day whose sales count for the campaign."""
        return self.closed_on or self.end_date


@dataclass(frozen=True)
class Position:
    """Where a launch goes on: the owner walked (an index into the campaign's owners; 0 for a
    whole segment) and the last customer frozen of that walk (None: from its start)."""

    owner_index: int = 0
    after: str | None = None


class LaunchPage(CrmAggregate):
    """One page of a campaign's target frozen: its counts, the counts so far, and where the launch
    goes on. A page is an aggregate of its own, its id derived from the campaign and its number, so
    that two launchers freezing the same page collide on its creation (one append wins), and the
    campaign does not grow an event per page (a launch of millions has thousands of pages)."""

    class Recorded(CrmAggregate.Created):
        EVENT_TYPE = "sales.campaign_launch_progressed"
        PRIVATE = frozenset({"owner_index", "after"})
        campaign_id: str
        page: int
        contacted: int
        control: int
        excluded: dict[str, int]
        contacted_total: int
        control_total: int
        excluded_total: dict[str, int]
        # Whether the target is all frozen with this page.
        last: bool
        owner_index: int
        after: str | None

    def __init__(
        self,
        campaign_id: str,
        page: int,
        contacted_total: int,
        control_total: int,
        excluded_total: dict[str, int],
        last: bool,
        owner_index: int,
        after: str | None,
    ) -> None:
        self.campaign_id = campaign_id
        self.page = page
        self.totals = Tally(contacted_total, control_total, dict(excluded_total))
        self.last = last
        self.position = Position(owner_index, after)

    @staticmethod
    def id_for(campaign_id: str, page: int) -> uuid.UUID:
        return uuid.uuid5(PAGE_NAMESPACE, f"{campaign_id}:{page}")

    @classmethod
    def record(
        cls,
        campaign: Campaign,
        page: int,
        counts: Tally,
        before: Tally,
        next_position: Position,
        last: bool,
        meta: CommandMeta,
    ) -> LaunchPage:
        if campaign.state != CampaignState.LAUNCHING.value:
            raise InvalidState(f"campaign {campaign.campaign_id} is {campaign.state}, not launching")
        totals = Tally(before.contacted, before.control, dict(before.excluded))
        totals.add(counts)
        return cls._create(
            cls.Recorded,
            id=cls.id_for(campaign.campaign_id, page),
            meta=meta.as_event_meta(),
            campaign_id=campaign.campaign_id,
            page=page,
            contacted=counts.contacted,
            control=counts.control,
            excluded=dict(counts.excluded),
            contacted_total=totals.contacted,
            control_total=totals.control,
            excluded_total=dict(totals.excluded),
            last=last,
            owner_index=next_position.owner_index,
            after=next_position.after,
        )


class CampaignMember(CrmAggregate):
    """One customer of a campaign's frozen target: how they were to be reached, what was sent,
    and what came back."""

    class Selected(CrmAggregate.Created):
        EVENT_TYPE = "sales.campaign_member_selected"
        campaign_id: str
        campaign_name: str
        purpose: str
        customer_id: str
        owning_agent_id: str
        team_id: str | None
        group: str
        channels: list[str]
        activity_id: str | None
        opportunity_id: str | None

    class MessageRequested(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_message_requested"
        campaign_id: str
        customer_id: str
        message_id: str
        channel: str
        purpose: str
        products: list[str]
        offer: str

        def apply(self, member: CampaignMember) -> None:
            member.messages[self.channel] = self.message_id

    class ResponseRecorded(CrmAggregate.Event):
        EVENT_TYPE = "sales.campaign_response_recorded"
        # What the customer said stays in sales.
        PRIVATE = frozenset({"note"})
        campaign_id: str
        customer_id: str
        channel: str
        response: str
        message_id: str | None
        note: str | None

        def apply(self, member: CampaignMember) -> None:
            member.responses.append({"channel": self.channel, "response": self.response})

    def __init__(
        self,
        campaign_id: str,
        campaign_name: str,
        purpose: str,
        customer_id: str,
        owning_agent_id: str,
        team_id: str | None,
        group: str,
        channels: list[str],
        activity_id: str | None,
        opportunity_id: str | None,
    ) -> None:
        self.campaign_id = campaign_id
        self.campaign_name = campaign_name
        self.purpose = purpose
        self.customer_id = customer_id
        self.owning_agent_id = owning_agent_id
        self.team_id = team_id
        self.group = group
        self.channels = list(channels)
        self.activity_id = activity_id
        self.opportunity_id = opportunity_id
        self.messages: dict[str, str] = {}
        self.responses: list[dict[str, str]] = []

    @staticmethod
    def id_for(campaign_id: str, customer_id: str) -> uuid.UUID:
        return uuid.uuid5(MEMBER_NAMESPACE, f"{campaign_id}:{customer_id}")

    @staticmethod
    def activity_key(campaign_id: str, customer_id: str) -> str:
        """The follow-up key of the call a campaign puts in the owner's day for a customer."""
        return f"{campaign_id}:{customer_id}"

    @staticmethod
    def activity_id_of(campaign_id: str, customer_id: str) -> uuid.UUID:
        return follow_up_id("campaign", CampaignMember.activity_key(campaign_id, customer_id))

    @staticmethod
    def opportunity_id_for(campaign_id: str, customer_id: str) -> uuid.UUID:
        return uuid.uuid5(CAMPAIGN_OPPORTUNITY_NAMESPACE, f"{campaign_id}:{customer_id}")

    @classmethod
    def select(
        cls,
        campaign: Campaign,
        chosen: Chosen,
        owner: str,
        team_id: str | None,
        activity_id: uuid.UUID | None,
        opportunity_id: uuid.UUID | None,
        meta: CommandMeta,
    ) -> CampaignMember:
        customer_id = chosen.facts.customer_id
        member = cls._create(
            cls.Selected,
            id=cls.id_for(campaign.campaign_id, customer_id),
            meta=meta.as_event_meta(),
            campaign_id=campaign.campaign_id,
            campaign_name=campaign.name,
            purpose=campaign.purpose,
            customer_id=customer_id,
            owning_agent_id=owner,
            team_id=team_id,
            group=chosen.group.value,
            channels=list(chosen.channels),
            activity_id=str(activity_id) if activity_id else None,
            opportunity_id=str(opportunity_id) if opportunity_id else None,
        )
        if chosen.group == Group.CONTACTED:
            for channel in chosen.message_channels:
                member.trigger_event(
                    cls.MessageRequested,
                    meta=meta.as_event_meta(),
                    campaign_id=campaign.campaign_id,
                    customer_id=customer_id,
                    message_id=str(uuid.uuid5(MESSAGE_NAMESPACE, f"{member.id}:{channel}")),
                    channel=channel,
                    purpose=campaign.purpose,
                    products=list(campaign.products),
                    offer=campaign.offer,
                )
        return member

    def record_response(
        self, channel: str, response: str, message_id: str | None, note: str | None, meta: CommandMeta
    ) -> None:
        if self.group != Group.CONTACTED.value:
            raise ValidationFailed.single(
                "customer_id",
                "control_group",
                "this customer is in the campaign's control group: never contacted",
            )
        if channel not in self.channels:
            raise ValidationFailed.single(
                "channel",
                "not_used",
                f"the campaign reached this customer by {', '.join(self.channels)}, not {channel}",
            )
        if message_id is not None and self.messages.get(channel) != message_id:
            raise ValidationFailed.single(
                "message_id", "unknown_message", f"no {channel} message {message_id} went to this customer"
            )
        self.trigger_event(
            self.ResponseRecorded,
            meta=meta.as_event_meta(),
            campaign_id=self.campaign_id,
            customer_id=self.customer_id,
            channel=channel,
            response=response,
            message_id=message_id or self.messages.get(channel),
            note=note,
        )
