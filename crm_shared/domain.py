"""The shared kernel of the write-side domains: an aggregate base whose events carry who caused them
and under which public name they are published. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from crm_shared.auth import Caller

REACTION_NAMESPACE = uuid.UUID("b5d3e7a1-2c84-4f09-9a6e-7e1f0c3b8d42")
_BASE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


@dataclass(frozen=True)
class CommandMeta:
    """Why an event happened: the request it belongs to, the command that caused it (also the
    command's idempotency key) and who asked."""

    correlation_id: str
    causation_id: str
    actor: Caller

    def derived_id(self, namespace: uuid.UUID) -> uuid.UUID:
        """An id that the same command always gets, so that running it twice collides on the
        aggregate's first version instead of creating a second aggregate."""
        return uuid.uuid5(namespace, self.causation_id)

    def as_event_meta(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "actor": self.actor.as_actor(),
        }

    @classmethod
    def new(cls, actor: Caller, correlation_id: str | None = None) -> CommandMeta:
        return cls(correlation_id or str(uuid.uuid4()), str(uuid.uuid4()), actor)

    @classmethod
    def for_reaction(cls, envelope: dict[str, Any], reaction: str, actor: Caller) -> CommandMeta:
        """The command a process manager issues for an event: its id comes from the event and the
        reaction's name, so a redelivered event is the same command and has its effect once."""
        return cls(
            correlation_id=str(envelope["correlation_id"]),
            causation_id=str(uuid.uuid5(REACTION_NAMESPACE, f"{reaction}:{envelope['event_id']}")),
            actor=actor,
        )


def json_ready(value: Any) -> Any:
    """Event attribute values as plain JSON types (decimals as strings, dates in ISO 8601)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@functools.cache
def _payload_fields(event_class: type) -> tuple[str, ...]:
    """The fields an event publishes: all but the stored bookkeeping, the command's meta and the
    fields the event keeps to its own context (``PRIVATE``)."""
    private: frozenset[str] = getattr(event_class, "PRIVATE", frozenset())
    return tuple(
        f.name
        for f in dataclasses.fields(event_class)
        if f.name not in _BASE_FIELDS and f.name != "meta" and f.name not in private
    )


def _system_time() -> datetime:
    return datetime.now(UTC)


# When an event happened: the system clock, or the clock a test moves (``crm_shared.clock``), set
# once per process from its settings, so a history made under a moved clock is dated by it.
_event_clock: list[Callable[[], datetime]] = [_system_time]


def use_event_clock(clock: Callable[[], datetime]) -> None:
    _event_clock[0] = clock


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class CrmAggregate(Aggregate):
    class Event(Aggregate.Event):
        # correlation_id, causation_id and actor of the command that caused the event.
        meta: dict[str, Any]
        # The public event type ("<context>.<event>"); None keeps an event internal.
        EVENT_TYPE: ClassVar[str | None] = None
        SCHEMA_VERSION: ClassVar[int] = 1
        # Fields stored but not published: free text a customer confided stays in its context.
        PRIVATE: ClassVar[frozenset[str]] = frozenset()

        def public_payload(self) -> dict[str, Any]:
            return {name: json_ready(getattr(self, name)) for name in _payload_fields(type(self))}

        @staticmethod
        def create_timestamp() -> datetime:
            # In UTC whatever offset the clock gives: stored times compare as text.
            return _event_clock[0]().astimezone(UTC)

        @property
        def aggregate_type(self) -> str:
            return _snake(type(self).__qualname__.split(".")[0])

    class Created(Event, Aggregate.Created):
        pass
