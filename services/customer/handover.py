"""Handing books over: one customer (``reassign_customer``, in the application), a whole book
(``transfer_book``, or by itself when the sales force records a departure), and undoing a hand-over.

A transfer moves a page of customers at a time. Each page's ``owner_changed`` events and the
transfer's progress are one atomic append, so a process killed anywhere has either moved a page
and recorded it, or done neither: on restart it goes on from what the store says, and moves nobody
twice. An owner change is one event, so no customer is ever without an owner. The book is swept from
its start until it is empty, so a customer registered for the agent meanwhile is moved too; and a
departed agent's transfer completes only after the sales force's answers about the agent have
expired everywhere (``SCOPE_TTL_SECONDS``), so a registration that was let through just before the
departure was seen is swept as well."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from crm_shared.access import SCOPE_TTL_SECONDS, TeamScope, may_act_on
from crm_shared.auth import Caller, Role
from crm_shared.commands import Decision, command
from crm_shared.domain import CommandMeta
from crm_shared.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from services.customer.domain import Customer
from services.customer.store import CustomerStore
from services.customer.transfer import BookTransfer, TransferState

PAGE_SIZE = 100
COMPLETION_GRACE_SECONDS = 2 * SCOPE_TTL_SECONDS
# Whose name the transfer's own steps are recorded under (the person who asked is in its start).
HANDOVER = Caller("service:customer-handover", Role.OPERATOR)
STEP_NAMESPACE = uuid.UUID("6f2b8d14-0c93-4a57-b1e8-3e9d7a5c0f22")


class SuccessionPlanner(TeamScope, Protocol):
    def plan_succession(self, agent_id: str, successor: dict[str, Any]) -> dict[str, Any]:
        """The sales force's answer: ``{"successor": rule, "successors": [owners in turn]}``."""
        ...

    def owner_status(self, owner_id: str) -> str | None: ...


def step_meta(transfer: BookTransfer) -> CommandMeta:
    return CommandMeta(
        correlation_id=transfer.transfer_id,
        causation_id=str(uuid.uuid5(STEP_NAMESPACE, f"{transfer.transfer_id}:{transfer.version}")),
        actor=HANDOVER,
    )


def unknown_transfer(transfer_id: str) -> NotFound:
    return NotFound(
        f"no book transfer {transfer_id} that you may see",
        fields=[FieldError("transfer_id", "unknown_transfer", "no such transfer in your scope")],
    )


class Handover(CustomerStore):
    def _visible_transfer(self, transfer_id: str, caller: Caller, scope: TeamScope) -> BookTransfer:
        transfer = self.find(BookTransfer, transfer_id)
        if transfer is None or not may_act_on(caller, transfer.from_agent_id, scope):
            raise unknown_transfer(transfer_id)
        return transfer

    # Commands ----------------------------------------------------------------------------------

    @command
    def transfer_book(
        self, data: dict[str, Any], meta: CommandMeta, sales_force: SuccessionPlanner
    ) -> Decision:
        meta.actor.require_role(Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        from_agent = data["from_agent_id"]
        if not may_act_on(meta.actor, from_agent, sales_force):
            raise PermissionDenied(
                f"a manager hands over the books of their teams' agents only, not {from_agent}"
            )
        plan = sales_force.plan_succession(from_agent, data["successor"])
        transfer = BookTransfer.start(
            from_agent_id=from_agent,
            successors=plan["successors"],
            successor_rule=plan["successor"],
            reason=data["reason"],
            meta=meta,
        )
        return Decision({"transfer_id": transfer.transfer_id, "state": transfer.state}, (transfer,))

    @command
    def hand_over_departed_agents_book(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """The reaction to ``sales.agent_departed`` (``data`` is the event's envelope): its id names
        the transfer, so the same departure delivered twice starts one transfer."""
        payload = data["payload"]
        transfer = BookTransfer.start(
            from_agent_id=payload["agent_id"],
            successors=payload["successors"],
            successor_rule=payload["successor"],
            reason=f"departure on {payload['departed_on']}: {payload['reason']}",
            meta=meta,
            departure_event_id=str(data["event_id"]),
        )
        return Decision({"transfer_id": transfer.transfer_id}, (transfer,))

    @command
    def undo_book_transfer(
        self, data: dict[str, Any], meta: CommandMeta, sales_force: SuccessionPlanner
    ) -> Decision:
        meta.actor.require_role(Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        transfer = self._visible_transfer(str(data["transfer_id"]), meta.actor, sales_force)
        status = sales_force.owner_status(transfer.from_agent_id)
        if status != "active":
            raise ValidationFailed.single(
                "transfer_id",
                "agent_departed",
                f"the book came from {transfer.from_agent_id}, who is not an active agent: reassign "
                "the customers to someone else instead",
            )
        transfer.start_undo(data["reason"], meta)
        return Decision({"transfer_id": transfer.transfer_id, "state": transfer.state}, (transfer,))

    # The steps (run by the handover process) -------------------------------------------------------

    def advance_transfers(self) -> int:
        """One step of every transfer under way, oldest first; how many moved someone. A transfer
        that shares an agent (the book's owner or a successor) with an older one still under way
        waits for it: two transfers never pass customers back and forth, and a successor's own
        departure hands on what the older transfer gave them once it is done."""
        self.owners.catch_up()
        involved: set[str] = set()
        worked = 0
        for transfer_id in self.owners.active_transfers():
            transfer = self.find(BookTransfer, transfer_id)
            if transfer is None or not transfer.active:
                continue
            agents = {transfer.from_agent_id, *transfer.successors}
            waits = bool(agents & involved)
            involved |= agents
            if not waits:
                worked += self.advance_transfer(transfer)
        return worked

    def advance_transfer(self, transfer: BookTransfer) -> bool:
        """One page of a transfer (or of its undo); True if it moved someone or finished."""
        if transfer.state == TransferState.RUNNING:
            return self._move_page(transfer)
        if transfer.state == TransferState.UNDOING:
            return self._move_back_page(transfer)
        return False

    def _move_page(self, transfer: BookTransfer) -> bool:
        meta = step_meta(transfer)
        rows = self.owners.customers_of(transfer.from_agent_id, limit=PAGE_SIZE)
        if not rows:
            waited = (self.clock() - transfer.created_on).total_seconds()
            if waited < COMPLETION_GRACE_SECONDS:
                return False  # nothing to move yet: the loop may rest
            self.owners.catch_up()  # the book is empty as the store has it now, not as last read
            if self.owners.customers_of(transfer.from_agent_id, limit=1):
                return True
            transfer.complete(meta)
            self.save(transfer)
            return True
        moved: list[Customer] = []
        for row in rows:
            customer = self.find(Customer, row["customer_id"])
            if customer is not None and customer.owning_agent_id == transfer.from_agent_id:
                successor = transfer.successor_for(transfer.moved + len(moved))
                customer.change_owner(successor, transfer.reason, meta, transfer_id=transfer.transfer_id)
                moved.append(customer)
        if not moved:  # the index is behind what the store says: catch up and look again
            self.owners.catch_up()
            return False
        transfer.record_moved(len(moved), meta)
        self.save(*moved, transfer)
        return True  # the next step catches the index up on this page first (advance_transfers)

    def _move_back_page(self, transfer: BookTransfer) -> bool:
        meta = step_meta(transfer)
        rows = self.owners.moves_of(transfer.transfer_id, after=transfer.undo_cursor, limit=PAGE_SIZE)
        if not rows:
            transfer.finish_undo(meta)
            self.save(transfer)
            return True
        back: list[Customer] = []
        left: list[str] = []
        for row in rows:
            customer = self.find(Customer, row["customer_id"])
            if customer is None:
                continue
            last = customer.ownership[-1] if customer.ownership else {}
            if (
                last.get("transfer_id") == transfer.transfer_id
                and last.get("to_agent_id") != transfer.from_agent_id
            ):
                reason = f"undo of book transfer {transfer.transfer_id}: {transfer.undo_reason}"
                customer.change_owner(transfer.from_agent_id, reason, meta, transfer_id=transfer.transfer_id)
                back.append(customer)
            elif last.get("to_agent_id") != transfer.from_agent_id:
                left.append(str(customer.id))  # moved again since: it stays where it is
        transfer.record_moved_back(len(back), left, str(rows[-1]["customer_id"]), meta)
        self.save(*back, transfer)
        return True

    # Queries -----------------------------------------------------------------------------------

    def get_book_transfer(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        """By its id, or the latest transfer of an agent's book (a departure's transfer is started
        by the hand-over process, so its id is not known to whoever recorded the departure)."""
        self.owners.catch_up()  # the total counts the book as the store has it now
        transfer_id = data.get("transfer_id")
        if transfer_id is None:
            transfer_id = self.owners.latest_transfer_of(data["from_agent_id"]) or uuid.UUID(int=0)
        transfer = self._visible_transfer(str(transfer_id), meta.actor, scope)
        remaining = (
            self.owners.count_of(transfer.from_agent_id) if transfer.state == TransferState.RUNNING else 0
        )
        return {
            "transfer_id": transfer.transfer_id,
            "from_agent_id": transfer.from_agent_id,
            "successors": transfer.successors,
            "successor_rule": transfer.successor_rule,
            "reason": transfer.reason,
            "state": transfer.state,
            "moved": transfer.moved,
            "total": transfer.moved + remaining,
            "started_at": transfer.created_on.isoformat(),
            "completed_at": transfer.completed_at.isoformat() if transfer.completed_at else None,
            "moved_back": transfer.moved_back,
            "left_where_they_are": {"count": transfer.left_count, "first": transfer.left_sample},
            "version": transfer.version,
        }

    def list_customers(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        owner = data["owning_agent_id"]
        if not may_act_on(meta.actor, owner, scope, also=(Role.SERVICE_DESK,)):
            raise PermissionDenied(f"the book of {owner} is outside your scope")
        self.owners.catch_up()  # what this process stored is listed
        limit = data["page_size"]
        rows = self.owners.customers_of(owner, after=data.get("cursor"), limit=limit + 1)
        page = rows[:limit]
        return {
            "owning_agent_id": owner,
            "customers": [
                {"customer_id": r["customer_id"], "full_name": name, "registered_at": r["registered_at"]}
                for r, name in zip(page, self.owners.names_of(page), strict=True)
            ],
            "next_cursor": page[-1]["customer_id"] if len(rows) > limit else None,
        }
