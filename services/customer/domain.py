"""The customer context's domain: customers belong to the company and always have an owning agent;
a national id belongs to at most one customer."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate

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

    full_name: str
    national_id: str
    mobile_phone: str
    email: str | None
    date_of_birth: date
    address: dict[str, Any]
    owning_agent_id: str

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
