"""Idempotent commands: the same ``command_id`` takes effect once and gets the first answer again,
for every command of every context, by one mechanism.

A command handler decides; it does not save. It returns a ``Decision``: the answer for the caller
and the aggregates it changed. ``@command`` appends the changed aggregates' events together with a
``CommandRecord`` (the answer, keyed by the command id) in one atomic append. So:

- a repeat whose handler refuses (the complaint is closed already, the national id is claimed)
  finds the record and answers as the first time did;
- a repeat whose handler succeeds again collides on the record's first version, so its events are
  not appended either, and it answers from the record;
- a refused command appends nothing, not even a record: sent again, it is decided again; so does
  a command that changes nothing (a profile update to the values it has).

The record costs one small internal event per command, read only on the refusal or conflict path."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_shared.domain import CommandMeta, CrmAggregate, json_ready
from crm_shared.errors import ConcurrencyConflict, CrmError, ValidationFailed
from crm_shared.eventstore import CrmApplication

COMMAND_NAMESPACE = uuid.UUID("7f3a9c1e-64b2-4d0f-9e85-2c1b7a4d6e90")

Answer = dict[str, Any]
P = ParamSpec("P")
App = TypeVar("App", bound=CrmApplication)


class Repeated(dict[str, Any]):
    """The first answer, given again to a command sent again: the reply says ``repeated``, so that
    a caller retrying (an import run twice) can tell what took effect now from what had before."""


@dataclass(frozen=True)
class Decision:
    answer: Answer
    changed: tuple[CrmAggregate, ...] = ()
    # Called when the append collides and this was not a repeat of the command: it may raise the
    # refusal the collision means (a national id claimed meanwhile), so that a check can be left to
    # the atomic append instead of a read on every command; or answer the decision to store in its
    # place, once (a national id whose customer was erased is claimed again). Otherwise:
    # concurrency_conflict.
    explain_conflict: Callable[[], Decision | None] | None = None
    # Done once the append succeeded (not for a repeat): what must follow the recorded fact.
    then: Callable[[], None] | None = None


class CommandRecord(CrmAggregate):
    """What one command answered. Internal: never published."""

    class Recorded(CrmAggregate.Created):
        operation: str
        fingerprint: str
        answer: dict[str, Any]

    operation: str
    fingerprint: str
    answer: dict[str, Any]

    @staticmethod
    def id_for(command_id: str) -> uuid.UUID:
        return uuid.uuid5(COMMAND_NAMESPACE, command_id)

    @classmethod
    def record(cls, operation: str, fingerprint: str, answer: Answer, meta: CommandMeta) -> CommandRecord:
        return cls._create(
            cls.Recorded,
            id=cls.id_for(meta.causation_id),
            meta=meta.as_event_meta(),
            operation=operation,
            fingerprint=fingerprint,
            answer=answer,
        )


def fingerprint(operation: str, data: dict[str, Any], key: bytes | None = None) -> str:
    """The same operation with the same validated payload has the same fingerprint. Keyed (HMAC)
    where the application has a key, since a payload may hold personal data that a plain hash
    would give away to a guess (a phone number has few enough values to try them all)."""
    canonical = json.dumps([operation, json_ready(data)], sort_keys=True, separators=(",", ":")).encode()
    if key is not None:
        return hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical).hexdigest()


def recorded_answer(
    app: CrmApplication, operation: str, data: dict[str, Any], meta: CommandMeta
) -> Answer | None:
    """The first answer to this command id, if it took effect; refuses a command id reused for a
    different command."""
    try:
        record: CommandRecord = app.repository.get(CommandRecord.id_for(meta.causation_id))
    except AggregateNotFoundError:
        return None
    if record.operation != operation or record.fingerprint != fingerprint(
        operation, data, app.fingerprint_key
    ):
        raise ValidationFailed.single(
            "command_id",
            "reused",
            f"this command_id was used for another command ({record.operation}); send a new "
            "command_id with every new command, and the same one only to retry the same command",
        )
    return Repeated(record.answer)


def command(
    handler: Callable[Concatenate[App, dict[str, Any], CommandMeta, P], Decision],
) -> Callable[Concatenate[App, dict[str, Any], CommandMeta, P], Answer]:
    """Make an application's command handler idempotent on ``meta.causation_id`` (the command id)."""
    operation = handler.__name__

    @functools.wraps(handler)
    def run(self: App, data: dict[str, Any], meta: CommandMeta, *args: P.args, **kwargs: P.kwargs) -> Answer:
        try:
            decision = handler(self, data, meta, *args, **kwargs)
        except CrmError:
            if (first := recorded_answer(self, operation, data, meta)) is not None:
                return first
            raise
        if not decision.changed:  # it stores nothing; a repeat of one that did gets its answer
            return recorded_answer(self, operation, data, meta) or decision.answer
        for attempt in (1, 2):
            record = CommandRecord.record(
                operation, fingerprint(operation, data, self.fingerprint_key), decision.answer, meta
            )
            try:
                self.save(*decision.changed, record)
                break
            except IntegrityError:
                if (first := recorded_answer(self, operation, data, meta)) is not None:
                    return first
                instead = decision.explain_conflict() if decision.explain_conflict and attempt == 1 else None
                if instead is None:
                    raise ConcurrencyConflict(
                        "another command changed this record at the same time; reload it and retry"
                    ) from None
                decision = instead
            except CrmError:  # refused while storing (a subject erased meanwhile): a repeat answers
                if (first := recorded_answer(self, operation, data, meta)) is not None:
                    return first
                raise
        if decision.then is not None:
            decision.then()
        return decision.answer

    return run
