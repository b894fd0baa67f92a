"""The SLA clocks firing on their own: every service desk process asks, every second, which tickets
have a warning, a breach or a closing by themselves due (the due index of ``DeskTables``) and fires
them, a batch per append.

Each fires once per ticket and deadline, however many processes run and however often they ask:
the ticket refuses a second warning or breach (``Ticket.warn``/``breach`` answer False), and two
processes firing the same ticket at once collide on its next version, so the later append is
refused whole and its tickets are looked at again on the next round, by then fired. A process that
was down when something fell due finds it due when it comes back and fires it then, late, once."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from crm_shared.domain import CrmAggregate
from services.service_desk.application.base import timer_meta
from services.service_desk.application.tickets import Tickets
from services.service_desk.domain.sla import Due
from services.service_desk.domain.ticket import Ticket

log = logging.getLogger("crm.service_desk.timers")
DUE_PARTITIONS = 8
IDLE_ROUNDS = 3


@dataclass
class Fired:
    warnings: int = 0
    breaches: int = 0
    auto_closed: int = 0
    overtaken: int = 0  # appended by another process first: looked at again next round
    looked_at: int = 0

    @property
    def total(self) -> int:
        return self.warnings + self.breaches + self.auto_closed

    def add(self, other: Fired) -> None:
        for name in ("warnings", "breaches", "auto_closed", "overtaken", "looked_at"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Timers(Tickets):
    @functools.cached_property
    def _partition_picks(self) -> random.Random:
        return random.Random()

    def fire_due(self, batch_size: int = 200, between: Callable[[], None] = lambda: None) -> Fired:
        """Fire what is due now, one batch (up to ``batch_size`` tickets) per append, until
        nothing due is left that this process could fire; ``between`` runs between batches (a
        service yields to its requests there)."""
        fired = Fired()
        idle_rounds = 0
        while idle_rounds < IDLE_ROUNDS:
            batch = self.fire_due_batch(batch_size)
            fired.add(batch)
            if batch.looked_at == 0:
                break
            # A round that fired nothing took tickets another process fired first, or not due
            # after all: a few in a row, and what is left is the other process's to finish.
            idle_rounds = 0 if batch.total else idle_rounds + 1
            between()
        return fired

    def fire_due_batch(self, batch_size: int = 200) -> Fired:
        """One batch of what is due, the longest due first. With more due than a batch, the batch
        is one of ``DUE_PARTITIONS`` slices (by ticket id) of the next due, picked at random, so
        that processes firing at once mostly take different tickets instead of all racing for
        the same ones."""
        self.tables.catch_up()
        rows = self.tables.due(self.now(), batch_size * DUE_PARTITIONS)
        if len(rows) > batch_size:
            part = self._partition_picks.randrange(DUE_PARTITIONS)
            mine = [r for r in rows if int(str(r["ticket_id"])[:8], 16) % DUE_PARTITIONS == part]
            rows = mine[:batch_size] or rows[:batch_size]
        return self._fire(rows) if rows else Fired()

    def _fire(self, rows: list[dict[str, object]]) -> Fired:
        now = self.now()
        fired = Fired(looked_at=len(rows))
        changed: list[CrmAggregate] = []
        for row in rows:
            ticket = self.find(Ticket, str(row["ticket_id"]))
            if ticket is None:
                continue
            changed.extend(self._fire_ticket(ticket, now, fired))
        if not changed:
            return fired
        try:
            self.save(*changed)
        except IntegrityError:
            # Another process fired some of these first: fire the rest one ticket at a time.
            return self._fire_one_by_one(rows, now)
        return fired

    def _fire_ticket(self, ticket: Ticket, now: datetime, fired: Fired) -> list[CrmAggregate]:
        if ticket.state == "resolved":
            meta = timer_meta(ticket, Due.AUTO_CLOSE, ticket.auto_close_at or now)
            if ticket.auto_close(at=now, meta=meta):
                fired.auto_closed += 1
                return [ticket, *self.call_back_for(ticket, meta)]
            return []
        warnings, breaches = self.fire_fallen_due(ticket, now)
        fired.warnings += warnings
        fired.breaches += breaches
        return [ticket] if warnings or breaches else []

    def _fire_one_by_one(self, rows: list[dict[str, object]], now: datetime) -> Fired:
        fired = Fired(looked_at=len(rows))
        for row in rows:
            ticket = self.find(Ticket, str(row["ticket_id"]))
            if ticket is None:
                continue
            one = Fired()
            changed = self._fire_ticket(ticket, now, one)
            if not changed:
                continue
            try:
                self.save(*changed)
                fired.add(one)
            except IntegrityError:
                fired.overtaken += 1
        return fired
