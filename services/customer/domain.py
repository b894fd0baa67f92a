"""The customer context's domain: customers belong to the company and always have an owning agent;
a national id belongs to at most one customer."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date
from typing import Any

from contracts.validators import national_id_birth_date
from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import ValidationFailed

NATIONAL_ID_NAMESPACE = uuid.UUID("0c7f8a52-3b1e-4f5e-a7f4-1d2c9e6b8a31")
CUSTOMER_NAMESPACE = uuid.UUID("3e9b1f0a-7c44-4d8e-9b52-6a1d0c2f8e77")


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
        customer_id: str
        changes: dict[str, Any]
        reason: str

        def apply(self, customer: Customer) -> None:
            for name, value in self.changes.items():
                setattr(customer, name, date.fromisoformat(value) if name == "date_of_birth" else value)

    full_name: str
    national_id: str
    mobile_phone: str
    email: str | None
    date_of_birth: date
    address: dict[str, Any]
    owning_agent_id: str
    # Every change of owner, oldest first (the first owner is the registration's).
    ownership: list[dict[str, Any]] = dataclasses.field(default_factory=list)

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


class NationalIdClaim(CrmAggregate):
    """Reserves a national id for one customer. Its id is derived from the national id, so two
    registrations of the same person collide on the claim's first version, atomically with the
    customer's own events. Internal: never published."""

    class Claimed(CrmAggregate.Created):
        customer_id: str

    customer_id: str

    @staticmethod
    def id_for(national_id: str) -> uuid.UUID:
        return uuid.uuid5(NATIONAL_ID_NAMESPACE, national_id)

    @classmethod
    def claim(cls, national_id: str, customer_id: str, meta: CommandMeta) -> NationalIdClaim:
        return cls._create(
            cls.Claimed,
            id=cls.id_for(national_id),
            meta=meta.as_event_meta(),
            customer_id=customer_id,
        )
