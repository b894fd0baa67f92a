"""An action an operator took on the platform itself rather than on a business record (a rebuild
started, a dead letter requeued or discarded): no aggregate of the business records it, so identity,
where the audit of who did what to the system lives, keeps it as an event of its own. Pure: no I/O."""

from __future__ import annotations

import uuid

from contracts.fields import OPERATOR_ACTIONS
from crm_shared.domain import CommandMeta, CrmAggregate


class OperatorAction(CrmAggregate):
    class Recorded(CrmAggregate.Created):
        EVENT_TYPE = "identity.operator_action_recorded"
        action: str
        target: str
        outcome: str

    def __init__(self, action: str, target: str, outcome: str) -> None:
        self.action = action
        self.target = target
        self.outcome = outcome

    @classmethod
    def record(cls, action: str, target: str, outcome: str, meta: CommandMeta) -> OperatorAction:
        """``target``: the read model rebuilt, or the queue and message id of a dead letter;
        ``outcome``: what came of it (the rebuild's job, how many messages moved)."""
        assert action in OPERATOR_ACTIONS, action
        return cls._create(
            cls.Recorded,
            id=uuid.uuid4(),
            meta=meta.as_event_meta(),
            action=action,
            target=target,
            outcome=outcome,
        )
