"""What one event does to a customer's 360 document (``Change``), in the terms the store applies
as one guarded update and ``customer_360.project`` applies in Python."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Document = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Element:
    """The item of a list a change's ``$`` refers to: the one whose ``key`` equals ``value``."""

    array: str
    key: str
    value: Any


@dataclass(frozen=True)
class Change:
    """What one event does to a document. ``set`` paths are dotted (``profile`` or
    ``tickets.$.status``, where ``$`` is the ``element``); ``push`` adds to top-level lists
    (kept in ``LIST_ORDER``), ``inc`` adds to top-level counters.

    ``holder`` is where the version of the event's aggregate is kept: the list item that stands for
    the aggregate (a policy, a ticket, an activity), which keeps it as ``v``, or None for the
    customer's own record (``record_version``). The bookkeeping is one number per item, however
    many aggregates touch the customer. The event that pushes its holder creates it at version 1.
    The bookkeeping every event does (its version, the revision, the last event time) is added by
    ``project`` and by the store, not by the event's change."""

    set: Mapping[str, Any] = field(default_factory=dict)
    push: Mapping[str, Any] = field(default_factory=dict)
    inc: Mapping[str, int] = field(default_factory=dict)
    element: Element | None = None
    holder: Element | None = None

    @property
    def creates_holder(self) -> bool:
        holder = self.holder
        return holder is not None and self.push.get(holder.array, {}).get(holder.key) == holder.value
