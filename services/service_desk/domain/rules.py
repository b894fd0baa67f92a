"""The service desk's rules kept as data (``services/service_desk/config``): SLA targets per kind of
ticket and priority, the warning share, the waits for confirmation and for reopening, the call-back
delay, the queues with their team leads, and the category tree. A deployment points
``CRM_DESK_CONFIG`` (and ``CRM_DESK_CATEGORIES``) at its own files; changing a target moves the
deadlines of tickets opened afterwards only, since each ticket keeps the target it was opened with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from contracts import fields
from crm_shared.errors import ValidationFailed

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class DeskConfigError(RuntimeError):
    """The desk's configuration is not usable: the message says which entry and why."""


@dataclass(frozen=True)
class Queue:
    queue_id: str
    name: str
    lead_user_id: str


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    queue_id: str  # its top-level node's queue


@dataclass(frozen=True)
class DeskRules:
    version: str
    sla_hours: Mapping[str, Mapping[str, int]]
    warning_share: float
    auto_close_after: timedelta
    reopen_within: timedelta
    call_back_after: timedelta
    queues: Mapping[str, Queue]
    complaint_queue: str
    categories: Mapping[str, Category]

    def sla_target(self, kind: str, priority: str) -> timedelta:
        return timedelta(hours=self.sla_hours[kind][priority])

    def category(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise ValidationFailed.single(
                "category", "unknown_category", f"no category {code!r}; see 'crm ticket categories'"
            ) from None

    def queue(self, queue_id: str, field: str = "queue_id") -> Queue:
        try:
            return self.queues[queue_id]
        except KeyError:
            known = ", ".join(sorted(self.queues))
            raise ValidationFailed.single(
                field, "unknown_queue", f"no queue {queue_id!r}; one of {known}"
            ) from None

    def queue_for(self, kind: str, category: str) -> Queue:
        """Where a new ticket goes: complaints to the complaint queue, the rest by category."""
        if kind == "complaint":
            return self.queues[self.complaint_queue]
        return self.queues[self.category(category).queue_id]

    @classmethod
    def load(cls, config: Path | None = None, categories: Path | None = None) -> DeskRules:
        config = config or CONFIG_DIR / "desk.json"
        categories = categories or CONFIG_DIR / "categories.json"
        try:
            return cls.from_data(json.loads(config.read_text()), json.loads(categories.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DeskConfigError(
                f"the desk configuration ({config}, {categories}) is not usable: {e}"
            ) from e

    @classmethod
    def from_data(cls, desk: dict[str, Any], tree: dict[str, Any]) -> DeskRules:
        for kind in fields.TICKET_KINDS:
            for priority in fields.PRIORITIES:
                hours = desk["sla_hours"][kind][priority]
                if not isinstance(hours, int) or hours <= 0:
                    raise DeskConfigError(f"sla_hours.{kind}.{priority} must be a positive number of hours")
        share = float(desk["warning_share"])
        if not 0 < share < 1:
            raise DeskConfigError("warning_share must lie between 0 and 1 (0.75: at three quarters)")
        queues = {
            queue_id: Queue(queue_id, q["name"], q["lead_user_id"]) for queue_id, q in desk["queues"].items()
        }
        if desk["complaint_queue"] not in queues:
            raise DeskConfigError(f"complaint_queue {desk['complaint_queue']!r} is not one of the queues")
        categories: dict[str, Category] = {}

        def walk(node: dict[str, Any], queue_id: str) -> None:
            if node["code"] in categories:
                raise DeskConfigError(f"category {node['code']!r} appears twice")
            categories[node["code"]] = Category(node["code"], node["name"], queue_id)
            for child in node.get("children", []):
                if not child["code"].startswith(node["code"] + "."):
                    raise DeskConfigError(f"category {child['code']!r} must start with {node['code']}.")
                walk(child, queue_id)

        for top in tree["categories"]:
            if top["queue"] not in queues:
                raise DeskConfigError(f"category {top['code']!r} names no known queue ({top['queue']!r})")
            walk(top, top["queue"])
        return cls(
            version=str(desk["version"]),
            sla_hours={k: dict(v) for k, v in desk["sla_hours"].items()},
            warning_share=share,
            auto_close_after=timedelta(days=int(desk["auto_close_days"])),
            reopen_within=timedelta(days=int(desk["reopen_days"])),
            call_back_after=timedelta(hours=int(desk["call_back_after_hours"])),
            queues=queues,
            complaint_queue=desk["complaint_queue"],
            categories=categories,
        )

    def category_tree(self) -> list[dict[str, Any]]:
        """The categories in tree order, for the CLI and the desk's pick lists."""
        return [
            {"code": c.code, "name": c.name, "queue_id": c.queue_id, "depth": c.code.count(".")}
            for c in self.categories.values()
        ]
