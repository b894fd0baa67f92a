"""The customer context's domain: customers belong to the company and always have an owning agent;
a national id belongs to at most one customer."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import ValidationFailed

NATIONAL_ID_NAMESPACE = uuid.UUID("0c7f8a52-3b1e-4f5e-a7f4-1d2c9e6b8a31")
CUSTOMER_NAMESPACE = uuid.UUID("3e9b1f0a-7c44-4d8e-9b52-6a1d0c2f8e77")


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
            mobile_phone=mobile_phone.removeprefix("+86"),
            email=email.lower() if email else None,
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
