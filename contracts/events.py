"""Event envelope and payload schemas. Every message on the ``crm.events`` exchange is an envelope
(version ``ENVELOPE_VERSION``) whose ``payload`` follows the schema registered for its
``(event_type, schema_version)``."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from contracts import fields as f
from contracts.rpc import Address

ENVELOPE_VERSION = 1
EVENTS_EXCHANGE = "crm.events"


class Actor(Schema):
    user_id = fields.String(required=True)
    role = fields.String(required=True)
    agent_id = fields.String(load_default=None, allow_none=True)


class Envelope(Schema):
    envelope_version = fields.Integer(required=True, validate=validate.Equal(ENVELOPE_VERSION))
    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+\.[a-z_]+$"))
    schema_version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True)
    context = fields.String(required=True)
    aggregate_type = fields.String(required=True)
    aggregate_id = fields.UUID(required=True)
    aggregate_version = fields.Integer(required=True, validate=validate.Range(min=1))
    global_position = fields.Integer(required=True, validate=validate.Range(min=1))
    correlation_id = fields.String(required=True)
    causation_id = fields.String(load_default=None, allow_none=True)
    actor = fields.Nested(Actor, required=True)
    payload = fields.Dict(required=True)


class CustomerRegisteredV1(Schema):
    """Personal data (every field but the ids) is null when the event is read after the customer
    was erased (a replay): consumers must forget it on ``customer.erased`` as well."""

    customer_id = fields.UUID(required=True)
    full_name = fields.String(required=True, allow_none=True)
    national_id = f.national_id(required=True, allow_none=True)
    mobile_phone = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)
    date_of_birth = fields.Date(required=True, allow_none=True)
    address = fields.Nested(Address, required=True, allow_none=True)
    owning_agent_id = f.agent_id(required=True)


class ProfileChanges(Schema):
    full_name = fields.String()
    mobile_phone = fields.String()
    email = fields.String(allow_none=True)
    address = fields.Nested(Address)
    date_of_birth = fields.Date()


class CustomerProfileUpdatedV1(Schema):
    customer_id = fields.UUID(required=True)
    # Null when read after the customer was erased.
    changes = fields.Nested(ProfileChanges, required=True, allow_none=True)
    reason = fields.String(required=True)


class CustomerOwnerChangedV1(Schema):
    customer_id = fields.UUID(required=True)
    previous_agent_id = f.agent_id(required=True)
    new_agent_id = f.agent_id(required=True)
    reason = fields.String(required=True)
    transfer_id = fields.UUID(required=True, allow_none=True)


class ContactPointAddedV1(Schema):
    customer_id = fields.UUID(required=True)
    contact_point_id = fields.UUID(required=True)
    kind = f.one_of(f.CONTACT_KINDS, required=True)
    # Label and value are null when read after the customer was erased.
    label = fields.String(required=True, allow_none=True)
    # A string for a phone or an email, an address object for a postal address, {service, handle}
    # for a messaging id.
    value = fields.Raw(required=True, allow_none=True)
    preferred = fields.Boolean(required=True)


class ContactPointRemovedV1(Schema):
    customer_id = fields.UUID(required=True)
    contact_point_id = fields.UUID(required=True)
    kind = f.one_of(f.CONTACT_KINDS, required=True)
    was_preferred = fields.Boolean(required=True)
    reason = fields.String(required=True)


class TimeWindowV1(Schema):
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)


class ContactPreferencesSetV1(Schema):
    customer_id = fields.UUID(required=True)
    preferred_channel = f.one_of(f.CONTACT_CHANNELS, required=True, allow_none=True)
    best_time_to_call = fields.Nested(TimeWindowV1, required=True, allow_none=True)
    do_not_call = fields.Boolean(required=True)
    changed = fields.List(fields.String(), required=True)
    reason = fields.String(required=True)


class ConsentSourceV1(Schema):
    kind = f.one_of(f.CONSENT_SOURCES, required=True)
    reference = fields.String(required=True)


class ConsentInForceV1(Schema):
    """The consent in force for the channel and purpose once this one is recorded."""

    status = f.one_of(f.CONSENT_STATUSES, required=True)
    given_at = fields.AwareDateTime(required=True)


class ConsentRecordedV1(Schema):
    customer_id = fields.UUID(required=True)
    channel = f.one_of(f.CONTACT_CHANNELS, required=True)
    purpose = f.one_of(f.CONSENT_PURPOSES, required=True)
    status = f.one_of(f.CONSENT_STATUSES, required=True)
    source = fields.Nested(ConsentSourceV1, required=True)
    given_at = fields.AwareDateTime(required=True)
    in_force = fields.Nested(ConsentInForceV1, required=True)


class CustomerMergedV1(Schema):
    """The customer (a duplicate) was merged into the survivor; its id takes no more commands."""

    customer_id = fields.UUID(required=True)
    survivor_id = fields.UUID(required=True)
    reason = fields.String(required=True)


class CustomerDuplicateMergedV1(Schema):
    """The survivor's side of a merge."""

    customer_id = fields.UUID(required=True)
    duplicate_id = fields.UUID(required=True)
    reason = fields.String(required=True)


class CustomerErasedV1(Schema):
    """The customer's personal data is erased: every consumer must delete what it holds of it
    (name, national id, phones, emails, addresses, contact points); facts such as policies and
    tickets may stay."""

    customer_id = fields.UUID(required=True)
    reason = fields.String(required=True)
    request_reference = fields.String(required=True)


class PolicySoldV1(Schema):
    policy_number = fields.String(required=True)
    customer_id = fields.UUID(required=True)
    product = f.one_of(f.PRODUCTS, required=True)
    annual_premium = f.money(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    term_years = fields.Integer(required=True, strict=True)
    agent_id = f.agent_id(required=True)


class ComplaintOpenedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    category = f.one_of(f.COMPLAINT_CATEGORIES, required=True)
    priority = f.one_of(f.PRIORITIES, required=True)
    description = fields.String(required=True)
    sla_deadline = fields.AwareDateTime(required=True)


class ComplaintClosedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    resolution = fields.String(required=True)
    satisfaction = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    closed_within_sla = fields.Boolean(required=True)


# The service desk (version 2 of it: tickets). complaint_opened and complaint_closed are no longer
# emitted; they stay readable for histories that hold them.


class _OnTicketV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)


def _user(**kwargs: Any) -> fields.String:
    return f.code(required=True, allow_none=True, **kwargs)


class TicketOpenedV1(_OnTicketV1):
    """``owning_agent_id``: the customer's owner when the ticket opened, to be told of it."""

    owning_agent_id = f.agent_id(required=True)
    kind = f.one_of(f.TICKET_KINDS, required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    category = fields.String(required=True, validate=validate.Regexp(f.CATEGORY_PATTERN))
    priority = f.one_of(f.PRIORITIES, required=True)
    queue_id = f.code(required=True)
    subject = fields.String(required=True)
    description = fields.String(required=True)
    sla_target_hours = fields.Integer(required=True, strict=True)
    warning_share = fields.Float(required=True)
    sla_deadline = fields.AwareDateTime(required=True)
    sla_warning_at = fields.AwareDateTime(required=True)


class TicketAssignedV1(_OnTicketV1):
    queue_id = f.code(required=True)
    assignee_user_id = _user()
    previous_queue_id = f.code(required=True)
    previous_assignee_user_id = _user()
    state = f.one_of(f.TICKET_STATES, required=True)


class TicketNoteAddedV1(_OnTicketV1):
    """The note's text stays with the desk (``get_ticket``)."""

    note_id = fields.UUID(required=True)
    author_user_id = fields.String(required=True)


class TicketAwaitingCustomerV1(_OnTicketV1):
    """The SLA clock stands still from here until the customer answers (what was asked stays with
    the desk)."""

    sla_remaining_seconds = fields.Integer(required=True, strict=True)


class _ClockRunsV1(_OnTicketV1):
    state = f.one_of(f.TICKET_STATES, required=True)
    sla_deadline = fields.AwareDateTime(required=True)
    sla_warning_at = fields.AwareDateTime(required=True, allow_none=True)


class TicketCustomerRepliedV1(_ClockRunsV1):
    """The customer answered (what they said stays with the desk): the clock runs again."""


class TicketReopenedV1(_ClockRunsV1):
    kind = f.one_of(f.TICKET_KINDS, required=True)
    reason = fields.String(required=True)
    previous_state = f.one_of(("resolved", "closed"), required=True)


class TicketEscalatedV1(_OnTicketV1):
    level = fields.Integer(required=True, strict=True, validate=validate.Range(1, 3))
    previous_level = fields.Integer(required=True, strict=True, validate=validate.Range(0, 2))
    reason = fields.String(required=True)
    escalated_to_user_id = _user()
    queue_id = f.code(required=True)
    on_breach = fields.Boolean(required=True)


class _TicketEndV1(_OnTicketV1):
    kind = f.one_of(f.TICKET_KINDS, required=True)
    queue_id = f.code(required=True)
    assignee_user_id = _user()


class TicketResolvedV1(_TicketEndV1):
    resolution = fields.String(required=True)
    within_sla = fields.Boolean(required=True)
    auto_close_at = fields.AwareDateTime(required=True)


class TicketClosedV1(_TicketEndV1):
    reason = f.one_of(f.CLOSE_REASONS, required=True)
    resolution = fields.String(required=True, allow_none=True)
    closed_within_sla = fields.Boolean(required=True)
    satisfaction = fields.Integer(required=True, allow_none=True, strict=True, validate=validate.Range(1, 5))
    call_back_id = fields.UUID(required=True, allow_none=True)


class SlaWarningV1(_OnTicketV1):
    """Three quarters of the ticket's window are gone: the assignee (or the queue) is told."""

    queue_id = f.code(required=True)
    assignee_user_id = _user()
    due_at = fields.AwareDateTime(required=True)
    sla_deadline = fields.AwareDateTime(required=True)


class SlaBreachedV1(_OnTicketV1):
    """The deadline passed unresolved; a ``ticket_escalated`` to the queue's lead follows."""

    kind = f.one_of(f.TICKET_KINDS, required=True)
    priority = f.one_of(f.PRIORITIES, required=True)
    queue_id = f.code(required=True)
    assignee_user_id = _user()
    sla_deadline = fields.AwareDateTime(required=True)


class CallBackScheduledV1(_OnTicketV1):
    call_back_id = fields.UUID(required=True)
    queue_id = f.code(required=True)
    assignee_user_id = _user()
    due_at = fields.AwareDateTime(required=True)
    survey_set_id = fields.String(required=True)


class CallBackMadeV1(_OnTicketV1):
    call_back_id = fields.UUID(required=True)
    queue_id = f.code(required=True)
    made_by_user_id = fields.String(required=True)
    reached = fields.Boolean(required=True)
    satisfied = fields.Boolean(required=True, allow_none=True)


class SurveyAnswerV1(Schema):
    question_id = fields.String(required=True)
    score = fields.Integer(required=True, allow_none=True, strict=True, validate=validate.Range(1, 5))
    text = fields.String(required=True, allow_none=True)


class SurveyAnsweredV1(_OnTicketV1):
    call_back_id = fields.UUID(required=True)
    queue_id = f.code(required=True)
    survey_set_id = fields.String(required=True)
    answers = fields.List(fields.Nested(SurveyAnswerV1), required=True)
    average_score = fields.Float(required=True, allow_none=True)
    recorded_by_user_id = fields.String(required=True)


class FeedbackRecordedV1(Schema):
    """Praise or a suggestion; what the customer wrote stays with the desk."""

    feedback_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    about_agent_id = f.agent_id(required=True, allow_none=True)
    about_user_id = _user()
    ticket_id = fields.UUID(required=True, allow_none=True)
    # The queue of that ticket, else null.
    queue_id = f.code(required=True, allow_none=True)
    recorded_by_user_id = fields.String(required=True)


class TeamCreatedV1(Schema):
    team_id = f.code(required=True)
    name = fields.String(required=True)
    branch = fields.String(required=True)
    manager_user_id = f.code(required=True, allow_none=True)


class TeamManagerAppointedV1(Schema):
    team_id = f.code(required=True)
    manager_user_id = f.code(required=True)
    previous_manager_user_id = f.code(required=True, allow_none=True)
    reason = fields.String(required=True)


class AgentRegisteredV1(Schema):
    agent_id = f.agent_id(required=True)
    name = fields.String(required=True)
    team_id = f.code(required=True)
    hired_on = fields.Date(required=True)


class AgentMovedV1(Schema):
    agent_id = f.agent_id(required=True)
    from_team_id = f.code(required=True)
    to_team_id = f.code(required=True)
    reason = fields.String(required=True)


class SuccessorV1(Schema):
    kind = f.one_of(f.SUCCESSOR_KINDS, required=True)
    agent_id = f.agent_id(required=True, allow_none=True)
    team_id = f.code(required=True, allow_none=True)


class AgentDepartedV1(Schema):
    agent_id = f.agent_id(required=True)
    team_id = f.code(required=True)
    departed_on = fields.Date(required=True)
    reason = fields.String(required=True)
    successor = fields.Nested(SuccessorV1, required=True)
    successors = fields.List(f.agent_id(), required=True, validate=validate.Length(min=1))


class BookTransferStartedV1(Schema):
    transfer_id = fields.UUID(required=True)
    from_agent_id = f.agent_id(required=True)
    successors = fields.List(f.agent_id(), required=True, validate=validate.Length(min=1))
    successor_rule = fields.Nested(SuccessorV1, required=True)
    reason = fields.String(required=True)
    departure_event_id = fields.UUID(required=True, allow_none=True)


class BookTransferProgressedV1(Schema):
    transfer_id = fields.UUID(required=True)
    moved = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    moved_total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class BookTransferCompletedV1(Schema):
    transfer_id = fields.UUID(required=True)
    moved_total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class BookTransferUndoStartedV1(Schema):
    transfer_id = fields.UUID(required=True)
    reason = fields.String(required=True)


class BookTransferUndoProgressedV1(Schema):
    transfer_id = fields.UUID(required=True)
    moved_back = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    left_where_they_are = fields.List(fields.UUID(), required=True)
    cursor = fields.String(required=True)


class BookTransferUndoneV1(Schema):
    transfer_id = fields.UUID(required=True)
    moved_back_total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    left_total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


# Selling and the agent's day ----------------------------------------------------------------------


def _probability(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, validate=validate.Range(min=0, max=1), **kwargs)


class OpportunityOpenedV1(Schema):
    opportunity_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    customer_kind = f.one_of(f.CUSTOMER_KINDS, required=True)
    agent_id = f.agent_id(required=True)
    product = f.one_of(f.PRODUCTS, required=True)
    expected_annual_premium = f.money(required=True)
    source = f.one_of(f.OPPORTUNITY_SOURCES, required=True)
    stage = f.one_of(f.OPPORTUNITY_STAGES, required=True)
    probability = _probability(required=True)
    expected_close_date = fields.Date(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True)


class OpportunityMovedV1(Schema):
    opportunity_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    agent_id = f.agent_id(required=True)
    from_stage = f.one_of(f.OPPORTUNITY_STAGES, required=True)
    to_stage = f.one_of(f.OPPORTUNITY_STAGES, required=True)
    probability = _probability(required=True)
    lost_reason = f.one_of(f.LOST_REASONS, required=True, allow_none=True)
    policy_number = fields.String(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True)


class OpportunityReassignedV1(Schema):
    opportunity_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    from_agent_id = f.agent_id(required=True)
    to_agent_id = f.agent_id(required=True)
    reason = fields.String(required=True)
    owner_version = fields.Integer(required=True, strict=True)


class QuoteIssuedV1(Schema):
    quote_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    agent_id = f.agent_id(required=True)
    product = f.one_of(f.PRODUCTS, required=True)
    sum_insured = f.money(required=True)
    term_years = fields.Integer(required=True, strict=True)
    start_date = fields.Date(required=True)
    age = fields.Integer(required=True, strict=True)
    age_band = fields.String(required=True)
    rate_per_thousand = fields.Decimal(as_string=True, required=True)
    annual_premium = f.money(required=True)
    catalogue_version = fields.String(required=True)
    issued_on = fields.Date(required=True)
    valid_until = fields.Date(required=True)


class QuoteAcceptedV1(Schema):
    quote_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    policy_number = fields.String(required=True)


class _PolicyEvent(Schema):
    policy_number = fields.String(required=True)
    customer_id = fields.UUID(required=True)


class PolicyRenewedV1(_PolicyEvent):
    previous_end_date = fields.Date(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    term_years = fields.Integer(required=True, strict=True)
    annual_premium = f.money(required=True)
    quote_id = fields.UUID(required=True, allow_none=True)


class PremiumPaidV1(_PolicyEvent):
    payment_id = fields.String(required=True)
    amount = f.money(required=True)
    due_date = fields.Date(required=True)
    paid_on = fields.Date(required=True)
    days_late = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class PolicyLapsedV1(_PolicyEvent):
    missed_due_date = fields.Date(required=True)
    lapsed_on = fields.Date(required=True)


class PolicyReinstatedV1(_PolicyEvent):
    lapsed_on = fields.Date(required=True)
    reinstated_on = fields.Date(required=True)
    reason = fields.String(required=True)


class PolicyCancelledV1(_PolicyEvent):
    previous_status = f.one_of(f.POLICY_STATUSES, required=True)
    cancelled_on = fields.Date(required=True)
    reason = f.one_of(f.CANCELLATION_REASONS, required=True)
    note = fields.String(required=True, allow_none=True)


class ClaimRecordedV1(_PolicyEvent):
    claim_id = fields.String(required=True)
    loss_date = fields.Date(required=True)
    amount_claimed = f.money(required=True)
    status = f.one_of(f.CLAIM_STATUSES, required=True)
    amount_paid = f.money(required=True, allow_none=True)


class ClaimUpdatedV1(_PolicyEvent):
    claim_id = fields.String(required=True)
    previous_status = f.one_of(f.CLAIM_STATUSES, required=True)
    status = f.one_of(f.CLAIM_STATUSES, required=True)
    amount_paid = f.money(required=True, allow_none=True)


class _ActivityEvent(Schema):
    activity_id = fields.UUID(required=True)
    # None for an activity about no customer (a team meeting, paperwork).
    customer_id = fields.UUID(required=True, allow_none=True)


class ActivityPlannedV1(_ActivityEvent):
    agent_id = f.agent_id(required=True)
    kind = f.one_of(f.ACTIVITY_KINDS, required=True)
    planned_start = fields.AwareDateTime(required=True)
    planned_end = fields.AwareDateTime(required=True)
    purpose = fields.String(required=True)
    source = f.one_of(f.ACTIVITY_SOURCES, required=True)
    source_key = fields.String(required=True, allow_none=True)


class ActivityRescheduledV1(_ActivityEvent):
    agent_id = f.agent_id(required=True)
    previous_start = fields.AwareDateTime(required=True)
    previous_end = fields.AwareDateTime(required=True)
    planned_start = fields.AwareDateTime(required=True)
    planned_end = fields.AwareDateTime(required=True)
    reason = fields.String(required=True)


class ActivityCompletedV1(_ActivityEvent):
    agent_id = f.agent_id(required=True)
    kind = f.one_of(f.ACTIVITY_KINDS, required=True)
    outcome = f.one_of(f.ACTIVITY_OUTCOMES, required=True)
    notes = fields.String(required=True, allow_none=True)
    next_step = fields.String(required=True, allow_none=True)
    completed_at = fields.AwareDateTime(required=True)


class ActivityCancelledV1(_ActivityEvent):
    agent_id = f.agent_id(required=True)
    reason = fields.String(required=True)


class ActivityReassignedV1(_ActivityEvent):
    from_agent_id = f.agent_id(required=True)
    to_agent_id = f.agent_id(required=True)
    reason = fields.String(required=True)
    owner_version = fields.Integer(required=True, strict=True)


class CampaignTargetV1(Schema):
    scheme = fields.String(required=True)
    segment = fields.String(required=True)
    agent_ids = fields.List(fields.String(), required=True)
    team_ids = fields.List(fields.String(), required=True)
    regions = fields.List(fields.String(), required=True)
    holding = fields.List(fields.String(), required=True)
    not_holding = fields.List(fields.String(), required=True)


class CampaignCreatedV1(Schema):
    campaign_id = fields.UUID(required=True)
    name = fields.String(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(f.CAMPAIGN_PURPOSES))
    products = fields.List(fields.String(validate=validate.OneOf(f.PRODUCTS)), required=True)
    offer = fields.String(required=True)
    target = fields.Nested(CampaignTargetV1, required=True)
    channels = fields.List(fields.String(validate=validate.OneOf(f.CAMPAIGN_CHANNELS)), required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    budget = fields.Decimal(required=True, as_string=True)
    control_share = fields.Decimal(required=True, as_string=True)
    daily_calls_per_agent = fields.Integer(required=True, strict=True)
    expected_annual_premium = fields.Decimal(required=True, allow_none=True, as_string=True)


class CampaignLaunchedV1(Schema):
    """The target is being frozen from now: page by page, ``campaign_launch_progressed``."""

    campaign_id = fields.UUID(required=True)
    # The owners whose customers the target is narrowed to (null: every owner), as the sales force
    # had them at the launch.
    owners = fields.List(fields.String(), required=True, allow_none=True)
    # The days the agents' calls are spread over.
    work_from = fields.Date(required=True)
    work_until = fields.Date(required=True)


class CampaignLaunchProgressedV1(Schema):
    """A page of the target frozen (numbered from 1), and the counts of the whole launch so far."""

    campaign_id = fields.UUID(required=True)
    page = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    contacted = fields.Integer(required=True, strict=True)
    control = fields.Integer(required=True, strict=True)
    # Why target customers were left out: outside the narrowing, no consent, do-not-call, erased...
    excluded = fields.Dict(keys=fields.String(), values=fields.Integer(strict=True), required=True)
    contacted_total = fields.Integer(required=True, strict=True)
    control_total = fields.Integer(required=True, strict=True)
    excluded_total = fields.Dict(keys=fields.String(), values=fields.Integer(strict=True), required=True)
    last = fields.Boolean(required=True)


class CampaignLaunchCompletedV1(Schema):
    campaign_id = fields.UUID(required=True)
    contacted = fields.Integer(required=True, strict=True)
    control = fields.Integer(required=True, strict=True)
    excluded = fields.Dict(keys=fields.String(), values=fields.Integer(strict=True), required=True)


class CampaignPausedV1(Schema):
    campaign_id = fields.UUID(required=True)
    reason = fields.String(required=True)


class CampaignResumedV1(Schema):
    campaign_id = fields.UUID(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("launching", "running")))


class CampaignClosedV1(Schema):
    campaign_id = fields.UUID(required=True)
    reason = fields.String(required=True)
    closed_on = fields.Date(required=True)


class CampaignMemberSelectedV1(Schema):
    """A customer of the frozen target: contacted on ``channels``, or held back in the control
    group (never contacted; there to measure the effect against)."""

    campaign_id = fields.UUID(required=True)
    campaign_name = fields.String(required=True)
    purpose = fields.String(required=True)
    customer_id = fields.UUID(required=True)
    owning_agent_id = f.agent_id(required=True)
    team_id = fields.String(required=True, allow_none=True)
    group = fields.String(required=True, validate=validate.OneOf(f.CAMPAIGN_GROUPS))
    channels = fields.List(fields.String(validate=validate.OneOf(f.CAMPAIGN_CHANNELS)), required=True)
    # The call in the owner's day and the opportunity opened, for an agent channel.
    activity_id = fields.UUID(required=True, allow_none=True)
    opportunity_id = fields.UUID(required=True, allow_none=True)


class CampaignMessageRequestedV1(Schema):
    """For the channel gateway (sms, email, post): send the campaign's offer to the customer. The
    gateway reports back with ``record_campaign_response`` naming ``message_id``."""

    campaign_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    message_id = fields.UUID(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(("sms", "email", "post")))
    purpose = fields.String(required=True)
    products = fields.List(fields.String(), required=True)
    offer = fields.String(required=True)


class CampaignResponseRecordedV1(Schema):
    campaign_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(f.CAMPAIGN_CHANNELS))
    response = fields.String(required=True, validate=validate.OneOf(f.CAMPAIGN_RESPONSES))
    message_id = fields.UUID(required=True, allow_none=True)


class AccountCreatedV1(Schema):
    user_id = fields.String(required=True)
    display_name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("person", "service")))
    role = fields.String(required=True)
    agent_id = fields.String(required=True, allow_none=True)
    scopes = fields.List(fields.String(), required=True)
    must_change_password = fields.Boolean(required=True)


class _RevokesTokensV1(Schema):
    user_id = fields.String(required=True)
    # Wall-clock seconds since the epoch: tokens issued before are refused from now on.
    tokens_issued_before = fields.Float(required=True)


class AccountRoleChangedV1(_RevokesTokensV1):
    role = fields.String(required=True)
    agent_id = fields.String(required=True, allow_none=True)
    reason = fields.String(required=True)


class AccountDisabledV1(_RevokesTokensV1):
    reason = fields.String(required=True)


class AccountEnabledV1(Schema):
    user_id = fields.String(required=True)
    reason = fields.String(required=True)


class PasswordResetV1(_RevokesTokensV1):
    pass


class ClientSecretRotatedV1(_RevokesTokensV1):
    pass


class AccountScopesChangedV1(_RevokesTokensV1):
    scopes = fields.List(fields.String(), required=True)


class PasswordChangedV1(Schema):
    user_id = fields.String(required=True)


class SignedInV1(Schema):
    user_id = fields.String(required=True)
    kind = fields.String(required=True)
    session_id = fields.String(required=True, allow_none=True)


class SignInFailedV1(Schema):
    """A wrong password for an account (or any password while it is locked or disabled)."""

    user_id = fields.String(required=True)
    failures = fields.Integer(required=True, strict=True)
    locked_until = fields.Float(required=True, allow_none=True)


class SignInRefusedV1(Schema):
    """A sign-in no account could be charged with, the id keyed-hashed (it may be a mistyped
    password): ``reason`` is ``unknown_account`` (a person's user id no account has) or
    ``client_credentials_refused`` (an internal system's client id or secret wrong, or its account
    disabled)."""

    attempted_user_hash = fields.String(required=True)
    reason = fields.String(required=True)


class OperatorActionRecordedV1(Schema):
    """An operator's action on the platform (from the ops dashboard): a read model's rebuild
    started, a dead letter requeued or discarded; who took it is the event's actor."""

    action = fields.String(required=True, validate=validate.OneOf(f.OPERATOR_ACTIONS))
    target = fields.String(required=True)
    outcome = fields.String(required=True)


class SessionEndedV1(_RevokesTokensV1):
    session_id = fields.String(required=True)
    reason = fields.String(required=True)


# The payload fields that are personal data. Once ``customer.erased`` is published for a customer,
# the history of the write side answers these as null, and every consumer that keeps events must
# forget them too.
class ChurnReasonV1(Schema):
    rule = fields.String(required=True)
    weight = fields.Integer(required=True, strict=True)
    reason = fields.String(required=True)


class ChurnRiskRaisedV1(Schema):
    """A customer's churn score reached the warning line: the owning agent should act."""

    customer_id = fields.UUID(required=True)
    owning_agent_id = f.agent_id(required=True, allow_none=True)
    score = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100))
    reasons = fields.List(fields.Nested(ChurnReasonV1), required=True)
    assessed_at = fields.AwareDateTime(required=True)


class ChurnRiskClearedV1(Schema):
    """A customer at risk recovered: their score fell below the clearing line."""

    customer_id = fields.UUID(required=True)
    owning_agent_id = f.agent_id(required=True, allow_none=True)
    score = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100))
    assessed_at = fields.AwareDateTime(required=True)


PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customer.registered": ("full_name", "national_id", "mobile_phone", "email", "date_of_birth", "address"),
    "customer.profile_updated": ("changes",),
    "customer.contact_point_added": ("label", "value"),
}

PAYLOAD_SCHEMAS: dict[tuple[str, int], type[Schema]] = {
    ("customer.book_transfer_started", 1): BookTransferStartedV1,
    ("customer.book_transfer_progressed", 1): BookTransferProgressedV1,
    ("customer.book_transfer_completed", 1): BookTransferCompletedV1,
    ("customer.book_transfer_undo_started", 1): BookTransferUndoStartedV1,
    ("customer.book_transfer_undo_progressed", 1): BookTransferUndoProgressedV1,
    ("customer.book_transfer_undone", 1): BookTransferUndoneV1,
    ("sales.team_created", 1): TeamCreatedV1,
    ("sales.team_manager_appointed", 1): TeamManagerAppointedV1,
    ("sales.agent_registered", 1): AgentRegisteredV1,
    ("sales.agent_moved", 1): AgentMovedV1,
    ("sales.agent_departed", 1): AgentDepartedV1,
    ("customer.registered", 1): CustomerRegisteredV1,
    ("customer.owner_changed", 1): CustomerOwnerChangedV1,
    ("customer.profile_updated", 1): CustomerProfileUpdatedV1,
    ("customer.contact_point_added", 1): ContactPointAddedV1,
    ("customer.contact_point_removed", 1): ContactPointRemovedV1,
    ("customer.contact_preferences_set", 1): ContactPreferencesSetV1,
    ("customer.consent_recorded", 1): ConsentRecordedV1,
    ("customer.merged", 1): CustomerMergedV1,
    ("customer.duplicate_merged", 1): CustomerDuplicateMergedV1,
    ("customer.erased", 1): CustomerErasedV1,
    ("sales.policy_sold", 1): PolicySoldV1,
    ("service_desk.complaint_opened", 1): ComplaintOpenedV1,
    ("service_desk.complaint_closed", 1): ComplaintClosedV1,
    ("service_desk.ticket_opened", 1): TicketOpenedV1,
    ("service_desk.ticket_assigned", 1): TicketAssignedV1,
    ("service_desk.ticket_note_added", 1): TicketNoteAddedV1,
    ("service_desk.ticket_awaiting_customer", 1): TicketAwaitingCustomerV1,
    ("service_desk.ticket_customer_replied", 1): TicketCustomerRepliedV1,
    ("service_desk.ticket_escalated", 1): TicketEscalatedV1,
    ("service_desk.ticket_resolved", 1): TicketResolvedV1,
    ("service_desk.ticket_closed", 1): TicketClosedV1,
    ("service_desk.ticket_reopened", 1): TicketReopenedV1,
    ("service_desk.sla_warning", 1): SlaWarningV1,
    ("service_desk.sla_breached", 1): SlaBreachedV1,
    ("service_desk.call_back_scheduled", 1): CallBackScheduledV1,
    ("service_desk.call_back_made", 1): CallBackMadeV1,
    ("service_desk.survey_answered", 1): SurveyAnsweredV1,
    ("service_desk.praise_recorded", 1): FeedbackRecordedV1,
    ("service_desk.suggestion_recorded", 1): FeedbackRecordedV1,
    ("analytics.churn_risk_raised", 1): ChurnRiskRaisedV1,
    ("analytics.churn_risk_cleared", 1): ChurnRiskClearedV1,
    ("sales.opportunity_opened", 1): OpportunityOpenedV1,
    ("sales.opportunity_moved", 1): OpportunityMovedV1,
    ("sales.opportunity_reassigned", 1): OpportunityReassignedV1,
    ("sales.quote_issued", 1): QuoteIssuedV1,
    ("sales.quote_accepted", 1): QuoteAcceptedV1,
    ("sales.policy_renewed", 1): PolicyRenewedV1,
    ("sales.premium_paid", 1): PremiumPaidV1,
    ("sales.policy_lapsed", 1): PolicyLapsedV1,
    ("sales.policy_reinstated", 1): PolicyReinstatedV1,
    ("sales.policy_cancelled", 1): PolicyCancelledV1,
    ("sales.claim_recorded", 1): ClaimRecordedV1,
    ("sales.claim_updated", 1): ClaimUpdatedV1,
    ("sales.activity_planned", 1): ActivityPlannedV1,
    ("sales.activity_rescheduled", 1): ActivityRescheduledV1,
    ("sales.activity_completed", 1): ActivityCompletedV1,
    ("sales.activity_cancelled", 1): ActivityCancelledV1,
    ("sales.activity_reassigned", 1): ActivityReassignedV1,
    ("sales.campaign_created", 1): CampaignCreatedV1,
    ("sales.campaign_launched", 1): CampaignLaunchedV1,
    ("sales.campaign_launch_progressed", 1): CampaignLaunchProgressedV1,
    ("sales.campaign_launch_completed", 1): CampaignLaunchCompletedV1,
    ("sales.campaign_paused", 1): CampaignPausedV1,
    ("sales.campaign_resumed", 1): CampaignResumedV1,
    ("sales.campaign_closed", 1): CampaignClosedV1,
    ("sales.campaign_member_selected", 1): CampaignMemberSelectedV1,
    ("sales.campaign_message_requested", 1): CampaignMessageRequestedV1,
    ("sales.campaign_response_recorded", 1): CampaignResponseRecordedV1,
    ("identity.account_created", 1): AccountCreatedV1,
    ("identity.account_role_changed", 1): AccountRoleChangedV1,
    ("identity.account_disabled", 1): AccountDisabledV1,
    ("identity.account_enabled", 1): AccountEnabledV1,
    ("identity.password_reset", 1): PasswordResetV1,
    ("identity.password_changed", 1): PasswordChangedV1,
    ("identity.account_scopes_changed", 1): AccountScopesChangedV1,
    ("identity.client_secret_rotated", 1): ClientSecretRotatedV1,
    ("identity.signed_in", 1): SignedInV1,
    ("identity.sign_in_failed", 1): SignInFailedV1,
    ("identity.sign_in_refused", 1): SignInRefusedV1,
    ("identity.session_ended", 1): SessionEndedV1,
    ("identity.operator_action_recorded", 1): OperatorActionRecordedV1,
}


# Built once: a marshmallow schema costs more to build than to validate with.
_ENVELOPE = Envelope()
_PAYLOADS: dict[tuple[str, int], Schema] = {key: schema() for key, schema in PAYLOAD_SCHEMAS.items()}


def validate_message(message: dict[str, Any]) -> dict[str, Any]:
    """Validate a published message against the envelope and its payload schema. Returns the
    errors keyed by field (``payload.<name>`` for payload fields); empty when valid."""
    if not isinstance(message, dict):
        return {"_schema": [f"type: a message must be a JSON object, not {type(message).__name__}"]}
    errors: dict[str, Any] = dict(_ENVELOPE.validate(message))
    key = (message.get("event_type"), message.get("schema_version"))
    schema = _PAYLOADS.get(key)  # type: ignore[arg-type]
    if schema is None:
        errors["event_type"] = [f"unknown_event_type: no schema for {key[0]} v{key[1]}"]
    elif isinstance(message.get("payload"), dict):
        for name, problems in schema.validate(message["payload"]).items():
            errors[f"payload.{name}"] = problems
    return errors


def parse_message(message: dict[str, Any]) -> dict[str, Any]:
    """The message as given, after checking it; raises ValidationError naming the bad fields."""
    errors = validate_message(message)
    if errors:
        raise ValidationError(errors)
    return message
