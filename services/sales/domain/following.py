"""Work follows the customer: which owner a customer's open opportunities and planned activities
belong with, from the owner changes sales has followed.

Owner changes come as events, and may come late or out of order (a dead letter requeued after a
newer change). So sales keeps, per customer, the newest change it followed (``FollowedOwner``,
internal): the owner that change named is the owner now, and every owner the customer had before is
a former owner, whose open work moves to the owner now. An older change arriving late cannot move
work backwards; it only teaches which owners came before."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from crm_shared.domain import CommandMeta, CrmAggregate

FOLLOWED_NAMESPACE = uuid.UUID("d2a7c4e9-5b13-4f86-a0e1-7c9b3d5f8e26")


def follows_owner(is_open: bool, holder: str, former: frozenset[str], owner: str) -> bool:
    """Open work held by a former owner moves to the owner now. Closed work stays with whoever did
    it, and work someone else holds for the customer (a manager's meeting) with them."""
    return is_open and holder in former and holder != owner


class FollowsItsCustomer:
    """Work an agent holds for a customer (an opportunity, an activity), which moves with the
    customer to a new owner. The aggregate names its id field in ``WORK_ID`` and declares a
    ``Reassigned`` event of that id, ``customer_id``, ``from_agent_id``, ``to_agent_id``, ``reason``
    and ``owner_version``."""

    WORK_ID: ClassVar[str]

    def follow_owner(
        self: Any, former: frozenset[str], owner: str, owner_version: int, reason: str, meta: CommandMeta
    ) -> bool:
        """Moves open work held by one of the customer's former owners to the owner now
        (``owner_version``: the customer's version that made them the owner; see
        ``FollowedOwner``). True if it moved."""
        if not follows_owner(self.is_open, self.agent_id, former, owner):
            return False
        self.trigger_event(
            self.Reassigned,
            meta=meta.as_event_meta(),
            customer_id=self.customer_id,
            from_agent_id=self.agent_id,
            to_agent_id=owner,
            reason=reason,
            owner_version=owner_version,
            **{self.WORK_ID: getattr(self, self.WORK_ID)},
        )
        return True


class FollowedOwner(CrmAggregate):
    class Started(CrmAggregate.Created):
        customer_id: str

    class Followed(CrmAggregate.Event):
        owner_version: int
        owner: str
        former: list[str]

        def apply(self, followed: FollowedOwner) -> None:
            followed.owner_version = self.owner_version
            followed.owner = self.owner
            followed.former = frozenset(self.former)

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.owner_version = 0
        self.owner: str | None = None
        self.former: frozenset[str] = frozenset()

    @staticmethod
    def id_for(customer_id: str) -> uuid.UUID:
        return uuid.uuid5(FOLLOWED_NAMESPACE, customer_id)

    @classmethod
    def start(cls, customer_id: str, meta: CommandMeta) -> FollowedOwner:
        return cls._create(
            cls.Started, id=cls.id_for(customer_id), meta=meta.as_event_meta(), customer_id=customer_id
        )

    def learn(
        self, owner_version: int, previous: str, new: str, meta: CommandMeta
    ) -> tuple[str, frozenset[str]]:
        """Takes in one owner change (``owner_version``: the customer's version that made it);
        answers the owner now and the former owners whose open work moves to them."""
        owner = new if owner_version > self.owner_version or self.owner is None else self.owner
        former = (self.former | {previous, new}) - {owner}
        newest = max(owner_version, self.owner_version)
        if (newest, owner, former) != (self.owner_version, self.owner, self.former):
            self.trigger_event(
                self.Followed,
                meta=meta.as_event_meta(),
                owner_version=newest,
                owner=owner,
                former=sorted(former),
            )
        return owner, former
