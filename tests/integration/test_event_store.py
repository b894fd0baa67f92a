"""The write-side applications on their real event stores, SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from contracts import rpc
from contracts.events import validate_message
from crm_shared.auth import Caller, Role
from crm_shared.domain import CommandMeta
from crm_shared.errors import (
    ConcurrencyConflict,
    DuplicateCustomer,
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from crm_shared.eventstore import CrmApplication
from services.customer.application import CustomerApplication
from services.customer.domain import Customer
from services.customer.store import SUBJECT_KEYS
from services.sales.application import SalesApplication
from services.service_desk.application import ServiceDeskApplication
from tests.support import customer_payload, sales_force


class KnownCustomers:
    """The customer directory port, answered from a dict (the RPC adapter is tested end to end)."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    def owning_agent_of(self, customer_id: str) -> str:
        if customer_id not in self.owners:
            raise NotFound(customer_id)
        return self.owners[customer_id]


SALES_FORCE = sales_force()


def meta(caller: Caller) -> CommandMeta:
    return CommandMeta.new(caller)


def register(app: CustomerApplication, caller: Caller, **overrides: Any) -> str:
    data = rpc.RegisterCustomer().load(customer_payload(**overrides))
    return app.register_customer(data, meta(caller), SALES_FORCE)["customer_id"]


def test_register_and_read_back(store_env: dict[str, str], operator: Caller) -> None:
    app = CustomerApplication(env=store_env)
    customer_id = register(app, operator, full_name="Zhao Lei")
    reloaded = CustomerApplication(env=store_env)  # a second process sees the same store
    view = reloaded.get_customer({"customer_id": uuid.UUID(customer_id)}, meta(operator), SALES_FORCE)
    assert view["full_name"] == "Zhao Lei"
    assert view["owning_agent_id"] == "A-1001"


def test_duplicate_national_id_is_refused_and_appends_nothing(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    payload = customer_payload()
    first = register(app, operator, national_id=payload["national_id"])
    before = app.max_position()
    with pytest.raises(DuplicateCustomer) as refused:
        register(app, operator, national_id=payload["national_id"], full_name="Someone Else")
    assert refused.value.as_dict()["existing_customer_id"] == first
    assert app.max_position() == before


def test_racing_registrations_of_one_national_id_register_one_customer(
    store_env: dict[str, str], operator: Caller
) -> None:
    apps = [CustomerApplication(env=store_env) for _ in range(2)]
    national_id = customer_payload()["national_id"]
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def attempt(app: CustomerApplication) -> None:
        barrier.wait()
        try:
            outcomes.append(register(app, operator, national_id=national_id))
        except (DuplicateCustomer, ConcurrencyConflict) as e:
            outcomes.append(e)

    threads = [threading.Thread(target=attempt, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, str) for o in outcomes) == 1
    registered = [
        n
        for batch in apps[0].notifications(0)
        for n in batch
        if (e := apps[0].envelope(n)) and e["event_type"] == "customer.registered"
    ]
    assert len(registered) == 1


def test_agent_may_register_only_for_themselves(store_env: dict[str, str], agent: Caller) -> None:
    app = CustomerApplication(env=store_env)
    register(app, agent, owning_agent_id="A-1001")
    with pytest.raises(PermissionDenied):
        register(app, agent, owning_agent_id="A-2002")
    assert app.max_position() == 3  # the customer, its national id claim and the command record


def test_two_commands_on_one_version_apply_exactly_once(store_env: dict[str, str], operator: Caller) -> None:
    """Optimistic concurrency: both load version 1, the second append conflicts. The conflict is
    reported to the caller (``concurrency_conflict``), never retried blindly."""
    desk_a = ServiceDeskApplication(env=store_env)
    desk_b = ServiceDeskApplication(env=store_env)
    customer_id = str(uuid.uuid4())
    opened = desk_a.open_complaint(
        rpc.OpenComplaint().load(
            {
                "customer_id": customer_id,
                "channel": "phone",
                "category": "claims",
                "priority": "urgent",
                "description": "unpaid claim",
            }
        ),
        meta(operator),
        KnownCustomers({customer_id: "A-1"}),
    )
    ticket_id = uuid.UUID(opened["ticket_id"])
    first = desk_a.repository.get(ticket_id)
    second = desk_b.repository.get(ticket_id)
    assert first.version == second.version == 1
    first.close(reason="resolved", resolution="paid", satisfaction=5, at=desk_a.clock(), meta=meta(operator))
    second.close(
        reason="resolved", resolution="paid twice", satisfaction=1, at=desk_b.clock(), meta=meta(operator)
    )
    desk_a.save_or_conflict(first)
    with pytest.raises(ConcurrencyConflict):
        desk_b.save_or_conflict(second)
    reader = ServiceDeskApplication(env=store_env)
    final = reader.repository.get(ticket_id)
    assert final.version == 2 and final.resolution == "paid"


def test_unknown_customer_and_ticket_append_nothing(store_env: dict[str, str], operator: Caller) -> None:
    sales = SalesApplication(env=store_env)
    desk = ServiceDeskApplication(env=store_env)
    nobody = KnownCustomers({})
    with pytest.raises(ValidationFailed) as refused:
        sales.sell_policy(
            rpc.SellPolicy().load(
                {
                    "customer_id": str(uuid.uuid4()),
                    "product": "life",
                    "annual_premium": "100.00",
                    "start_date": "2027-01-01",
                    "term_years": 1,
                }
            ),
            meta(operator),
            nobody,
            sales,
        )
    assert refused.value.fields[0].rule == "unknown_customer"
    with pytest.raises(NotFound) as missing:
        desk.close_complaint(
            {"ticket_id": uuid.uuid4(), "resolution": "x", "satisfaction": 3}, meta(operator)
        )
    assert missing.value.fields[0].field == "ticket_id"
    assert sales.max_position() == 0 and desk.max_position() == 0


def test_stored_events_read_back_in_order_as_valid_contract_messages(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    ids = [register(app, operator) for _ in range(5)]
    messages = [m for batch in app.notifications(0, batch_size=3) for n in batch if (m := app.envelope(n))]
    assert [m["aggregate_id"] for m in messages] == ids
    positions = [m["global_position"] for m in messages]
    assert positions == sorted(positions)
    for message in messages:
        assert validate_message(message) == {}


def test_caller_roles_are_enforced_on_reads(store_env: dict[str, str], operator: Caller) -> None:
    app = CustomerApplication(env=store_env)
    customer_id = uuid.UUID(register(app, operator, owning_agent_id="A-7"))
    stranger = Caller("u9", Role.AGENT, "A-9")
    with pytest.raises(NotFound) as refused:  # as if it did not exist
        app.get_customer({"customer_id": customer_id}, meta(stranger), SALES_FORCE)
    with pytest.raises(NotFound) as unknown:
        app.get_customer({"customer_id": uuid.uuid4()}, meta(stranger), SALES_FORCE)
    assert refused.value.as_dict()["fields"] == unknown.value.as_dict()["fields"]
    desk = Caller("sd1", Role.SERVICE_DESK)
    assert app.get_customer({"customer_id": customer_id}, meta(desk), SALES_FORCE)["owning_agent_id"] == "A-7"


def test_a_repeated_command_takes_effect_once(store_env: dict[str, str], operator: Caller) -> None:
    """A command sent again with the same command id (a client retry, or the broker redelivering a
    request whose reply was lost) answers as the first time and appends nothing."""
    customers = CustomerApplication(env=store_env)
    sales = SalesApplication(env=store_env)
    desk = ServiceDeskApplication(env=store_env)
    register_cmd = meta(operator)
    data = rpc.RegisterCustomer().load(customer_payload())
    first = customers.register_customer(data, register_cmd, SALES_FORCE)
    position = customers.max_position()
    assert customers.register_customer(data, register_cmd, SALES_FORCE) == first
    assert customers.max_position() == position

    owners = KnownCustomers({first["customer_id"]: "A-1001"})
    sale = rpc.SellPolicy().load(
        {
            "customer_id": first["customer_id"],
            "product": "life",
            "annual_premium": "99.00",
            "start_date": "2027-01-01",
            "term_years": 3,
        }
    )
    sell_cmd = meta(operator)
    sold = sales.sell_policy(sale, sell_cmd, owners, sales)
    assert sales.sell_policy(sale, sell_cmd, owners, sales) == sold
    assert sales.sell_policy(sale, meta(operator), owners, sales) != sold  # a new command, a new policy
    assert count_events(sales, "sales.policy_sold") == 2

    complaint = rpc.OpenComplaint().load(
        {
            "customer_id": first["customer_id"],
            "channel": "web",
            "category": "other",
            "priority": "urgent",
            "description": "call me",
        }
    )
    open_cmd = meta(operator)
    opened = desk.open_complaint(complaint, open_cmd, owners)
    assert desk.open_complaint(complaint, open_cmd, owners) == opened
    assert count_events(desk, "service_desk.ticket_opened") == 1


def count_events(app: CrmApplication, event_type: str) -> int:
    """Counted, not read off positions: PostgreSQL's notification ids have gaps after a refused
    append; on SQLite these tests' applications share one file (so only the application's own
    events are decoded: another context's may be sealed under keys it does not hold)."""
    own = f"services.{app.CONTEXT}."
    return sum(
        1
        for batch in app.notifications(0)
        for n in batch
        if n.topic.startswith(own) and (m := app.envelope(n)) and m["event_type"] == event_type
    )


def test_an_erasure_stored_by_a_process_that_died_before_shredding_is_finished_by_the_owner_index(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    customer_id = register(app, operator, full_name="Zhao Erasable")
    customer = app.find(Customer, customer_id)
    assert customer is not None
    customer.erase("request", "DSR-9", meta(operator))
    app.save(customer)  # recorded, and the process dies before its keys are shredded
    other = CustomerApplication(env=store_env)
    assert other.subject_keys.is_shredded(customer_id) is False
    other.owners.catch_up()  # what crm-handover does every poll, and every listing of a book
    assert other.subject_keys.is_shredded(customer_id) is True
    reread = CustomerApplication(env=store_env).find(Customer, customer_id)
    assert reread is not None and reread.full_name is None and reread.erased_at is not None


def test_erasing_twice_answers_the_first_time_and_seals_nothing_new(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    customer_id = register(app, operator)
    erase = meta(operator)
    request = {"customer_id": uuid.UUID(customer_id), "reason": "request", "request_reference": "DSR-10"}
    first = app.erase_customer(request, erase, SALES_FORCE)
    assert app.erase_customer(request, erase, SALES_FORCE) == first
    with pytest.raises(InvalidState):
        app.erase_customer(request, meta(operator), SALES_FORCE)
    with pytest.raises(InvalidState):  # the record takes no personal data any more
        app.update_profile(
            {"customer_id": uuid.UUID(customer_id), "full_name": "New", "reason": "x"},
            meta(operator),
            SALES_FORCE,
        )


def test_a_customers_key_is_stored_with_its_first_event_and_not_without_it(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    payload = customer_payload()
    first = register(app, operator, national_id=payload["national_id"])
    with pytest.raises(DuplicateCustomer):  # its append fails: the new customer's key with it
        register(app, operator, national_id=payload["national_id"])
    rows = app.subject_keys.tables.query(f"SELECT subject_id FROM {SUBJECT_KEYS}")
    assert [r["subject_id"] for r in rows if r["subject_id"] == first] == [first]
    customers = {
        str(n.originator_id) for b in app.notifications(0) for n in b if n.topic.endswith("Registered")
    }
    assert {r["subject_id"] for r in rows} <= {str(uuid.UUID(c)) for c in customers}


def test_a_person_erased_may_register_again_under_the_same_national_id(
    store_env: dict[str, str], operator: Caller
) -> None:
    app = CustomerApplication(env=store_env)
    payload = customer_payload()
    first = register(app, operator, national_id=payload["national_id"])
    request = {"customer_id": uuid.UUID(first), "reason": "request", "request_reference": "DSR-11"}
    app.erase_customer(request, meta(operator), SALES_FORCE)
    again = register(app, operator, national_id=payload["national_id"], full_name="Back Again")
    assert again != first
    view = app.get_customer({"customer_id": uuid.UUID(again)}, meta(operator), SALES_FORCE)
    assert view["full_name"] == "Back Again" and view["national_id"] == payload["national_id"]
    with pytest.raises(DuplicateCustomer) as refused:  # the claim is the new customer's now
        register(app, operator, national_id=payload["national_id"])
    assert refused.value.as_dict()["existing_customer_id"] == again
