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
    ``complaints.$.status``, where ``$`` is the ``element``); ``push`` adds to top-level lists
    (kept in ``LIST_ORDER``), ``inc`` adds to top-level counters. The bookkeeping every event does
    (its version, the revision, the last event time) is added by ``project`` and by the store, not
    by the event's change."""

    set: Mapping[str, Any] = field(default_factory=dict)
    push: Mapping[str, Any] = field(default_factory=dict)
    inc: Mapping[str, int] = field(default_factory=dict)
    element: Element | None = None
