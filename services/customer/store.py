"""The customer context's store: its events, with each customer's personal data sealed under that
customer's own key (``crm_shared.crypto``), and the tables kept beside it (owners and book
transfers, duplicate lookups, the customers' keys)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import tzinfo

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import Environment, EnvType, get_topic, resolve_topic

from crm_shared.clock import Clock, utc_now
from crm_shared.crypto import KeysAppendedWithEvents, SealingMapper, SubjectKeys, data_key_from, subkey
from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import LocalTables
from services.customer.matching import MatchIndex
from services.customer.owners import POSITIONS, OwnerIndex

SUBJECT_KEYS = "customer_subject_keys"


class CustomerSQLiteRecorder(KeysAppendedWithEvents, SQLiteApplicationRecorder):
    keys_table = SUBJECT_KEYS


class CustomerPostgresRecorder(KeysAppendedWithEvents, PostgresApplicationRecorder):  # type: ignore[misc]
    keys_table = SUBJECT_KEYS
    placeholder = "%s"


RECORDERS = {
    "eventsourcing.sqlite": CustomerSQLiteRecorder,
    "eventsourcing.postgres": CustomerPostgresRecorder,
}


@functools.cache
def is_sealed_topic(topic: str) -> bool:
    return bool(getattr(resolve_topic(topic), SealingMapper.PERSONAL, ()))


class CustomerStore(CrmApplication):
    def __init__(
        self, env: EnvType | None = None, clock: Clock = utc_now, zone: tzinfo | None = None
    ) -> None:
        super().__init__(env, clock, zone)
        self.data_key = data_key_from(self.env)
        self.fingerprint_key = subkey(self.data_key, b"command fingerprints")
        tables = LocalTables(self)
        self.subject_keys = SubjectKeys(tables, SUBJECT_KEYS, self.data_key)
        if tables.creates_tables:
            self.subject_keys.create_tables()
        assert isinstance(self.mapper, SealingMapper)
        self.mapper.keys = self.subject_keys
        self.mapper.keys_in_append = isinstance(self.recorder, KeysAppendedWithEvents)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The store's recorder appends a customer's new key with its first event."""
        built = super().construct_env(name, env)
        recorder = RECORDERS.get(built.get("PERSISTENCE_MODULE", ""))
        if recorder is not None and not built.get("APPLICATION_RECORDER_TOPIC"):
            built["APPLICATION_RECORDER_TOPIC"] = get_topic(recorder)
        return built

    def before_decoding(self, notifications: Sequence[Notification]) -> None:
        self.subject_keys.prefetch(str(n.originator_id) for n in notifications if is_sealed_topic(n.topic))

    def construct_mapper(self) -> Mapper:
        return SealingMapper(transcoder=self.construct_transcoder())

    @functools.cached_property
    def owners(self) -> OwnerIndex:
        return OwnerIndex(self, self.subject_keys)

    @functools.cached_property
    def matches(self) -> MatchIndex:
        self.owners  # noqa: B018 (its table is joined: create it first)
        return MatchIndex(self, self.data_key, POSITIONS)

    def create_own_tables(self) -> None:
        self.subject_keys.create_tables()
        self.owners.create_tables()
        self.matches.create_tables()

    def catch_up_indexes(self) -> int:
        """Bring the owner and duplicate tables up to the store; how many notifications were read."""
        return self.owners.catch_up() + self.matches.catch_up()
