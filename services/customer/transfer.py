"""A book transfer: every customer of one agent handed to successors, as one durable, auditable and
reversible act. The transfer records its progress with each page of customers it moves, in the same
atomic append as the customers' own ``owner_changed`` events, so a process killed in the middle
resumes from what it recorded and moves nobody twice. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import InvalidState

TRANSFER_NAMESPACE = uuid.UUID("a3f61c08-9e2d-4b75-8c14-5d0e7b9f2a36")


class TransferState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    UNDOING = "undoing"
    UNDONE = "undone"


class BookTransfer(CrmAggregate):
    class Started(CrmAggregate.Created):
        EVENT_TYPE = "customer.book_transfer_started"
        transfer_id: str
        from_agent_id: str
        # The owners the book is spread over, in turn (one for a named successor or a pool).
        successors: list[str]
        successor_rule: dict[str, Any]
        reason: str
        # The sales force's departure event that started it, if it was one.
        departure_event_id: str | None

    class Progressed(CrmAggregate.Event):
        EVENT_TYPE = "customer.book_transfer_progressed"
        transfer_id: str
        moved: int  # in this step
        moved_total: int

        def apply(self, transfer: BookTransfer) -> None:
            transfer.moved = self.moved_total

    class Completed(CrmAggregate.Event):
        EVENT_TYPE = "customer.book_transfer_completed"
        transfer_id: str
        moved_total: int

        def apply(self, transfer: BookTransfer) -> None:
            transfer.state = TransferState.COMPLETED.value
            transfer.completed_at = self.timestamp

    class UndoStarted(CrmAggregate.Event):
        EVENT_TYPE = "customer.book_transfer_undo_started"
        transfer_id: str
        reason: str

        def apply(self, transfer: BookTransfer) -> None:
            transfer.state = TransferState.UNDOING.value
            transfer.undo_reason = self.reason

    class UndoProgressed(CrmAggregate.Event):
        EVENT_TYPE = "customer.book_transfer_undo_progressed"
        transfer_id: str
        moved_back: int
        # Customers this transfer moved that were moved again since: left where they are.
        left_where_they_are: list[str]
        # The last customer id looked at: the undo goes on after it.
        cursor: str

        def apply(self, transfer: BookTransfer) -> None:
            transfer.undo_cursor = self.cursor
            transfer.moved_back += self.moved_back
            transfer.left_count += len(self.left_where_they_are)
            transfer.left_sample = (transfer.left_sample + self.left_where_they_are)[:100]

    class Undone(CrmAggregate.Event):
        EVENT_TYPE = "customer.book_transfer_undone"
        transfer_id: str
        moved_back_total: int
        left_total: int

        def apply(self, transfer: BookTransfer) -> None:
            transfer.state = TransferState.UNDONE.value

    transfer_id: str
    from_agent_id: str
    successors: list[str]
    successor_rule: dict[str, Any]
    reason: str
    departure_event_id: str | None
    state: str = TransferState.RUNNING.value
    moved: int = 0
    completed_at: datetime | None = None
    moved_back: int = 0
    undo_reason: str | None = None
    undo_cursor: str | None = None
    left_count: int = 0
    left_sample: list[str] = dataclasses.field(default_factory=list)

    @staticmethod
    def id_for_departure(departure_event_id: str) -> uuid.UUID:
        """A departure starts one transfer, however often its event is delivered."""
        return uuid.uuid5(TRANSFER_NAMESPACE, f"departure:{departure_event_id}")

    @classmethod
    def start(
        cls,
        *,
        from_agent_id: str,
        successors: list[str],
        successor_rule: dict[str, Any],
        reason: str,
        meta: CommandMeta,
        departure_event_id: str | None = None,
    ) -> BookTransfer:
        if not successors or from_agent_id in successors:
            raise ValueError("a book goes to at least one owner other than the one it leaves")
        transfer_id = (
            cls.id_for_departure(departure_event_id)
            if departure_event_id
            else meta.derived_id(TRANSFER_NAMESPACE)
        )
        return cls._create(
            cls.Started,
            id=transfer_id,
            meta=meta.as_event_meta(),
            transfer_id=str(transfer_id),
            from_agent_id=from_agent_id,
            successors=list(successors),
            successor_rule=successor_rule,
            reason=reason,
            departure_event_id=departure_event_id,
        )

    def successor_for(self, nth: int) -> str:
        """The owner of the ``nth`` customer moved (0-based): round robin over the successors,
        so shares differ by at most one."""
        return self.successors[nth % len(self.successors)]

    @property
    def active(self) -> bool:
        return self.state in (TransferState.RUNNING.value, TransferState.UNDOING.value)

    def record_moved(self, count: int, meta: CommandMeta) -> None:
        if self.state != TransferState.RUNNING.value:
            raise InvalidState(f"transfer {self.transfer_id} is {self.state}")
        self.trigger_event(
            self.Progressed,
            meta=meta.as_event_meta(),
            transfer_id=self.transfer_id,
            moved=count,
            moved_total=self.moved + count,
        )

    def complete(self, meta: CommandMeta) -> None:
        if self.state != TransferState.RUNNING.value:
            raise InvalidState(f"transfer {self.transfer_id} is {self.state}")
        self.trigger_event(
            self.Completed, meta=meta.as_event_meta(), transfer_id=self.transfer_id, moved_total=self.moved
        )

    def start_undo(self, reason: str, meta: CommandMeta) -> None:
        if self.state != TransferState.COMPLETED.value:
            raise InvalidState(
                f"transfer {self.transfer_id} is {self.state}: only a completed transfer can be undone"
            )
        self.trigger_event(
            self.UndoStarted, meta=meta.as_event_meta(), transfer_id=self.transfer_id, reason=reason
        )

    def record_moved_back(self, count: int, left: list[str], cursor: str, meta: CommandMeta) -> None:
        if self.state != TransferState.UNDOING.value:
            raise InvalidState(f"transfer {self.transfer_id} is {self.state}")
        self.trigger_event(
            self.UndoProgressed,
            meta=meta.as_event_meta(),
            transfer_id=self.transfer_id,
            moved_back=count,
            left_where_they_are=left,
            cursor=cursor,
        )

    def finish_undo(self, meta: CommandMeta) -> None:
        if self.state != TransferState.UNDOING.value:
            raise InvalidState(f"transfer {self.transfer_id} is {self.state}")
        self.trigger_event(
            self.Undone,
            meta=meta.as_event_meta(),
            transfer_id=self.transfer_id,
            moved_back_total=self.moved_back,
            left_total=self.left_count,
        )
