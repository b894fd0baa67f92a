"""The customer record over time, on real processes: profile changes by several callers, each
kept with what, from, to, who, when and why; a change to the same values stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from crm_cli.client import CrmClient
from crm_shared.auth import Caller, Role
from tests.e2e.conftest import COMPLAINT, SALE, Stores, ok
from tests.support import customer_payload, wait_until

ClientFor = Callable[[Caller], AbstractContextManager[CrmClient]]
ADDRESS = {"line1": "9 West Lake Road", "city": "Hangzhou", "province": "Zhejiang", "postal_code": "310000"}


def test_five_profile_changes_by_three_callers_are_all_in_the_history(
    operator_rpc: CrmClient, rpc: ClientFor, stores: Stores
) -> None:
    registration = customer_payload(agent_id="A-7")
    customer_id = ok(operator_rpc.call("customer", "register_customer", registration))["customer_id"]
    agent = Caller("u-a7", Role.AGENT, "A-7")
    desk = Caller("desk-1", Role.SERVICE_DESK)
    updates = [
        (agent, {"mobile_phone": "13700000001"}, "new phone"),
        (desk, {"email": "Wang.F@Example.com"}, "customer called"),
        (operator_rpc, {"address": ADDRESS, "full_name": "Wang Fang"}, "moved house"),
        (agent, {"full_name": "Wang Fangfang"}, "name corrected"),
        (desk, {"mobile_phone": "13700000002"}, "second new phone"),
    ]
    for who, change, reason in updates:
        payload = {"customer_id": customer_id, **change, "reason": reason}
        if isinstance(who, CrmClient):
            ok(who.call("customer", "update_profile", payload))
        else:
            with rpc(who) as client:
                ok(client.call("customer", "update_profile", payload))
    before = stores.positions()
    unchanged = ok(
        operator_rpc.call(
            "customer",
            "update_profile",
            {"customer_id": customer_id, "full_name": "Wang Fangfang", "reason": "x"},
        )
    )
    assert unchanged["changed"] == [] and stores.positions() == before  # nothing appended

    history = ok(operator_rpc.call("customer", "get_customer_history", {"customer_id": customer_id}))[
        "changes"
    ]
    assert [h["what"] for h in history] == ["registered"] + ["profile_updated"] * 5
    assert [h["why"] for h in history[1:]] == [reason for _, _, reason in updates]
    assert [h["who"]["user_id"] for h in history[1:]] == ["u-a7", "desk-1", "op-e2e", "u-a7", "desk-1"]
    phones = [c for h in history for c in h["changes"] if c["field"] == "mobile_phone"]
    assert [(c["from"], c["to"]) for c in phones] == [
        (registration["mobile_phone"], "13700000001"),
        ("13700000001", "13700000002"),
    ]
    emails = [c for h in history for c in h["changes"] if c["field"] == "email"]
    assert emails[0]["to"] == "wang.f@example.com"  # kept as the record normalises it
    assert all(h["when"] for h in history)

    record = ok(operator_rpc.call("customer", "get_customer", {"customer_id": customer_id}))
    assert (record["full_name"], record["mobile_phone"]) == ("Wang Fangfang", "13700000002")

    def view_updated() -> bool:
        reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id})
        return bool(reply["ok"] and reply["result"]["profile"]["mobile_phone"] == "13700000002")

    wait_until(view_updated, timeout=30, what="the 360 view's profile to follow")
    view = ok(operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id}))
    assert (
        view["profile"]["full_name"] == "Wang Fangfang" and view["profile"]["address"]["city"] == "Hangzhou"
    )

    with rpc(Caller("u-a2", Role.AGENT, "A-2")) as stranger:  # another agent's customer: not found
        refused = stranger.call(
            "customer", "update_profile", {"customer_id": customer_id, "email": None, "reason": "x"}
        )
        assert refused["error"]["code"] == "not_found"


def test_consents_granted_withdrawn_and_granted_again_decide_whether_marketing_may_contact(
    operator_rpc: CrmClient, rpc: ClientFor
) -> None:
    customer_id = ok(operator_rpc.call("customer", "register_customer", customer_payload(agent_id="A-7")))[
        "customer_id"
    ]
    agent = Caller("u-a7", Role.AGENT, "A-7")
    desk = Caller("desk-1", Role.SERVICE_DESK)
    check = {"customer_id": customer_id, "channel": "sms", "purpose": "marketing"}
    assert ok(operator_rpc.call("customer", "may_contact", check))["reason"] == "no_consent"
    steps = [
        (agent, "granted", {"kind": "form", "reference": "F-0042"}),
        (desk, "withdrawn", {"kind": "call_recording", "reference": "REC-77"}),
        (agent, "granted", {"kind": "web", "reference": "https://example.cn/prefs"}),
    ]
    for who, status, source in steps:
        with rpc(who) as client:
            consent = ok(
                client.call(
                    "customer",
                    "record_consent",
                    {
                        "customer_id": customer_id,
                        "channel": "sms",
                        "purpose": "marketing",
                        "status": status,
                        "source": source,
                    },
                )
            )["consent"]
            assert consent["status"] == status
            allowed = ok(client.call("customer", "may_contact", check))
            assert allowed["allowed"] is (status == "granted"), allowed
    consents = ok(operator_rpc.call("customer", "get_consents", {"customer_id": customer_id}))
    in_force = {(c["channel"], c["purpose"]): c for c in consents["current"]}
    assert in_force[("sms", "marketing")]["status"] == "granted"
    assert in_force[("sms", "marketing")]["source"]["kind"] == "web"
    assert in_force[("email", "marketing")]["status"] == "unknown"
    assert [(h["status"], h["recorded_by"]["user_id"]) for h in consents["history"]] == [
        ("granted", "u-a7"),
        ("withdrawn", "desk-1"),
        ("granted", "u-a7"),
    ]
    history = ok(operator_rpc.call("customer", "get_customer_history", {"customer_id": customer_id}))[
        "changes"
    ]
    assert [h["what"] for h in history[1:]] == ["consent_recorded"] * 3

    # Contact points and preferences, and the 360 view following them.
    point = ok(
        operator_rpc.call(
            "customer",
            "add_contact_point",
            {
                "customer_id": customer_id,
                "kind": "email",
                "email": "Wang@Example.cn",
                "label": "work",
                "preferred": True,
            },
        )
    )["contact_point_id"]
    ok(
        operator_rpc.call(
            "customer",
            "set_contact_preferences",
            {"customer_id": customer_id, "do_not_call": True, "preferred_channel": "sms", "reason": "asked"},
        )
    )
    record = ok(operator_rpc.call("customer", "get_customer", {"customer_id": customer_id}))
    assert record["contact_points"] == [
        {
            "contact_point_id": point,
            "kind": "email",
            "label": "work",
            "value": "wang@example.cn",
            "added_at": record["contact_points"][0]["added_at"],
            "preferred": True,
        }
    ]
    assert record["contact_preferences"]["do_not_call"] is True

    def view_followed() -> bool:
        reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id})
        return bool(reply["ok"] and reply["result"]["contact_preferences"]["do_not_call"])

    wait_until(view_followed, timeout=30, what="the 360 view to follow the contact preferences")
    view = ok(operator_rpc.call("analytics", "get_customer_360", {"customer_id": customer_id}))
    assert view["consents"]["sms_marketing"]["status"] == "granted"
    assert view["preferred_contact_points"] == {"email": point}
    assert [p["value"] for p in view["contact_points"]] == ["wang@example.cn"]

    with rpc(Caller("u-a2", Role.AGENT, "A-2")) as stranger:  # not their customer: not found
        refused = stranger.call("customer", "get_consents", {"customer_id": customer_id})
        assert refused["error"]["code"] == "not_found"


def test_duplicates_found_then_merged_the_survivor_holds_both_and_the_duplicate_refuses(
    operator_rpc: CrmClient, rpc: ClientFor
) -> None:
    original = customer_payload(agent_id="A-7", full_name="Zhou Xun")
    survivor = ok(operator_rpc.call("customer", "register_customer", original))["customer_id"]
    # The lookups follow the store within a poll; asking for duplicates catches them up at once.
    assert (
        ok(operator_rpc.call("customer", "find_duplicates", {"customer_id": survivor}))["possible_duplicates"]
        == []
    )
    same_phone = customer_payload(
        agent_id="A-7", mobile_phone=original["mobile_phone"], full_name="Zhou  XUN"
    )
    registered = ok(operator_rpc.call("customer", "register_customer", same_phone))
    duplicate = registered["customer_id"]
    assert registered["possible_duplicates"] == [
        # Born the same day too (the test's people share birth dates), spelt another way.
        {
            "customer_id": survivor,
            "reasons": ["same_mobile_phone", "same_name_and_date_of_birth"],
            "owning_agent_id": "A-7",
        }
    ]
    elsewhere = customer_payload(agent_id="A-2", mobile_phone=original["mobile_phone"])
    ok(operator_rpc.call("customer", "register_customer", elsewhere))
    agent = Caller("u-a7", Role.AGENT, "A-7")
    with rpc(agent) as client:
        found = ok(client.call("customer", "find_duplicates", {"customer_id": survivor}))
        # Another agent's customer is neither named nor counted.
        assert [f["customer_id"] for f in found["possible_duplicates"]] == [duplicate]
        assert set(found) == {"customer_id", "possible_duplicates"}
    with rpc(Caller("desk-1", Role.SERVICE_DESK)) as desk:  # who sees every customer sees all three
        assert (
            len(
                ok(desk.call("customer", "find_duplicates", {"customer_id": survivor}))["possible_duplicates"]
            )
            == 2
        )
    with rpc(agent) as client:
        policies = [
            ok(client.call("sales", "sell_policy", {"customer_id": c, **SALE}))["policy_number"]
            for c in (survivor, duplicate)
        ]
        for c in (survivor, duplicate):
            ok(client.call("service_desk", "open_complaint", {"customer_id": c, **COMPLAINT}))

    def both_in_view() -> bool:
        reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": duplicate})
        return bool(reply["ok"] and reply["result"]["complaints"])

    wait_until(both_in_view, timeout=30, what="the duplicate's 360 view")
    with rpc(Caller("desk-1", Role.SERVICE_DESK)) as desk:
        merged = ok(
            desk.call(
                "customer",
                "merge_customers",
                {"survivor_id": survivor, "duplicate_id": duplicate, "reason": "same person, phone and name"},
            )
        )
        assert merged["survivor_id"] == survivor

    def merged_view() -> dict | None:
        reply = operator_rpc.call("analytics", "get_customer_360", {"customer_id": survivor})
        return reply["result"] if reply["ok"] and reply["result"]["merged_from"] else None

    view = wait_until(merged_view, timeout=30, what="the survivor's 360 view to hold the duplicate")
    assert sorted(p["policy_number"] for p in view["policies"]) == sorted(policies)
    assert view["policy_count"] == 2 and len(view["complaints"]) == 2 and view["open_complaint_count"] == 2
    assert view["merged_from"][0]["customer_id"] == duplicate

    with rpc(agent) as client:
        for service, method, payload in (
            ("customer", "update_profile", {"customer_id": duplicate, "email": None, "reason": "x"}),
            ("customer", "get_customer", {"customer_id": duplicate}),
            ("sales", "sell_policy", {"customer_id": duplicate, **SALE}),
            ("service_desk", "open_complaint", {"customer_id": duplicate, **COMPLAINT}),
            ("analytics", "get_customer_360", {"customer_id": duplicate}),
        ):
            refused = client.call(service, method, payload)
            assert refused["ok"] is False, (method, refused)
            assert (refused["error"]["code"], refused["error"]["survivor_id"]) == (
                "customer_merged",
                survivor,
            )
        # What was sold to the duplicate stays readable by who may act on the survivor.
        assert (
            ok(client.call("sales", "get_policy", {"policy_number": policies[1]}))["customer_id"] == duplicate
        )
        history = ok(client.call("customer", "get_customer_history", {"customer_id": survivor}))["changes"]
        assert history[-1]["what"] == "duplicate_merged" and history[-1]["who"]["user_id"] == "desk-1"
        after = ok(client.call("customer", "find_duplicates", {"customer_id": survivor}))
        assert after["possible_duplicates"] == []  # a merged record is nobody's duplicate any more
    again = operator_rpc.call(
        "customer", "merge_customers", {"survivor_id": survivor, "duplicate_id": duplicate, "reason": "twice"}
    )
    assert again["error"]["code"] == "customer_merged"
