"""Personal data sealed per customer, erased by deleting the key; duplicate candidates; the merge
rules. No I/O: the keys are kept in a dict here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, UUIDAsHex

from crm_shared.auth import Caller, Role
from crm_shared.crypto import ERASED, SEALED, SealingMapper, blind_index, seal, unseal
from crm_shared.domain import CommandMeta
from crm_shared.errors import CustomerMerged, InvalidState, ValidationFailed
from crm_shared.eventstore import DateAsISO
from services.customer.domain import Customer, merge_refusal
from services.customer.matching import duplicate_candidates, match_values, normalised_name
from tests.support import registered_customer

DATA_KEY = bytes(range(32))
NAME, NATIONAL_ID, PHONE = "Li Wei", "11010519491231002X", "13800138000"
FULLWIDTH_LI_WEI = "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "Li Wei")


def meta(n: int = 0) -> CommandMeta:
    return CommandMeta(f"corr-{n}", f"command-{n}", Caller("op", Role.OPERATOR))


class KeysInADict:
    """The two questions ``SealingMapper`` asks of ``SubjectKeys``."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    def key_for(self, subject: str) -> bytes | None:
        return self.keys.get(subject)

    def key_to_seal(self, subject: str) -> bytes:
        return self.keys.setdefault(subject, bytes(32 * [len(self.keys) + 1])) or b""

    def shred(self, subject: str) -> None:
        self.keys[subject] = None


def mapper() -> tuple[SealingMapper, KeysInADict]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    sealing = SealingMapper(transcoder=transcoder)
    keys = KeysInADict()
    sealing.keys = keys  # type: ignore[assignment]
    return sealing, keys


def customer(n: int = 0, name: str = NAME, phone: str = PHONE) -> Customer:
    return registered_customer(meta(n), full_name=name, mobile_phone=phone, email="li@example.cn")


def test_personal_fields_are_stored_sealed_and_read_back_whole() -> None:
    sealing, _ = mapper()
    event = customer().collect_events()[0]
    stored = sealing.to_stored_event(event)
    for value in (NAME, NATIONAL_ID, PHONE, "li@example.cn", "1949-12-31", "Beijing"):
        assert value.encode() not in stored.state
    assert SEALED.encode() in stored.state and b"A-1" in stored.state  # the facts stay readable
    back = sealing.to_domain_event(stored)
    assert back.public_payload() == event.public_payload()


def test_after_the_key_is_shredded_the_facts_read_and_the_person_does_not() -> None:
    sealing, keys = mapper()
    record = customer()
    record.update_profile({"mobile_phone": "13700000001"}, "new phone", meta(1))
    stored = [sealing.to_stored_event(e) for e in record.collect_events()]
    keys.shred(str(record.id))
    registered, updated = (sealing.to_domain_event(s) for s in stored)
    payload = registered.public_payload()
    assert payload["owning_agent_id"] == "A-1" and payload["customer_id"] == str(record.id)
    assert payload["full_name"] is None and payload["national_id"] is None and payload["address"] is None
    assert vars(registered)[ERASED] is True
    assert updated.public_payload()["changes"] is None and updated.reason == "new phone"
    rebuilt = updated.mutate(registered.mutate(None))  # the customer still exists, nobody in it
    assert isinstance(rebuilt, Customer)
    assert (rebuilt.full_name, rebuilt.mobile_phone, rebuilt.owning_agent_id) == (None, None, "A-1")


def test_a_sealed_value_opens_only_with_its_key_and_for_its_subject() -> None:
    key = bytes(32)
    sealed = seal(key, b"Li Wei", "customer-1")
    assert unseal(key, sealed, "customer-1") == b"Li Wei"
    with pytest.raises(InvalidTag):
        unseal(key, sealed, "customer-2")  # moved to another customer's event
    with pytest.raises(InvalidTag):
        unseal(bytes([1]) * 32, sealed, "customer-1")
    assert seal(key, b"Li Wei", "customer-1") != sealed  # a fresh nonce each time


def test_blind_index_is_keyed() -> None:
    assert blind_index(DATA_KEY, "phone:13800138000") == blind_index(DATA_KEY, "phone:13800138000")
    assert blind_index(DATA_KEY, "phone:13800138000") != blind_index(bytes(32), "phone:13800138000")
    assert "13800138000" not in blind_index(DATA_KEY, "phone:13800138000")


def test_duplicate_candidates_by_phone_or_by_name_and_birth_date() -> None:
    spellings = (" LI  Wei ", "li·wei", FULLWIDTH_LI_WEI)
    assert {normalised_name(s) for s in spellings} == {"liwei"}
    values = match_values("Li Wei", "+8613800138000", date(1949, 12, 31))
    assert values == {
        "same_mobile_phone": "phone:13800138000",
        "same_name_and_date_of_birth": "name:liwei|1949-12-31",
    }
    assert match_values(None, None, None) == {}  # an erased record matches nothing
    rows = [
        {"customer_id": "c-2", "reason": "same_mobile_phone"},
        {"customer_id": "c-3", "reason": "same_name_and_date_of_birth"},
        {"customer_id": "c-3", "reason": "same_mobile_phone"},
        {"customer_id": "c-1", "reason": "same_mobile_phone"},
    ]
    assert duplicate_candidates(rows, exclude="c-1") == [
        {"customer_id": "c-3", "reasons": ["same_mobile_phone", "same_name_and_date_of_birth"]},
        {"customer_id": "c-2", "reasons": ["same_mobile_phone"]},
    ]


def test_merge_rules() -> None:
    survivor, duplicate, third = customer(1), customer(2), customer(3)
    assert merge_refusal(survivor, survivor).fields[0].rule == "same_customer"  # type: ignore[union-attr]
    duplicate.merge_into(survivor, "same person", meta(4))
    assert duplicate.merged_into == str(survivor.id) and survivor.merged_from == [str(duplicate.id)]
    assert [e.EVENT_TYPE for e in duplicate.collect_events()][-1] == "customer.merged"
    assert [e.EVENT_TYPE for e in survivor.collect_events()][-1] == "customer.duplicate_merged"
    with pytest.raises(CustomerMerged) as refused:
        duplicate.require_open()
    assert refused.value.survivor_id == str(survivor.id)
    with pytest.raises(CustomerMerged):  # merged already
        duplicate.merge_into(third, "again", meta(5))
    with pytest.raises(CustomerMerged):
        third.merge_into(duplicate, "into a merged record", meta(6))
    third.erase("request", "DSR-1", meta(7))
    with pytest.raises(ValidationFailed) as erased:
        third.merge_into(survivor, "erased", meta(8))
    assert erased.value.fields[0].rule == "erased"
    with pytest.raises(InvalidState):
        third.require_open()
    assert third.full_name is None and third.national_id is None and third.owning_agent_id == "A-1"


def test_a_survivor_is_merged_nowhere_and_an_erased_one_is_contacted_never() -> None:
    survivor, duplicate, other = customer(11), customer(12), customer(13)
    duplicate.merge_into(survivor, "same person", meta(14))
    with pytest.raises(ValidationFailed) as refused:
        survivor.merge_into(other, "a chain", meta(15))
    assert refused.value.fields[0].rule == "has_duplicates"
    form = {"kind": "form", "reference": "F-1"}
    now = datetime(2026, 12, 1, tzinfo=UTC)
    survivor.record_consent("sms", "marketing", "granted", form, now - timedelta(days=2), now, meta(16))
    duplicate.record_consent("sms", "marketing", "withdrawn", form, now - timedelta(days=1), now, meta(17))
    # The withdrawal on the duplicate, given later, holds for the person.
    assert survivor.may_contact("sms", "marketing").allowed
    assert survivor.may_contact("sms", "marketing", [duplicate]).reason == "consent_withdrawn"
    other.record_consent("sms", "service", "granted", form, now, now, meta(18))
    other.erase("request", "DSR-2", meta(19))
    assert other.may_contact("sms", "service").reason == "erased"
