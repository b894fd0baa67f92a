"""The customer context's domain: customers belong to the company and always have an owning agent;
a national id belongs to at most one customer."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from contracts.events import PERSONAL_FIELDS as PUBLISHED_PERSONAL_FIELDS
from contracts.rpc import CONTACT_VALUE_FIELDS
from contracts.validators import national_id_birth_date
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import CustomerMerged, InvalidState, ValidationFailed
from services.customer.contacts import (
    NO_PREFERENCES,
    ConsentState,
    Permission,
    consent_state,
    contact_permission,
    contact_value,
    same_value_key,
)

NATIONAL_ID_NAMESPACE = uuid.UUID("0c7f8a52-3b1e-4f5e-a7f4-1d2c9e6b8a31")
CUSTOMER_NAMESPACE = uuid.UUID("3e9b1f0a-7c44-4d8e-9b52-6a1d0c2f8e77")
CONTACT_POINT_NAMESPACE = uuid.UUID("9a4c2e71-5d3b-4f08-8e16-7b2d1c0a9f54")


PROFILE_FIELDS = ("full_name", "mobile_phone", "email", "address", "date_of_birth")


def normalised_phone(phone: str) -> str:
    return phone.removeprefix("+86")


def normalised_email(email: str | None) -> str | None:
    return email.lower() if email else None


def normalised_profile(proposed: dict[str, Any]) -> dict[str, Any]:
    """The profile fields given, as the record keeps them."""
    wanted = {name: proposed[name] for name in PROFILE_FIELDS if name in proposed}
    if "full_name" in wanted:
        wanted["full_name"] = wanted["full_name"].strip()
    if "mobile_phone" in wanted:
        wanted["mobile_phone"] = normalised_phone(wanted["mobile_phone"])
    if "email" in wanted:
        wanted["email"] = normalised_email(wanted["email"])
    return wanted


class Customer(CrmAggregate):
    # eventsourcing builds __init__ from the annotations below; a Created event's attributes of the
    # same names initialise the aggregate, so creation events need no apply().
    class Registered(CrmAggregate.Created):
        EVENT_TYPE = "customer.registered"
        PERSONAL_FIELDS = PUBLISHED_PERSONAL_FIELDS[EVENT_TYPE]
        customer_id: str
        full_name: str
        national_id: str
        mobile_phone: str
        email: str | None
        date_of_birth: date
        address: dict[str, Any]
        owning_agent_id: str

    class OwnerChanged(CrmAggregate.Event):
        """Ownership moved in one step: there is no moment without an owner."""

        EVENT_TYPE = "customer.owner_changed"
        customer_id: str
        previous_agent_id: str
        new_agent_id: str
        reason: str
        # The book transfer that moved the customer, or None for a reassignment of one customer.
        transfer_id: str | None

        def apply(self, customer: Customer) -> None:
            customer.owning_agent_id = self.new_agent_id
            customer.ownership = [
                *customer.ownership,
                {
                    "from_agent_id": self.previous_agent_id,
                    "to_agent_id": self.new_agent_id,
                    "reason": self.reason,
                    "transfer_id": self.transfer_id,
                    "changed_at": self.timestamp.isoformat(),
                    "changed_by": self.meta["actor"],
                },
            ]

    class ProfileUpdated(CrmAggregate.Event):
        """Only the fields that changed, with their new values."""

        EVENT_TYPE = "customer.profile_updated"
        PERSONAL_FIELDS = PUBLISHED_PERSONAL_FIELDS[EVENT_TYPE]
        customer_id: str
        changes: dict[str, Any]
        reason: str

        def apply(self, customer: Customer) -> None:
            for name, value in (self.changes or {}).items():
                setattr(customer, name, date.fromisoformat(value) if name == "date_of_birth" else value)

    class ContactPointAdded(CrmAggregate.Event):
        EVENT_TYPE = "customer.contact_point_added"
        PERSONAL_FIELDS = PUBLISHED_PERSONAL_FIELDS[EVENT_TYPE]
        customer_id: str
        contact_point_id: str
        kind: str
        label: str
        # A string for a phone or an email; an object for a postal address or a messaging id.
        value: Any
        preferred: bool

        def apply(self, customer: Customer) -> None:
            customer.contact_points = {
                **customer.contact_points,
                self.contact_point_id: {
                    "contact_point_id": self.contact_point_id,
                    "kind": self.kind,
                    "label": self.label,
                    "value": self.value,
                    "added_at": self.timestamp.isoformat(),
                },
            }
            if self.preferred:
                customer.preferred_contact_points = {
                    **customer.preferred_contact_points,
                    self.kind: self.contact_point_id,
                }

    class ContactPointRemoved(CrmAggregate.Event):
        EVENT_TYPE = "customer.contact_point_removed"
        customer_id: str
        contact_point_id: str
        kind: str
        # It was the preferred one of its kind: now that kind has none.
        was_preferred: bool
        reason: str

        def apply(self, customer: Customer) -> None:
            removed = customer.contact_points[self.contact_point_id]
            customer.contact_points = {
                k: v for k, v in customer.contact_points.items() if k != self.contact_point_id
            }
            customer.preferred_contact_points = {
                kind: point
                for kind, point in customer.preferred_contact_points.items()
                if not (kind == removed["kind"] and point == self.contact_point_id)
            }

    class ContactPreferencesSet(CrmAggregate.Event):
        """The preferences as they are after the change (all of them), and which ones changed."""

        EVENT_TYPE = "customer.contact_preferences_set"
        customer_id: str
        preferred_channel: str | None
        best_time_to_call: dict[str, str] | None
        do_not_call: bool
        changed: list[str]
        reason: str

        def apply(self, customer: Customer) -> None:
            customer.contact_preferences = {
                "preferred_channel": self.preferred_channel,
                "best_time_to_call": self.best_time_to_call,
                "do_not_call": self.do_not_call,
            }

    class ConsentRecorded(CrmAggregate.Event):
        EVENT_TYPE = "customer.consent_recorded"
        customer_id: str
        channel: str
        purpose: str
        status: str
        source: dict[str, str]
        given_at: str
        # The consent in force for this channel and purpose once this one is recorded (an older
        # one recorded late does not override a newer one): {status, given_at}.
        in_force: dict[str, str]

        def apply(self, customer: Customer) -> None:
            customer.consents = [
                *customer.consents,
                {
                    "channel": self.channel,
                    "purpose": self.purpose,
                    "status": self.status,
                    "source": self.source,
                    "given_at": self.given_at,
                    "recorded_by": self.meta["actor"],
                    "recorded_at": self.timestamp.isoformat(),
                },
            ]

    class Merged(CrmAggregate.Event):
        """This record was a duplicate of the survivor's: it takes no commands any more."""

        EVENT_TYPE = "customer.merged"
        customer_id: str
        survivor_id: str
        reason: str

        def apply(self, customer: Customer) -> None:
            customer.merged_into = self.survivor_id

    class DuplicateMerged(CrmAggregate.Event):
        """The survivor's side of a merge: the duplicate's policies, tickets and history are now
        this customer's."""

        EVENT_TYPE = "customer.duplicate_merged"
        customer_id: str
        duplicate_id: str
        reason: str

        def apply(self, customer: Customer) -> None:
            customer.merged_from = [*customer.merged_from, self.duplicate_id]

    class Erased(CrmAggregate.Event):
        """The customer's personal data is erased: its key is shredded, so what the store holds of
        it can no longer be read. The facts (ownership, policies, tickets) stay."""

        EVENT_TYPE = "customer.erased"
        customer_id: str
        reason: str
        request_reference: str

        def apply(self, customer: Customer) -> None:
            customer.erased_at = self.timestamp.isoformat()
            for name in (*PROFILE_FIELDS, "national_id"):
                setattr(customer, name, None)
            customer.contact_points = {
                point_id: {**point, "label": None, "value": None}
                for point_id, point in customer.contact_points.items()
            }

    # None once erased.
    full_name: str
    national_id: str
    mobile_phone: str
    email: str | None
    date_of_birth: date
    address: dict[str, Any]
    owning_agent_id: str
    # Every change of owner, oldest first (the first owner is the registration's).
    ownership: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Ways to reach the customer besides the profile's, by contact point id; the preferred one of
    # each kind; how they like to be contacted; every consent recorded, in the order recorded.
    contact_points: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    preferred_contact_points: dict[str, str] = dataclasses.field(default_factory=dict)
    contact_preferences: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(NO_PREFERENCES))
    consents: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The survivor this record was merged into; the duplicates merged into this one.
    merged_into: str | None = None
    merged_from: list[str] = dataclasses.field(default_factory=list)
    erased_at: str | None = None

    def require_open(self) -> None:
        """Refuses a command on a record that was merged into another or erased."""
        if self.merged_into is not None:
            raise CustomerMerged.into(self.id, self.merged_into)
        if self.erased_at is not None:
            raise InvalidState(
                f"customer {self.id} was erased on {self.erased_at}; its record takes no changes"
            )

    def merge_into(self, survivor: Customer, reason: str, meta: CommandMeta) -> None:
        """Marks this record a duplicate of ``survivor``'s and the survivor as holding it."""
        refusal = merge_refusal(survivor, self)
        if refusal is not None:
            raise refusal
        self.trigger_event(
            self.Merged,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            survivor_id=str(survivor.id),
            reason=reason,
        )
        survivor.trigger_event(
            survivor.DuplicateMerged,
            meta=meta.as_event_meta(),
            customer_id=str(survivor.id),
            duplicate_id=str(self.id),
            reason=reason,
        )

    def erase(self, reason: str, request_reference: str, meta: CommandMeta) -> None:
        if self.erased_at is not None:
            raise InvalidState(f"customer {self.id} was erased already, on {self.erased_at}")
        self.trigger_event(
            self.Erased,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            reason=reason,
            request_reference=request_reference,
        )

    def change_owner(
        self, new_agent_id: str, reason: str, meta: CommandMeta, transfer_id: str | None = None
    ) -> None:
        if new_agent_id == self.owning_agent_id:
            raise ValidationFailed.single(
                "new_agent_id", "unchanged", f"{new_agent_id} already owns customer {self.id}"
            )
        self.trigger_event(
            self.OwnerChanged,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            previous_agent_id=self.owning_agent_id,
            new_agent_id=new_agent_id,
            reason=reason,
            transfer_id=transfer_id,
        )

    def update_profile(self, proposed: dict[str, Any], reason: str, meta: CommandMeta) -> dict[str, Any]:
        """Record what differs from the profile now (normalised as at registration); returns the
        changes, empty (and nothing recorded) when nothing differs. The date of birth must stay the
        one the national id encodes."""
        wanted = normalised_profile(proposed)
        if "date_of_birth" in wanted and wanted["date_of_birth"] != national_id_birth_date(self.national_id):
            raise ValidationFailed.single(
                "date_of_birth", "matches_national_id", "must equal the birth date encoded in the national id"
            )
        changes = {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in wanted.items()
            if getattr(self, name) != value
        }
        if changes:
            self.trigger_event(
                self.ProfileUpdated,
                meta=meta.as_event_meta(),
                customer_id=str(self.id),
                changes=changes,
                reason=reason,
            )
        return changes

    def add_contact_point(self, kind: str, label: str, value: Any, preferred: bool, meta: CommandMeta) -> str:
        """Adds a way to reach the customer; returns its id. The same value twice is refused: one
        contact point per way to reach the person."""
        kept = contact_value(kind, value)
        key = same_value_key(kind, kept)
        for existing in self.contact_points.values():
            if existing["kind"] == kind and same_value_key(kind, existing["value"]) == key:
                raise ValidationFailed.single(
                    CONTACT_VALUE_FIELDS[kind],
                    "already_present",
                    f"the record has this {kind} already (contact point {existing['contact_point_id']}); "
                    "remove it and add it again to change its label or preference",
                )
        contact_point_id = str(meta.derived_id(CONTACT_POINT_NAMESPACE))
        self.trigger_event(
            self.ContactPointAdded,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            contact_point_id=contact_point_id,
            kind=kind,
            label=label.strip(),
            value=kept,
            preferred=preferred,
        )
        return contact_point_id

    def remove_contact_point(self, contact_point_id: str, reason: str, meta: CommandMeta) -> None:
        if contact_point_id not in self.contact_points:
            raise ValidationFailed.single(
                "contact_point_id", "unknown", f"customer {self.id} has no contact point {contact_point_id}"
            )
        kind = self.contact_points[contact_point_id]["kind"]
        self.trigger_event(
            self.ContactPointRemoved,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            contact_point_id=contact_point_id,
            kind=kind,
            was_preferred=self.preferred_contact_points.get(kind) == contact_point_id,
            reason=reason,
        )

    def set_contact_preferences(self, proposed: dict[str, Any], reason: str, meta: CommandMeta) -> list[str]:
        """Changes the preferences given; returns the names of those that changed (none: nothing
        recorded)."""
        after = {**self.contact_preferences, **{k: v for k, v in proposed.items() if k in NO_PREFERENCES}}
        changed = sorted(k for k in NO_PREFERENCES if after[k] != self.contact_preferences[k])
        if changed:
            self.trigger_event(
                self.ContactPreferencesSet,
                meta=meta.as_event_meta(),
                customer_id=str(self.id),
                changed=changed,
                reason=reason,
                **after,
            )
        return changed

    def record_consent(
        self,
        channel: str,
        purpose: str,
        status: str,
        source: dict[str, str],
        given_at: datetime,
        now: datetime,
        meta: CommandMeta,
    ) -> None:
        if given_at > now:
            raise ValidationFailed.single("given_at", "not_in_future", "a consent cannot be given after now")
        given = given_at.astimezone(UTC).isoformat()
        current = self.current_consents()[(channel, purpose)]
        newer = current.given_at is not None and current.given_at > given
        in_force = (
            {"status": current.status, "given_at": current.given_at}
            if newer
            else {"status": status, "given_at": given}
        )
        self.trigger_event(
            self.ConsentRecorded,
            meta=meta.as_event_meta(),
            customer_id=str(self.id),
            channel=channel,
            purpose=purpose,
            status=status,
            source=dict(source),
            # In UTC, so that the consents' times compare as strings.
            given_at=given,
            in_force=in_force,
        )

    def current_consents(self) -> dict[tuple[str, str], ConsentState]:
        return consent_state(self.consents)

    def reachable_kinds(self) -> set[str]:
        """Kinds of contact point the customer can be reached through (the profile's count)."""
        kinds = {point["kind"] for point in self.contact_points.values()} | {"phone", "postal_address"}
        if self.email:
            kinds.add("email")
        return kinds

    def may_contact(self, channel: str, purpose: str, duplicates: Sequence[Customer] = ()) -> Permission:
        """Whether the person may be contacted; the records merged into this one count too: the
        consent given last on any of them is in force, and do-not-call on any of them holds."""
        records = [self, *duplicates]
        return contact_permission(
            channel=channel,
            purpose=purpose,
            consents=consent_state(record for r in records for record in r.consents),
            preferences={"do_not_call": any(r.contact_preferences["do_not_call"] for r in records)},
            reachable_kinds=set().union(*(r.reachable_kinds() for r in records)),
            erased=self.erased_at is not None,
        )

    @classmethod
    def register(
        cls,
        *,
        full_name: str,
        national_id: str,
        mobile_phone: str,
        email: str | None,
        date_of_birth: date,
        address: dict[str, Any],
        owning_agent_id: str,
        meta: CommandMeta,
    ) -> Customer:
        customer_id = meta.derived_id(CUSTOMER_NAMESPACE)
        return cls._create(
            cls.Registered,
            id=customer_id,
            meta=meta.as_event_meta(),
            customer_id=str(customer_id),
            full_name=full_name.strip(),
            national_id=national_id,
            mobile_phone=normalised_phone(mobile_phone),
            email=normalised_email(email),
            date_of_birth=date_of_birth,
            address=address,
            owning_agent_id=owning_agent_id,
        )


def merge_refusal(survivor: Customer, duplicate: Customer) -> ValidationFailed | CustomerMerged | None:
    """Why ``duplicate`` cannot be merged into ``survivor``, or None when it can."""
    if survivor.id == duplicate.id:
        return ValidationFailed.single(
            "duplicate_id", "same_customer", "a customer cannot be merged into itself"
        )
    for field, record in (("survivor_id", survivor), ("duplicate_id", duplicate)):
        if record.merged_into is not None:
            return CustomerMerged.into(record.id, record.merged_into, field)
        if record.erased_at is not None:
            return ValidationFailed.single(field, "erased", f"customer {record.id} was erased")
    if duplicate.merged_from:
        # One level only, so that what a survivor holds (and an erasure reaches) is one step away.
        return ValidationFailed.single(
            "duplicate_id",
            "has_duplicates",
            f"customer {duplicate.id} holds merged duplicates of its own: merge the other way round",
        )
    return None


class NationalIdClaim(CrmAggregate):
    """Reserves a national id for one customer. Its id is derived from the national id's digest (a
    keyed hash: the store holds no national id in clear), so two registrations of the same person
    collide on the claim's first version, atomically with the customer's own events. Internal:
    never published."""

    class Claimed(CrmAggregate.Created):
        customer_id: str

    class Reclaimed(CrmAggregate.Event):
        """The customer who held the national id was erased; the person registered again."""

        customer_id: str
        erased_customer_id: str

        def apply(self, claim: NationalIdClaim) -> None:
            claim.customer_id = self.customer_id

    customer_id: str

    def reclaim(self, customer_id: str, meta: CommandMeta) -> None:
        self.trigger_event(
            self.Reclaimed,
            meta=meta.as_event_meta(),
            customer_id=customer_id,
            erased_customer_id=self.customer_id,
        )

    @staticmethod
    def id_for(national_id_digest: str) -> uuid.UUID:
        return uuid.uuid5(NATIONAL_ID_NAMESPACE, national_id_digest)

    @classmethod
    def claim(cls, national_id_digest: str, customer_id: str, meta: CommandMeta) -> NationalIdClaim:
        return cls._create(
            cls.Claimed,
            id=cls.id_for(national_id_digest),
            meta=meta.as_event_meta(),
            customer_id=customer_id,
        )
