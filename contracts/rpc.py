"""RPC request payload schemas, version 1. Unknown fields are refused so that a typo is an error,
not a silently ignored value."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from contracts import fields as f
from contracts.validators import national_id_birth_date, normalise_national_id, rule


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Address(Strict):
    line1 = f.text(200, required=True)
    line2 = f.text(200, load_default=None, allow_none=True)
    city = f.text(100, required=True)
    province = f.text(100, required=True)
    postal_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error="format: six digits"),
    )
    country = fields.String(
        load_default="CN",
        validate=validate.Regexp(r"^[A-Z]{2}$", error="format: ISO 3166 alpha-2 code"),
    )


def _plausible_birth_date(value: date) -> bool:
    return date(1900, 1, 1) <= value <= date.today()


class RegisterCustomer(Strict):
    full_name = f.text(200, required=True)
    national_id = f.national_id(required=True)
    mobile_phone = f.mobile_phone(required=True)
    email = fields.Email(load_default=None, allow_none=True)
    date_of_birth = fields.Date(
        required=True,
        validate=rule("range", _plausible_birth_date, "must be between 1900-01-01 and today"),
    )
    address = fields.Nested(Address, required=True)
    owning_agent_id = f.agent_id(required=True)

    @validates_schema
    def birth_date_matches_national_id(self, data: dict[str, Any], **_: Any) -> None:
        national_id = normalise_national_id(data["national_id"])
        if national_id_birth_date(national_id) != data["date_of_birth"]:
            raise ValidationError(
                "matches_national_id: must equal the birth date encoded in the national id",
                field_name="date_of_birth",
            )


class GetCustomer(Strict):
    customer_id = f.uuid_field(required=True)


class ReassignCustomer(Strict):
    customer_id = f.uuid_field(required=True)
    new_agent_id = f.agent_id(required=True)
    reason = f.text(1000, required=True)


class TransferBook(Strict):
    from_agent_id = f.agent_id(required=True)
    successor = fields.Nested("Successor", required=True)
    reason = f.text(1000, required=True)


class GetBookTransfer(Strict):
    """By ``transfer_id``, or the latest transfer of ``from_agent_id``'s book."""

    transfer_id = f.uuid_field(load_default=None)
    from_agent_id = f.agent_id(load_default=None)

    @validates_schema
    def _one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("transfer_id") is None) == (data.get("from_agent_id") is None):
            raise ValidationError("one_of: give transfer_id or from_agent_id, not both", "transfer_id")


class UndoBookTransfer(Strict):
    transfer_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)


class ListCustomers(Strict):
    owning_agent_id = f.agent_id(required=True)
    page_size = fields.Integer(
        load_default=100, strict=True, validate=validate.Range(1, 500, error="range: 1 to 500")
    )
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


def _business_date(**kwargs: Any) -> fields.Date:
    return fields.Date(
        validate=rule(
            "range",
            lambda d: date(1900, 1, 1) <= d <= date(2200, 12, 31),
            "must be between 1900-01-01 and 2200-12-31",
        ),
        **kwargs,
    )


def _term_years(**kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=100, error="range: must be between {min} and {max}"),
        **kwargs,
    )


def _policy_number(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^POL-[0-9A-F]{16}$", error="format: POL- and 16 hex digits"), **kwargs
    )


def _moment(**kwargs: Any) -> fields.AwareDateTime:
    """A point in time in ISO 8601 with its UTC offset (2027-03-01T09:30:00+08:00)."""
    return fields.AwareDateTime(
        format="iso",
        validate=rule(
            "range",
            lambda m: 2000 <= m.year <= 2200,
            "must be between the years 2000 and 2200",
        ),
        **kwargs,
    )


class SellPolicy(Strict):
    """From a quote (``quote_id``: its product, premium, term and start are the sale's), or on
    terms given: product, annual premium, start date and term."""

    customer_id = f.uuid_field(required=True)
    quote_id = f.uuid_field(load_default=None, allow_none=True)
    product = f.one_of(f.PRODUCTS, load_default=None)
    annual_premium = f.money(load_default=None)
    start_date = _business_date(load_default=None)
    term_years = _term_years(load_default=None)

    @validates_schema
    def _terms_or_quote(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("quote_id") is not None:
            return
        for name in ("product", "annual_premium", "start_date", "term_years"):
            if data.get(name) is None:
                raise ValidationError("required: give it, or sell from a quote_id", name)


class GetPolicy(Strict):
    policy_number = _policy_number(required=True)


class OpenComplaint(Strict):
    customer_id = f.uuid_field(required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    category = f.one_of(f.COMPLAINT_CATEGORIES, required=True)
    priority = f.one_of(f.PRIORITIES, required=True)
    description = f.text(4000, required=True)


class CloseComplaint(Strict):
    ticket_id = f.uuid_field(required=True)
    resolution = f.text(4000, required=True)
    satisfaction = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=5, error="range: must be between {min} and {max}"),
    )


class GetTicket(Strict):
    ticket_id = f.uuid_field(required=True)


# The service desk --------------------------------------------------------------------------------


def _category(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            f.CATEGORY_PATTERN, error="format: a category code such as claims.payment_delay"
        ),
        **kwargs,
    )


class OpenTicket(Strict):
    customer_id = f.uuid_field(required=True)
    kind = f.one_of(f.TICKET_KINDS, required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    category = _category(required=True)
    priority = f.one_of(f.PRIORITIES, required=True)
    subject = f.text(200, required=True)
    description = f.text(4000, required=True)


class _OnTicket(Strict):
    ticket_id = f.uuid_field(required=True)


class AssignTicket(_OnTicket):
    """To a queue (the ticket's own by default) and a person in it, or to the queue alone
    (``assignee_user_id`` null: back to the queue)."""

    queue_id = f.code(load_default=None, allow_none=True)
    assignee_user_id = f.code(load_default=None, allow_none=True)


class AddTicketNote(_OnTicket):
    text = f.text(4000, required=True)


class RequestCustomerInfo(_OnTicket):
    question = f.text(2000, required=True)


class RecordCustomerReply(_OnTicket):
    reply = f.text(4000, required=True)


class EscalateTicket(_OnTicket):
    level = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=3, error="range: 1 (team lead) to 3")
    )
    reason = f.text(1000, required=True)
    escalated_to_user_id = f.code(load_default=None, allow_none=True)


class ResolveTicket(_OnTicket):
    resolution = f.text(4000, required=True)


class ConfirmResolution(_OnTicket):
    pass


class ReopenTicket(_OnTicket):
    reason = f.text(1000, required=True)


class CloseTicket(_OnTicket):
    """Closes a resolved ticket as settled, or an unresolved one as withdrawn or a duplicate."""

    reason = f.one_of(("resolved", "withdrawn", "duplicate"), required=True)


def _limit(default: int = 50) -> fields.Integer:
    return fields.Integer(
        strict=True, load_default=default, validate=validate.Range(min=1, max=500, error="range: 1 to 500")
    )


class GetQueue(Strict):
    """A queue's open tickets, or a person's, the nearest to breach first (paged with ``after``,
    the ``next`` of the previous page)."""

    queue_id = f.code(load_default=None)
    assignee_user_id = f.code(load_default=None)
    limit = _limit()
    after = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))

    @validates_schema
    def _one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("queue_id") is None) == (data.get("assignee_user_id") is None):
            raise ValidationError("one_of: give queue_id or assignee_user_id, not both", "queue_id")


class GetSlaBoard(Strict):
    queue_id = f.code(load_default=None, allow_none=True)


class ListTicketCategories(Strict):
    pass


class RecordCallBack(_OnTicket):
    reached = fields.Boolean(required=True, truthy={True}, falsy={False})
    satisfied = fields.Boolean(load_default=None, allow_none=True, truthy={True}, falsy={False})


class GetSurvey(_OnTicket):
    pass


class SurveyAnswer(Strict):
    question_id = fields.String(
        required=True, validate=validate.Regexp(r"^Q[0-9]{2,3}$", error="format: Q01")
    )
    score = fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=5, error="range: must be between {min} and {max}"),
    )
    text = f.text(2000, load_default=None, allow_none=True)


class RecordSurveyResponse(_OnTicket):
    answers = fields.List(
        fields.Nested(SurveyAnswer),
        required=True,
        validate=validate.Length(min=1, max=10, error="length: 1 to 10 answers"),
    )


class RecordFeedback(Strict):
    customer_id = f.uuid_field(required=True)
    channel = f.one_of(f.CHANNELS, required=True)
    about_agent_id = f.agent_id(load_default=None, allow_none=True)
    about_user_id = f.code(load_default=None, allow_none=True)
    ticket_id = f.uuid_field(load_default=None, allow_none=True)
    text = f.text(4000, required=True)


class RecordPraise(RecordFeedback):
    pass


class RecordSuggestion(RecordFeedback):
    pass


class GetDeskSummary(Strict):
    """One person's or one queue's (a team's) work, or the whole desk's, on a day or in a month
    (in the business's time zone; today by default)."""

    user_id = f.code(load_default=None, allow_none=True)
    queue_id = f.code(load_default=None, allow_none=True)
    date = _business_date(load_default=None, allow_none=True)
    month = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="format: YYYY-MM"),
    )

    @validates_schema
    def _one_period(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("user_id") is not None and data.get("queue_id") is not None:
            raise ValidationError("one_of: give user_id or queue_id (or neither: the whole desk)", "user_id")
        if data.get("date") is not None and data.get("month") is not None:
            raise ValidationError("one_of: give date or month, not both", "date")


class GetCustomer360(Strict):
    """The view now, or as it was at the moment ``as_of`` (from the customer's event history)."""

    customer_id = f.uuid_field(required=True)
    as_of = _moment(load_default=None, allow_none=True)


class GetCustomerTimeline(Strict):
    """Every interaction with the customer, newest first, paged with ``cursor`` (the
    ``next_cursor`` of the previous page)."""

    customer_id = f.uuid_field(required=True)
    limit = _limit()
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))


class FindCustomers(Strict):
    """Customers whose name starts with ``name`` (case and full-width forms folded), or with this
    mobile phone, or national id ending in these four characters, or owned by this agent; the
    criteria given all apply. Ordered by name, paged with ``cursor``."""

    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    mobile_phone = f.mobile_phone(load_default=None, allow_none=True)
    national_id_last4 = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[0-9]{3}[0-9Xx]$", error="format: the last four of a national id"),
    )
    owning_agent_id = f.agent_id(load_default=None, allow_none=True)
    limit = _limit(20)
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))

    @validates_schema
    def _some_criterion(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("name") is not None and not data["name"].strip():
            raise ValidationError("blank: a name prefix needs a letter", "name")
        if not any(data.get(k) for k in ("name", "mobile_phone", "national_id_last4", "owning_agent_id")):
            raise ValidationError(
                "required: give a name, mobile_phone, national_id_last4 or owning_agent_id", "name"
            )


def require_known_segment(data: dict[str, Any]) -> None:
    """A segment of the scheme named (any name for the defined segments)."""
    known = f.SEGMENTS.get(data.get("scheme", ""), ())
    if known and data.get("segment") not in known:
        shown = ", ".join(known) if len(known) < 20 else "a code of three quintiles, 111 to 555"
        raise ValidationError(f"one_of: a segment of {data['scheme']}: {shown}", "segment")


def _month(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="format: a month, YYYY-MM"), **kwargs
    )


class _Scope(Strict):
    """Whose customers: one agent's, one team's, or (omitted) all the caller may see."""

    agent_id = f.agent_id(load_default=None, allow_none=True)
    team_id = f.code(load_default=None, allow_none=True)

    @validates_schema
    def _one_scope(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("agent_id") and data.get("team_id"):
            raise ValidationError("exclusive: give agent_id or team_id, not both", "team_id")


class _SegmentScope(_Scope):
    scheme = f.one_of(tuple(f.SEGMENTS), required=True)


class GetSegmentCounts(_SegmentScope):
    """How many customers each segment of a scheme holds in a month (default: the last recompute's),
    beside the month before and the same month a year before."""

    month = _month(load_default=None, allow_none=True)


class ListSegmentMembers(_SegmentScope):
    """The customers of one segment, in customer id order, paged with ``cursor``."""

    segment = fields.String(required=True, validate=validate.Length(min=1, max=40))
    limit = _limit(50)
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))

    @validates_schema
    def _known_segment(self, data: dict[str, Any], **_: Any) -> None:
        require_known_segment(data)


class GetAgentPerformance(Strict):
    """An agent's month: activities planned and done, opportunities and conversion, premium sold
    and retained, their customers' complaints and satisfaction, the share of the book contacted."""

    agent_id = f.agent_id(required=True)
    month = _month(required=True)


class GetTeamPerformance(Strict):
    team_id = f.code(required=True)
    month = _month(required=True)


class GetFunnel(_Scope):
    """Opportunities opened and moved in a month, won and lost, and (for an agent or a team) the
    forecast of the open ones by expected close month."""

    month = _month(required=True)


class GetComplaintStatistics(_Scope):
    """Complaints opened in a month by category, channel and priority, and closed within their SLA,
    beside the month before and the same month a year before."""

    month = _month(required=True)


class GetProjections(Strict):
    pass


# The analytics read models a rebuild can replay (``services.analytics.read_models.PROJECTIONS``).
READ_MODELS = ("audit_log", "business_facts", "customer_360", "customer_search", "customer_timeline")


class StartRebuild(Strict):
    """Rebuild a read model (or ``all`` of them) from every store's history, while live events keep
    flowing; ``crm-rebuilds`` runs it and ``get_projections`` shows its progress."""

    model = fields.String(
        required=True,
        validate=validate.OneOf((*READ_MODELS, "all"), error="one_of: a read model's name, or all"),
    )


class ReadHistory(Strict):
    """The context's public events stored after position ``after`` (0: from the start), as
    published; ask again from ``next_after`` until ``events`` is empty and it stops moving."""

    after = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=0, error="range: 0 or more")
    )
    limit = fields.Integer(
        strict=True, load_default=1000, validate=validate.Range(1, 5000, error="range: 1 to 5000")
    )


class Ping(Strict):
    pass


# The sales force ---------------------------------------------------------------------------------


class CreateTeam(Strict):
    team_id = f.code(required=True)
    name = f.text(200, required=True)
    branch = f.text(200, required=True)
    manager_user_id = f.code(load_default=None, allow_none=True)


class AppointTeamManager(Strict):
    team_id = f.code(required=True)
    manager_user_id = f.code(required=True)
    reason = f.text(1000, required=True)


class RegisterAgent(Strict):
    agent_id = f.agent_id(required=True)
    name = f.text(200, required=True)
    team_id = f.code(required=True)
    hired_on = fields.Date(required=True)


class MoveAgent(Strict):
    agent_id = f.agent_id(required=True)
    team_id = f.code(required=True)
    reason = f.text(1000, required=True)


class Successor(Strict):
    kind = f.one_of(f.SUCCESSOR_KINDS, required=True)
    agent_id = f.agent_id(load_default=None, allow_none=True)
    team_id = f.code(load_default=None, allow_none=True)

    @validates_schema
    def _names_whom(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] == "agent" and not data.get("agent_id"):
            raise ValidationError("required: name the agent who takes over", "agent_id")
        if data["kind"] != "agent" and data.get("agent_id"):
            raise ValidationError("not_allowed: only an 'agent' successor names an agent", "agent_id")


class RecordAgentDeparture(Strict):
    agent_id = f.agent_id(required=True)
    departed_on = fields.Date(required=True)
    reason = f.text(1000, required=True)
    successor = fields.Nested(Successor, required=True)


class PlanSuccession(Strict):
    agent_id = f.agent_id(required=True)
    successor = fields.Nested(Successor, required=True)


class GetAgent(Strict):
    agent_id = f.agent_id(required=True)


class GetTeam(Strict):
    team_id = f.code(required=True)


class ScopeOf(Strict):
    """Who a set of owners belongs to: the team of each, and the teams a user manages."""

    owner_ids = fields.List(f.agent_id(), load_default=list, validate=validate.Length(max=500))
    manager_user_id = f.code(load_default=None, allow_none=True)


# The customer record ------------------------------------------------------------------------------


class UpdateProfile(Strict):
    """The fields to change (at least one) and why; a field given with its present value is not
    a change."""

    customer_id = f.uuid_field(required=True)
    full_name = f.text(200)
    mobile_phone = f.mobile_phone()
    email = fields.Email(allow_none=True)
    address = fields.Nested(Address)
    date_of_birth = fields.Date()
    reason = f.text(1000, required=True)

    @validates_schema
    def _changes_something(self, data: dict[str, Any], **_: Any) -> None:
        if not set(data) & {"full_name", "mobile_phone", "email", "address", "date_of_birth"}:
            raise ValidationError(
                "required: give at least one of full_name, mobile_phone, email, address, date_of_birth",
                "_payload",
            )


class GetCustomerHistory(Strict):
    customer_id = f.uuid_field(required=True)


# Contact points, preferences and consents --------------------------------------------------------


def _boolean(**kwargs: Any) -> fields.Boolean:
    """JSON true or false only: "yes" or 1 is a mistake to report, not a value to guess at."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


class PostalAddress(Address):
    """An address to send letters to: the postcode is required."""

    postal_code = fields.String(
        required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="format: six digits")
    )


class MessagingId(Strict):
    service = f.one_of(f.MESSAGING_SERVICES, required=True)
    handle = f.text(100, required=True)


# The field that carries a contact point's value, by kind.
CONTACT_VALUE_FIELDS = {
    "phone": "phone",
    "email": "email",
    "postal_address": "address",
    "messaging": "messaging",
}


class AddContactPoint(Strict):
    """One way to reach the customer: the field named after its kind carries the value (``phone``,
    ``email``, ``address`` for a postal address, ``messaging``)."""

    customer_id = f.uuid_field(required=True)
    kind = f.one_of(f.CONTACT_KINDS, required=True)
    label = f.text(50, load_default="main")
    preferred = _boolean(load_default=False)
    phone = f.phone()
    email = fields.Email()
    address = fields.Nested(PostalAddress)
    messaging = fields.Nested(MessagingId)

    @validates_schema
    def _value_of_its_kind(self, data: dict[str, Any], **_: Any) -> None:
        wanted = CONTACT_VALUE_FIELDS.get(data.get("kind", ""))
        if wanted is None:
            return
        if data.get(wanted) is None:
            raise ValidationError(f"required: a {data['kind']} contact point needs '{wanted}'", wanted)
        for other in CONTACT_VALUE_FIELDS.values():
            if other != wanted and other in data:
                raise ValidationError(
                    f"not_allowed: a {data['kind']} contact point carries '{wanted}' only", other
                )


class RemoveContactPoint(Strict):
    customer_id = f.uuid_field(required=True)
    contact_point_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)


def _clock_time(value: str) -> bool:
    return (
        len(value) == 5
        and value[2] == ":"
        and value[:2].isdigit()
        and value[3:].isdigit()
        and (int(value[:2]) < 24 and int(value[3:]) < 60)
    )


class TimeWindow(Strict):
    """Local clock times, ``HH:MM``; ``from`` before ``to``."""

    from_ = fields.String(
        data_key="from", required=True, validate=rule("format", _clock_time, "HH:MM, 00:00 to 23:59")
    )
    to = fields.String(required=True, validate=rule("format", _clock_time, "HH:MM, 00:00 to 23:59"))

    @validates_schema
    def _in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data["from_"] >= data["to"]:
            raise ValidationError("order: 'from' must be before 'to'", "to")


class SetContactPreferences(Strict):
    """The preferences to change (at least one); the others keep their values."""

    customer_id = f.uuid_field(required=True)
    preferred_channel = f.one_of(f.CONTACT_CHANNELS, allow_none=True)
    best_time_to_call = fields.Nested(TimeWindow, allow_none=True)
    do_not_call = _boolean()
    reason = f.text(1000, required=True)

    @validates_schema
    def _changes_something(self, data: dict[str, Any], **_: Any) -> None:
        if not set(data) & {"preferred_channel", "best_time_to_call", "do_not_call"}:
            raise ValidationError(
                "required: give at least one of preferred_channel, best_time_to_call, do_not_call", "_payload"
            )


class ConsentSource(Strict):
    """Where the consent comes from: a signed form (its number), a call recording (its id) or the
    web (the page or the session)."""

    kind = f.one_of(f.CONSENT_SOURCES, required=True)
    reference = f.text(200, required=True)


class RecordConsent(Strict):
    customer_id = f.uuid_field(required=True)
    channel = f.one_of(f.CONTACT_CHANNELS, required=True)
    purpose = f.one_of(f.CONSENT_PURPOSES, required=True)
    status = f.one_of(f.CONSENT_STATUSES, required=True)
    source = fields.Nested(ConsentSource, required=True)
    # When the customer gave or withdrew it (a form signed last week); now when not given.
    given_at = fields.AwareDateTime(load_default=None, allow_none=True)


class GetConsents(Strict):
    customer_id = f.uuid_field(required=True)


class FindDuplicates(Strict):
    customer_id = f.uuid_field(required=True)


class MergeCustomers(Strict):
    """The duplicate's record is merged into the survivor's."""

    survivor_id = f.uuid_field(required=True)
    duplicate_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)

    @validates_schema
    def _two_customers(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("survivor_id") is not None and data.get("survivor_id") == data.get("duplicate_id"):
            raise ValidationError("same_customer: a customer cannot be merged into itself", "duplicate_id")


class EraseCustomer(Strict):
    customer_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)
    # The data subject's request this erasure answers (a letter, a ticket), for the audit.
    request_reference = f.text(200, required=True)


class MayContact(Strict):
    """May the customer be contacted on ``channel`` for ``purpose`` now? Asked before every contact
    made for marketing."""

    customer_id = f.uuid_field(required=True)
    channel = f.one_of(f.CONTACT_CHANNELS, required=True)
    purpose = f.one_of(f.CONSENT_PURPOSES, required=True)


# Selling: opportunities, quotes, the policy's life ----------------------------------------------


class OpenOpportunity(Strict):
    customer_id = f.uuid_field(required=True)
    product = f.one_of(f.PRODUCTS, required=True)
    expected_annual_premium = f.money(required=True)
    source = f.one_of(f.OPPORTUNITY_SOURCES, required=True)
    expected_close_date = _business_date(load_default=None, allow_none=True)
    note = f.text(1000, load_default=None, allow_none=True)


class MoveOpportunity(Strict):
    opportunity_id = f.uuid_field(required=True)
    stage = f.one_of(f.OPPORTUNITY_STAGES[1:], required=True)
    lost_reason = f.one_of(f.LOST_REASONS, load_default=None, allow_none=True)
    policy_number = _policy_number(load_default=None, allow_none=True)
    note = f.text(1000, load_default=None, allow_none=True)

    @validates_schema
    def _what_closing_needs(self, data: dict[str, Any], **_: Any) -> None:
        if data["stage"] == "lost" and not data.get("lost_reason"):
            raise ValidationError("required: a lost opportunity names why", "lost_reason")
        if data["stage"] == "won" and not data.get("policy_number"):
            raise ValidationError("required: a won opportunity names the policy sold", "policy_number")


class GetOpportunity(Strict):
    opportunity_id = f.uuid_field(required=True)


class AgentOrTeam(Strict):
    agent_id = f.agent_id(load_default=None)
    team_id = f.code(load_default=None)

    @validates_schema
    def _one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("agent_id") is None) == (data.get("team_id") is None):
            raise ValidationError("one_of: give agent_id or team_id, not both", "agent_id")


class GetPipeline(AgentOrTeam):
    pass


class IssueQuote(Strict):
    customer_id = f.uuid_field(required=True)
    product = f.one_of(f.PRODUCTS, required=True)
    sum_insured = f.money(required=True)
    term_years = _term_years(required=True)
    start_date = _business_date(load_default=None, allow_none=True)


class GetQuote(Strict):
    quote_id = f.uuid_field(required=True)


class RenewPolicy(Strict):
    """For another term: from a quote, or at the premium given, or at the present premium."""

    policy_number = _policy_number(required=True)
    quote_id = f.uuid_field(load_default=None, allow_none=True)
    term_years = _term_years(load_default=None, allow_none=True)
    annual_premium = f.money(load_default=None, allow_none=True)

    @validates_schema
    def _quote_or_terms(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("quote_id") is not None:
            for name in ("term_years", "annual_premium"):
                if data.get(name) is not None:
                    raise ValidationError("not_allowed: a renewal from a quote takes the quote's terms", name)


class RecordPremiumPayment(Strict):
    policy_number = _policy_number(required=True)
    payment_id = f.code(required=True)
    amount = f.money(required=True)
    due_date = _business_date(required=True)
    paid_on = _business_date(load_default=None, allow_none=True)


class RecordPolicyLapse(Strict):
    policy_number = _policy_number(required=True)
    missed_due_date = _business_date(required=True)
    lapsed_on = _business_date(load_default=None, allow_none=True)


class ReinstatePolicy(Strict):
    policy_number = _policy_number(required=True)
    reason = f.text(1000, required=True)
    reinstated_on = _business_date(load_default=None, allow_none=True)


class CancelPolicy(Strict):
    policy_number = _policy_number(required=True)
    reason = f.one_of(f.CANCELLATION_REASONS, required=True)
    cancelled_on = _business_date(load_default=None, allow_none=True)
    note = f.text(1000, load_default=None, allow_none=True)


class RecordClaim(Strict):
    """A claim as the core claims system has it now: sent again with a later status, it updates."""

    policy_number = _policy_number(required=True)
    claim_id = f.code(required=True)
    loss_date = _business_date(required=True)
    amount_claimed = f.money(required=True)
    status = f.one_of(f.CLAIM_STATUSES, required=True)
    amount_paid = f.money(load_default=None, allow_none=True)

    @validates_schema
    def _paid_amount(self, data: dict[str, Any], **_: Any) -> None:
        if data["status"] == "paid" and data.get("amount_paid") is None:
            raise ValidationError("required: a paid claim says how much was paid", "amount_paid")
        if data["status"] != "paid" and data.get("amount_paid") is not None:
            raise ValidationError("not_allowed: only a paid claim has an amount paid", "amount_paid")


# The agent's day ----------------------------------------------------------------------------------


class _Window(Strict):
    planned_start = _moment(required=True)
    planned_end = _moment(required=True)

    @validates_schema
    def _ends_after_start(self, data: dict[str, Any], **_: Any) -> None:
        if data["planned_end"] <= data["planned_start"]:
            raise ValidationError("after_start: an activity ends after it starts", "planned_end")


class NextActivity(_Window):
    kind = f.one_of(f.ACTIVITY_KINDS, required=True)
    purpose = f.text(500, required=True)


class PlanActivity(_Window):
    """For the caller's own day by default (an agent); a manager names an agent of their teams."""

    agent_id = f.agent_id(load_default=None, allow_none=True)
    customer_id = f.uuid_field(load_default=None, allow_none=True)
    kind = f.one_of(f.ACTIVITY_KINDS, required=True)
    purpose = f.text(500, required=True)


class PlanFollowUp(Strict):
    """Work another part of the company puts in an owner's day (an agent, or a team's pool):
    planned once per (source, idempotency_key), however often it is sent."""

    agent_id = f.agent_id(required=True)
    customer_id = f.uuid_field(required=True)
    source = f.one_of(f.FOLLOW_UP_SOURCES, required=True)
    idempotency_key = f.text(200, required=True)
    due_on = _business_date(required=True)
    planned_start = _moment(load_default=None, allow_none=True)
    # Not a visit or a meeting: work asked for by others fits around the agent's appointments.
    kind = f.one_of(("call", "follow_up"), load_default="follow_up")
    purpose = f.text(500, required=True)


class RescheduleActivity(_Window):
    activity_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)


class CompleteActivity(Strict):
    activity_id = f.uuid_field(required=True)
    outcome = f.one_of(f.ACTIVITY_OUTCOMES, required=True)
    notes = f.text(4000, load_default=None, allow_none=True)
    next_step = f.text(1000, load_default=None, allow_none=True)
    # The next step planned at once, with the completion.
    follow_up = fields.Nested(NextActivity, load_default=None, allow_none=True)


class CancelActivity(Strict):
    activity_id = f.uuid_field(required=True)
    reason = f.text(1000, required=True)


class GetActivity(Strict):
    activity_id = f.uuid_field(required=True)


class GetDailyPlan(Strict):
    """An agent's day (the caller's own by default); the date in the business's time zone, today
    by default."""

    agent_id = f.agent_id(load_default=None, allow_none=True)
    date = _business_date(load_default=None, allow_none=True)


class GetTeamDay(Strict):
    team_id = f.code(required=True)
    date = _business_date(load_default=None, allow_none=True)


# Campaigns --------------------------------------------------------------------------------------


def _distinct(name: str) -> Any:
    def check(values: list[Any]) -> None:
        if len(set(values)) != len(values):
            raise ValidationError(f"distinct: each {name} once")

    return check


class CampaignTarget(Strict):
    """Who a campaign is for: the customers of one segment from analytics, narrowed (optionally)
    to some owning agents or teams (either: a customer of a named agent or of a named team's
    agents), to some provinces, to holders of some products, or to customers holding none of
    some others."""

    scheme = f.one_of(tuple(f.SEGMENTS), required=True)
    segment = fields.String(required=True, validate=validate.Length(min=1, max=40))
    agent_ids = fields.List(
        f.agent_id(),
        load_default=list,
        validate=[validate.Length(max=500, error="length: at most {max} agents"), _distinct("agent")],
    )
    team_ids = fields.List(
        f.code(),
        load_default=list,
        validate=[validate.Length(max=100, error="length: at most {max} teams"), _distinct("team")],
    )
    regions = fields.List(
        f.text(100),
        load_default=list,
        validate=[validate.Length(max=50, error="length: at most {max} provinces"), _distinct("province")],
    )
    holding = fields.List(f.one_of(f.PRODUCTS), load_default=list, validate=_distinct("product"))
    not_holding = fields.List(f.one_of(f.PRODUCTS), load_default=list, validate=_distinct("product"))

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        require_known_segment(data)
        both = set(data.get("holding", ())) & set(data.get("not_holding", ()))
        if both:
            raise ValidationError(
                f"exclusive: a product is held or not held, not both ({', '.join(sorted(both))})",
                "not_holding",
            )


def _share(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(
        as_string=True,
        validate=validate.Range(
            min=0, max=Decimal("0.5"), error="range: a share from {min} to {max} (0.1 is a tenth)"
        ),
        **kwargs,
    )


class CreateCampaign(Strict):
    name = f.text(200, required=True)
    purpose = f.one_of(f.CAMPAIGN_PURPOSES, required=True)
    # What is offered, the first product first: an agent channel opens an opportunity for it.
    products = fields.List(
        f.one_of(f.PRODUCTS),
        required=True,
        validate=[
            validate.Length(min=1, max=len(f.PRODUCTS), error="length: 1 to {max}"),
            _distinct("product"),
        ],
    )
    # What the agents say and the messages carry (gateways fill in their own template).
    offer = f.text(500, required=True)
    target = fields.Nested(CampaignTarget, required=True)
    channels = fields.List(
        f.one_of(f.CAMPAIGN_CHANNELS),
        required=True,
        validate=[validate.Length(min=1, error="length: at least one channel"), _distinct("channel")],
    )
    start_date = _business_date(required=True)
    end_date = _business_date(required=True)
    budget = f.money(required=True)
    # The share of the reachable target held back, never contacted, to measure the effect against.
    control_share = _share(load_default=Decimal("0.10"))
    # At most so many of the campaign's calls in an agent's day (the calls of every campaign count).
    daily_calls_per_agent = fields.Integer(
        strict=True, load_default=6, validate=validate.Range(1, 16, error="range: 1 to 16")
    )
    # The annual premium an opportunity the campaign opens is expected to bring (agent channels).
    expected_annual_premium = f.money(load_default=None, allow_none=True)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if data["end_date"] < data["start_date"]:
            raise ValidationError("after_start: a campaign ends on or after its start date", "end_date")
        if (data["end_date"] - data["start_date"]).days > 366:
            raise ValidationError("range: a campaign runs for at most a year", "end_date")
        agent_channels = set(data["channels"]) & {"agent_call", "visit"}
        if agent_channels and data.get("expected_annual_premium") is None:
            raise ValidationError(
                "required: an agent channel opens an opportunity per customer; say what premium one "
                "is expected to bring",
                "expected_annual_premium",
            )


class _OnCampaign(Strict):
    campaign_id = f.uuid_field(required=True)


class PreviewCampaign(_OnCampaign):
    pass


class LaunchCampaign(_OnCampaign):
    pass


class PauseCampaign(_OnCampaign):
    reason = f.text(1000, required=True)


class CloseCampaign(_OnCampaign):
    reason = f.text(1000, required=True)


class GetCampaign(_OnCampaign):
    pass


class ListCampaigns(Strict):
    state = f.one_of(f.CAMPAIGN_STATES, load_default=None, allow_none=True)
    limit = _limit(50)
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))


class RecordCampaignResponse(_OnCampaign):
    """What came back from a contacted customer: from a channel gateway (delivered, clicked), or
    from the agent who called (replied, converted)."""

    customer_id = f.uuid_field(required=True)
    channel = f.one_of(f.CAMPAIGN_CHANNELS, required=True)
    response = f.one_of(f.CAMPAIGN_RESPONSES, required=True)
    message_id = f.uuid_field(load_default=None, allow_none=True)
    note = f.text(1000, load_default=None, allow_none=True)


class GetCampaignResults(_OnCampaign):
    """Reached, responded, opportunities, premium, against the control group; by channel and team,
    and by agent (the agents of ``team_id`` if given, else the first ``agent_limit`` by reach)."""

    team_id = f.code(load_default=None, allow_none=True)
    agent_limit = _limit(50)


class ListSegmentTargets(Strict):
    """For campaigns: a segment's customers in customer id order (one owner's, if named), each
    with what the campaign rules need (owner, province, products held, marketing consents,
    do-not-call, erased or merged). Internal systems, operators and admins."""

    scheme = f.one_of(tuple(f.SEGMENTS), required=True)
    segment = fields.String(required=True, validate=validate.Length(min=1, max=40))
    owning_agent_id = f.agent_id(load_default=None, allow_none=True)
    limit = fields.Integer(
        strict=True, load_default=500, validate=validate.Range(min=1, max=1000, error="range: 1 to 1000")
    )
    # The last customer id of the page before (the campaign's launch records it as it goes).
    after_customer_id = f.uuid_field(load_default=None, allow_none=True)

    @validates_schema
    def _known_segment(self, data: dict[str, Any], **_: Any) -> None:
        require_known_segment(data)


# Identity: accounts and sign-in -------------------------------------------------------------------

PERSON_ROLES = ("agent", "manager", "service_desk", "operator", "admin")


def _user_id(**kwargs: Any) -> fields.String:
    return f.code(**kwargs)


def _password(**kwargs: Any) -> fields.String:
    # Length only: whether it is good is the account's rule (it names the rule broken).
    return fields.String(
        validate=validate.Length(min=1, max=256, error="length: 1 to {max} characters"), **kwargs
    )


class _AgentIdForAgents(Strict):
    @validates_schema
    def _agent_id_for_agents(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("role") == "agent") != bool(data.get("agent_id")):
            raise ValidationError(
                "agents_only: an agent's account names the agent id; no other account does", "agent_id"
            )


class CreateAccount(_AgentIdForAgents):
    """A person's account. Without ``password``, a temporary one is answered once, to be changed at
    the first sign-in."""

    user_id = _user_id(required=True)
    display_name = f.text(200, required=True)
    role = f.one_of(PERSON_ROLES, required=True)
    agent_id = f.agent_id(load_default=None, allow_none=True)
    password = _password(load_default=None, allow_none=True)


SCOPE_PATTERN = r"^[a-z_]+\.[a-z_]+$"


class CreateServiceAccount(Strict):
    """A process's or an internal system's account, allowed the operations in ``scopes``
    (``<service>.<operation>``); its client secret is answered once."""

    user_id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^service:[a-z0-9][a-z0-9._-]{0,55}$", error="format: service: and a lower-case name"
        ),
    )
    display_name = f.text(200, required=True)
    scopes = fields.List(
        fields.String(validate=validate.Regexp(SCOPE_PATTERN, error="format: <service>.<operation>")),
        required=True,
        validate=[validate.Length(min=1, max=100, error="length: 1 to {max} operations"), _distinct("scope")],
    )


class ChangeRole(_AgentIdForAgents):
    user_id = _user_id(required=True)
    role = f.one_of(PERSON_ROLES, required=True)
    agent_id = f.agent_id(load_default=None, allow_none=True)
    reason = f.text(1000, required=True)


class _OnAccount(Strict):
    user_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64, error="length: 1 to {max}")
    )


class DisableAccount(_OnAccount):
    reason = f.text(1000, required=True)


class EnableAccount(_OnAccount):
    reason = f.text(1000, required=True)


PLATFORM_TEXT = r"^[A-Za-z0-9_.:()-][A-Za-z0-9_.:() -]{0,299}$"
PLATFORM_TEXT_RULE = (
    "format: up to 300 ASCII letters, digits, spaces and _ . : ( ) -, not starting with a space"
)


class RecordOperatorAction(Strict):
    """What an operator did to the platform from a page, for the audit (the dashboard records it)."""

    action = f.one_of(f.OPERATOR_ACTIONS, required=True)
    # Names of the platform's parts and ids, never a person's words: the audit keeps these for good.
    target = fields.String(required=True, validate=validate.Regexp(PLATFORM_TEXT, error=PLATFORM_TEXT_RULE))
    outcome = fields.String(required=True, validate=validate.Regexp(PLATFORM_TEXT, error=PLATFORM_TEXT_RULE))


class ResetPassword(_OnAccount):
    pass


class RotateClientSecret(_OnAccount):
    pass


class GetAccount(_OnAccount):
    pass


class ListAccounts(Strict):
    limit = _limit(100)
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class SignIn(Strict):
    # Length only, whatever was typed: the answer never tells whether a user id exists.
    user_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64, error="length: 1 to {max}")
    )
    password = _password(required=True)


class ChangePassword(Strict):
    user_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64, error="length: 1 to {max}")
    )
    current_password = _password(required=True)
    new_password = _password(required=True)


class _RefreshToken(Strict):
    refresh_token = fields.String(
        required=True, validate=validate.Length(min=10, max=200, error="length: 10 to {max}")
    )


class RefreshSession(_RefreshToken):
    pass


class SignOut(_RefreshToken):
    pass


class SignInService(Strict):
    client_id = fields.String(
        required=True, validate=validate.Length(min=1, max=64, error="length: 1 to {max}")
    )
    client_secret = fields.String(
        required=True, validate=validate.Length(min=1, max=200, error="length: 1 to {max}")
    )


class ListRevocations(Strict):
    """Tokens revoked since ``since`` (wall-clock seconds since the epoch); by default as far back
    as an access token lives."""

    since = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0, error="range: from 0")
    )


class GetSigningKeys(Strict):
    pass


class GetAuditLog(Strict):
    """Who did what to which record, when and why (administrators): one person's actions, or what
    was done to one customer or to one account; newest first, between two moments, paged."""

    user_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    customer_id = f.uuid_field(load_default=None, allow_none=True)
    account = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    since = _moment(load_default=None, allow_none=True)
    until = _moment(load_default=None, allow_none=True)
    limit = _limit(100)
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))

    @validates_schema
    def _one_subject(self, data: dict[str, Any], **_: Any) -> None:
        given = [n for n in ("user_id", "customer_id", "account") if data.get(n)]
        if len(given) > 1:
            raise ValidationError(
                f"exclusive: one of user_id, customer_id, account, not {' and '.join(given)}", given[1]
            )
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise ValidationError("after_since: until comes after since", "until")
