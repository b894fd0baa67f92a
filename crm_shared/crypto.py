"""Personal data sealed under a key of its own data subject, so that deleting one key erases the
person from every stored event at once (crypto-shredding), while the facts beside the data (who
owns the customer, which policies exist) stay readable.

- An event class names its ``PERSONAL_FIELDS``. ``SealingMapper`` stores those fields as one
  AES-GCM ciphertext under the key of the event's aggregate (its subject), bound to the subject's
  id; every other field stays as it was.
- Subject keys live in a table beside the store (``SubjectKeys``), each wrapped with AES-GCM under
  the deployment's data key (``CRM_DATA_KEY``): a copy of the store without the data key reads no
  personal data.
- ``shred`` deletes a subject's key for good. Reading the subject's events afterwards gives None for
  each personal field, and ``personal_data_erased`` on the event.
- ``blind_index`` gives the keyed hash of a value to look it up by (a phone, a name), so an index
  holds no personal data either.

AES-GCM comes from the ``cryptography`` package (OpenSSL). eventsourcing's own cipher encrypts
a whole event under one application key: it cannot erase one person, and it would hide the facts
that must outlive the erasure too."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent

from crm_shared.errors import InvalidState
from crm_shared.local_tables import Cursor, LocalTables

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED = "sealed_personal_data"
ERASED = "personal_data_erased"
# How long a process may use a subject key it read: an erasure made by another process is in
# force everywhere within this.
KEY_TTL_SECONDS = 2.0
KEY_CACHE_SIZE = 10_000


class DataKeyError(RuntimeError):
    pass


class SubjectErased(InvalidState):
    """Personal data was to be sealed for a subject whose key was shredded: a command refused."""


def parse_data_key(text: str | None) -> bytes:
    """The deployment's data key from its text form (URL-safe base64 of 32 random bytes)."""
    if not text:
        raise DataKeyError(
            "CRM_DATA_KEY (or CRM_DATA_KEY_FILE) must hold the data key that protects personal "
            "data at rest; generate one with: python -c 'import base64, os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
        )
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise DataKeyError("CRM_DATA_KEY is not URL-safe base64") from None
    if len(key) != KEY_BYTES:
        raise DataKeyError(f"CRM_DATA_KEY must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def new_data_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def subkey(data_key: bytes, purpose: bytes) -> bytes:
    return hmac.new(data_key, b"crm subkey:" + purpose, hashlib.sha256).digest()


def blind_index(data_key: bytes, value: str) -> str:
    """A keyed hash to find a value by without storing it: without the data key, a guess cannot be
    checked against it."""
    return hmac.new(subkey(data_key, b"blind index"), value.encode(), hashlib.sha256).hexdigest()[:40]


def seal_text(key: bytes, text: str, subject: str) -> str:
    return base64.b64encode(seal(key, text.encode(), subject)).decode()


def unseal_text(key: bytes, sealed: str, subject: str) -> str:
    return unseal(key, base64.b64decode(sealed), subject).decode()


def seal(key: bytes, plaintext: bytes, subject: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, subject.encode())


def unseal(key: bytes, sealed: bytes, subject: str) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], subject.encode())


class SubjectKeys:
    """One AES-256 key per subject, wrapped under the data key, in ``table`` beside the store. A
    shredded subject keeps its row without the key, so that it is never given a new one."""

    def __init__(self, tables: LocalTables, table: str, data_key: bytes) -> None:
        self.tables = tables
        self.table = table
        self._wrapping = AESGCM(subkey(data_key, b"key wrapping"))
        self._cache: dict[str, tuple[float, bytes | None]] = {}

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "subject_id TEXT PRIMARY KEY, wrapped_key TEXT, created_at TEXT NOT NULL, shredded_at TEXT)"
        )

    def _wrap(self, key: bytes, subject: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return base64.b64encode(nonce + self._wrapping.encrypt(nonce, key, subject.encode())).decode()

    def _unwrap(self, wrapped: str | None, subject: str) -> bytes | None:
        if wrapped is None:
            return None
        blob = base64.b64decode(wrapped)
        try:
            return self._wrapping.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], subject.encode())
        except InvalidTag:
            raise DataKeyError(
                f"the key of subject {subject} does not open with this CRM_DATA_KEY: the store was "
                "written under another data key"
            ) from None

    def _remember(self, subject: str, key: bytes | None) -> None:
        if len(self._cache) >= KEY_CACHE_SIZE:
            self._cache.clear()
        self._cache[subject] = (time.monotonic() + KEY_TTL_SECONDS, key)

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Read the keys of many subjects in one query (a relay's or a rebuild's batch)."""
        now = time.monotonic()
        wanted = sorted({s for s in subjects if (e := self._cache.get(s)) is None or e[0] < now})
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.tables.query(
                f"SELECT subject_id, wrapped_key FROM {self.table} WHERE subject_id IN ({marks})", chunk
            )
            for row in rows:
                self._remember(row["subject_id"], self._unwrap(row["wrapped_key"], row["subject_id"]))

    def key_for(self, subject: str) -> bytes | None:
        """The subject's key; None if it was shredded or never made."""
        entry = self._cache.get(subject)
        if entry is not None and entry[0] >= time.monotonic():
            return entry[1]
        rows = self.tables.query(f"SELECT wrapped_key FROM {self.table} WHERE subject_id = ?", (subject,))
        key = self._unwrap(rows[0]["wrapped_key"], subject) if rows else None
        if rows:
            self._remember(subject, key)
        return key

    def new_key(self, subject: str) -> tuple[bytes, tuple[str, str, str]]:
        """A fresh key for a subject's first event, and its row for the append to store. Not cached:
        until that append commits it is nobody's key."""
        fresh = os.urandom(KEY_BYTES)
        return fresh, (subject, self._wrap(fresh, subject), datetime.now(UTC).isoformat())

    def key_to_seal(self, subject: str) -> bytes:
        """The subject's key, made on first use in a transaction of its own (for a store whose
        recorder does not append new keys with their events); refuses a shredded subject."""
        key = self.key_for(subject)
        if key is not None:
            return key
        fresh, row = self.new_key(subject)
        with self.tables.transaction() as cursor:
            made = cursor.execute(
                f"INSERT INTO {self.table} (subject_id, wrapped_key, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (subject_id) DO NOTHING",
                row,
            )
        if made == 1:
            self._remember(subject, fresh)
            return fresh
        self._cache.pop(subject, None)  # another process made it first, or it was shredded
        key = self.key_for(subject)
        if key is None:
            raise SubjectErased(f"subject {subject} was erased: no personal data may be recorded for it")
        return key

    def shred(self, subjects: Iterable[str]) -> None:
        """Delete the subjects' keys for good. On SQLite the freed bytes are zeroed and the
        write-ahead log truncated, so the wrapped keys are gone from the files as well."""
        with self.tables.transaction() as cursor:
            self.shred_with(cursor, subjects)
        self.tables.compact_log()

    def shred_with(self, cursor: Cursor, subjects: Iterable[str]) -> None:
        """``shred`` within the caller's transaction (a local projection's batch)."""
        if not self.tables.postgres:
            cursor.execute("PRAGMA secure_delete = ON")
        when = datetime.now(UTC).isoformat()
        table = self.table
        for subject in subjects:
            cursor.execute(
                f"INSERT INTO {table} (subject_id, wrapped_key, created_at, shredded_at) "
                "VALUES (?, NULL, ?, ?) ON CONFLICT (subject_id) DO UPDATE SET wrapped_key = NULL, "
                f"shredded_at = COALESCE({table}.shredded_at, excluded.shredded_at)",
                (subject, when, when),
            )
            self._remember(subject, None)

    def is_shredded(self, subject: str) -> bool:
        rows = self.tables.query(f"SELECT shredded_at FROM {self.table} WHERE subject_id = ?", (subject,))
        return bool(rows and rows[0]["shredded_at"])


@dataclass(frozen=True)
class StoredEventWithKey(StoredEvent):
    """A subject's first event, with the subject's new key (wrapped) to store in the same append."""

    new_key: tuple[str, str, str] = ("", "", "")  # subject, wrapped key, created at


class KeysAppendedWithEvents:
    """A recorder mixin: the new keys of a save's first events are inserted in the transaction that
    appends the events, so a registration costs no commit of its own, and no key outlives an
    append that failed. A key already there for a first event fails the append (plain INSERT):
    events sealed under a key not stored could never be read."""

    keys_table: ClassVar[str]
    placeholder: ClassVar[str] = "?"

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        marks = ", ".join([self.placeholder] * 3)
        for stored in stored_events:
            if isinstance(stored, StoredEventWithKey):
                c.execute(
                    f"INSERT INTO {self.keys_table} (subject_id, wrapped_key, created_at) VALUES ({marks})",
                    stored.new_key,
                )
        return super()._insert_events(c, stored_events, **kwargs)  # type: ignore[misc]


class SealingMapper(Mapper[uuid.UUID]):
    """A mapper that seals each event's ``PERSONAL_FIELDS`` under its aggregate's key. ``keys`` is
    given once the application's recorder exists (the key table lives beside the store);
    ``keys_in_append`` when that recorder stores a first event's new key with the event
    (``KeysAppendedWithEvents``)."""

    keys: SubjectKeys | None = None
    keys_in_append: bool = False
    PERSONAL: ClassVar[str] = "PERSONAL_FIELDS"

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        personal: tuple[str, ...] = getattr(type(domain_event), self.PERSONAL, ())
        if not personal:
            return super().to_stored_event(domain_event)
        assert self.keys is not None, "SealingMapper.keys is set by the application"
        subject = str(domain_event.originator_id)
        state = dict(vars(domain_event))
        secret = {name: state.pop(name) for name in personal}
        new_key: tuple[str, str, str] | None = None
        if domain_event.originator_version == 1 and self.keys_in_append:
            key, new_key = self.keys.new_key(subject)
        else:
            key = self.keys.key_to_seal(subject)
        sealed = seal(key, self.transcoder.encode(secret), subject)
        state[SEALED] = base64.b64encode(sealed).decode()
        clear = object.__new__(type(domain_event))
        object.__setattr__(clear, "__dict__", state)
        stored = super().to_stored_event(clear)
        if new_key is None:
            return stored
        return StoredEventWithKey(
            stored.originator_id, stored.originator_version, stored.topic, stored.state, new_key=new_key
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = super().to_domain_event(stored_event)
        state = vars(event)
        if SEALED not in state:
            return event
        assert self.keys is not None, "SealingMapper.keys is set by the application"
        subject = str(stored_event.originator_id)
        personal: tuple[str, ...] = getattr(type(event), self.PERSONAL, ())
        key = self.keys.key_for(subject)
        sealed = base64.b64decode(state.pop(SEALED))
        if key is None:
            state.update(dict.fromkeys(personal))
            state[ERASED] = True
        else:
            state.update(self.transcoder.decode(unseal(key, sealed, subject)))
        return event


def data_key_from(env: Any) -> bytes:
    """The data key from an environment: ``CRM_DATA_KEY``, or the file ``CRM_DATA_KEY_FILE`` names."""
    text = env.get("CRM_DATA_KEY")
    if not text and env.get("CRM_DATA_KEY_FILE"):
        text = Path(env.get("CRM_DATA_KEY_FILE")).read_text()
    return parse_data_key(text)
