"""Field types shared by event and RPC schemas."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import fields, validate

from contracts.validators import not_blank, rule, validate_national_id

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MOBILE_PHONE_PATTERN = r"^(\+86)?1[3-9][0-9]{9}$"
PRODUCTS = ("life", "health", "auto", "property")
# Where a ticket or a compliment comes in.
CHANNELS = ("phone", "email", "web", "sms", "messaging", "in_person", "letter")
PRIORITIES = ("urgent", "ordinary")
# The segment schemes analytics keeps, and the segments of each (an RFM segment is the code of its
# three quintiles, "111" to "555").
SEGMENTS: dict[str, tuple[str, ...]] = {
    "value_tier": ("vip", "important", "general", "low_value", "potential"),
    "lifecycle": ("prospect", "new", "active", "loyal", "at_risk", "lapsed", "lost"),
    "value_churn": (
        "stable_high_value",
        "high_value_at_risk",
        "stable_low_value",
        "low_value_at_risk",
        "no_value",
    ),
    "rfm_watch": ("watch",),
    "rfm": tuple(f"{r}{f}{m}" for r in "12345" for f in "12345" for m in "12345"),
    # Segments defined after the fact ('crm segment define'): each definition's name is a segment.
    "defined": (),
}
COMPLAINT_CATEGORIES = (
    "claims",
    "billing",
    "policy_service",
    "sales_practice",
    "agent_conduct",
    "product",
    "other",
)
# The service desk.
TICKET_KINDS = ("inquiry", "service_request", "complaint")
TICKET_STATES = ("open", "in_progress", "awaiting_customer", "resolved", "closed")
UNRESOLVED_TICKET_STATES = TICKET_STATES[:3]
# Why a ticket closed: confirmed by the customer, closed as settled by the desk, closed by itself
# when the customer did not confirm in time, or closed unresolved.
CLOSE_REASONS = ("confirmed", "resolved", "auto_closed", "withdrawn", "duplicate")
SLA_STATES = ("on_track", "warned", "breached", "paused")
CATEGORY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
POLICY_STATUSES = ("active", "lapsed", "cancelled", "expired")

# Selling and the agent's day.
OPPORTUNITY_STAGES = ("new", "contacted", "needs_analysis", "proposal", "negotiation", "won", "lost")
OPPORTUNITY_SOURCES = ("referral", "campaign", "walk_in", "renewal", "cross_sell", "churn_follow_up")
LOST_REASONS = ("price", "chose_competitor", "no_need", "no_response", "not_eligible", "timing", "other")
CUSTOMER_KINDS = ("existing", "prospect")
CANCELLATION_REASONS = (
    "customer_request",
    "cooling_off",
    "replaced",
    "non_payment",
    "non_disclosure",
    "fraud",
    "death_of_insured",
    "other",
)
CLAIM_STATUSES = ("reported", "under_review", "approved", "rejected", "paid")
ACTIVITY_KINDS = ("call", "visit", "meeting", "follow_up", "paperwork")
ACTIVITY_STATES = ("planned", "done", "cancelled")
ACTIVITY_OUTCOMES = (
    "done",
    "reached",
    "no_answer",
    "callback_requested",
    "interested",
    "not_interested",
    "sold",
)
# Where an activity came from: the agent's own plan, their manager, or work another part of the
# company asks for (``plan_follow_up`` takes the last four).
ACTIVITY_SOURCES = ("agent", "manager", "churn_warning", "campaign", "service_desk", "renewal")
FOLLOW_UP_SOURCES = ACTIVITY_SOURCES[2:]

# Campaigns: what a campaign is for, how it reaches people, and what comes back from them.
CAMPAIGN_PURPOSES = ("retention", "cross_sell", "renewal", "win_back")
# An agent's call or visit (work in the owning agent's day), or a message a gateway sends.
CAMPAIGN_CHANNELS = ("agent_call", "visit", "sms", "email", "post")
CAMPAIGN_RESPONSES = ("delivered", "replied", "opted_out", "clicked", "converted")
CAMPAIGN_STATES = ("draft", "launching", "running", "paused", "closed")
# A target customer is contacted, or held back as the control group (never contacted).
CAMPAIGN_GROUPS = ("contacted", "control")

# The customer record: ways to reach a person, and what they agreed to be contacted for.
CONTACT_KINDS = ("phone", "email", "postal_address", "messaging")
MESSAGING_SERVICES = ("wechat", "qq", "whatsapp", "line", "telegram", "other")
CONTACT_CHANNELS = ("phone", "sms", "email", "post", "messaging")
CONSENT_PURPOSES = ("service", "marketing")
CONSENT_STATUSES = ("granted", "withdrawn")
# "campaign": withdrawn by answering a campaign with an opt-out (its reference names the campaign).
CONSENT_SOURCES = ("form", "call_recording", "web", "campaign")
# A PRC mobile, a PRC landline with its area code, or an international number in E.164.
PHONE_PATTERN = r"^(\+86)?1[3-9][0-9]{9}$|^0[1-9][0-9]{1,2}-?[0-9]{7,8}$|^\+(?!86)[1-9][0-9]{6,14}$"


# What an operator does to the platform from the ops dashboard (identity records it for the audit).
OPERATOR_ACTIONS = ("rebuild_started", "dead_letter_requeued", "dead_letter_discarded")


def text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(min=1, max=max_length, error="length: must be 1 to {max} characters"),
            not_blank,
        ],
        **kwargs,
    )


def uuid_field(**kwargs: Any) -> fields.UUID:
    return fields.UUID(**kwargs)


def agent_id(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            AGENT_ID_PATTERN,
            error="format: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        **kwargs,
    )


def code(**kwargs: Any) -> fields.String:
    """An identifier chosen by people (a team id, a user id): the agent id format."""
    return fields.String(
        validate=validate.Regexp(
            AGENT_ID_PATTERN,
            error="format: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        **kwargs,
    )


SUCCESSOR_KINDS = ("agent", "round_robin", "pool")


def national_id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate_national_id, **kwargs)


def mobile_phone(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            MOBILE_PHONE_PATTERN, error="format: an 11-digit PRC mobile number, optionally +86"
        ),
        **kwargs,
    )


def phone(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            PHONE_PATTERN,
            error="format: a PRC mobile (13912345678), a landline with its area code "
            "(010-12345678) or an international number (+442071234567)",
        ),
        **kwargs,
    )


def one_of(choices: tuple[str, ...], **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(choices, error="one_of: must be one of {choices}"), **kwargs)


def _cents(amount: Decimal) -> bool:
    try:
        return amount == amount.quantize(Decimal("0.01"))
    except InvalidOperation:  # too large to have cents: the range rule reports it
        return False


def money(**kwargs: Any) -> fields.Decimal:
    """A positive amount in yuan with at most two decimals, carried as a string."""
    return fields.Decimal(
        as_string=True,
        validate=[
            validate.Range(min=0, min_inclusive=False, error="positive: must be greater than 0"),
            validate.Range(max=10**12, error="range: must be at most {max}"),
            rule("precision", _cents, "at most two decimal places"),
        ],
        **kwargs,
    )
