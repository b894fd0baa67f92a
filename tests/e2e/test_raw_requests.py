"""Raw AMQP requests, as any process that can publish to the broker could send them: whatever the
properties and the body, no service container crashes or restarts, every answer is the structured
envelope, and nothing is left in the RPC queues to be redelivered for ever."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection, Exchange, Producer, Queue

from crm_cli.client import CrmClient
from crm_cli.system import System
from crm_shared.auth import Caller, Role
from tests.support import wait_until

SERVICES = ("customer", "sales", "service_desk", "analytics")
OPERATIONS = {
    "customer": ("ping", "register_customer", "get_customer"),
    "sales": ("ping", "sell_policy", "get_policy"),
    "service_desk": ("ping", "open_complaint", "close_complaint", "get_ticket"),
    "analytics": ("ping", "get_customer_360"),
}
RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)
PROBE = Caller("raw-probe", Role.OPERATOR)
PROJECTOR_QUEUE = "analytics.customer_360"


@dataclass
class RawBroker:
    """A publisher of raw requests and a reply queue of our own to hear the answers on."""

    connection: Connection
    producer: Producer
    replies: Queue
    reply_key: str

    def send(self, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        self.producer.publish(body, exchange=RPC_EXCHANGE, routing_key=routing_key, retry=False, **properties)

    def answers(self) -> list[Any]:
        found = []
        while (message := self.replies.get(no_ack=True)) is not None:
            found.append(json.loads(message.body))
        return found


@pytest.fixture(scope="module")
def raw(system: System) -> Iterator[RawBroker]:
    reply_key = f"raw-{uuid.uuid4().hex}"
    with Connection(system.amqp_uri) as connection:
        channel = connection.channel()
        replies = Queue(f"test.{reply_key}", exchange=RPC_EXCHANGE, routing_key=reply_key, exclusive=True)
        replies = replies.bind(channel)
        replies.declare()
        producer = Producer(connection.channel())
        yield RawBroker(connection, producer, replies, reply_key)


@pytest.fixture(scope="module")
def probe(system: System) -> Iterator[CrmClient]:
    with CrmClient.for_caller(system.amqp_uri, PROBE, system.signer, timeout=1) as client:
        yield client


def pids(system: System) -> dict[str, int]:
    return {name: p.process.pid for name, p in system.processes.items() if p.process is not None}


def queue_depth(connection: Connection, name: str) -> int:
    _, depth, _ = connection.channel().queue_declare(name, passive=True)
    return int(depth)


def assert_healthy(system: System, probe: CrmClient, raw: RawBroker, started: dict[str, int]) -> None:
    """Every service answers a signed ping within a second; no process died or was restarted; the
    RPC queues drain and nothing was set aside as a request that kept failing."""
    assert not system.dead(), f"died: {system.dead()}"
    assert pids(system) == started, "a process was restarted"
    for service in SERVICES:
        reply = probe.call(service, "ping", {})
        assert reply == {"ok": True, "result": "pong"}, (service, reply)
    for service in SERVICES:
        wait_until(
            lambda s=service: queue_depth(raw.connection, f"rpc-{s}") == 0,
            timeout=10,
            what=f"rpc-{service} to drain",
        )
        assert queue_depth(raw.connection, f"rpc-{service}.dead") == 0
    wait_until(lambda: queue_depth(raw.connection, PROJECTOR_QUEUE) == 0, timeout=10, what="the projector")


def assert_structured(answer: Any) -> None:
    assert answer["error"] is None, answer  # never nameko's own error with its exception path
    envelope = answer["result"]
    assert envelope["ok"] is False, envelope
    error = envelope["error"]
    assert set(error) <= {"code", "message", "fields", "correlation_id", "existing_customer_id"}
    assert error["code"] in {"validation_failed", "unauthenticated", "internal_error"}, error
    text = json.dumps(envelope)
    assert "Traceback" not in text and "nameko." not in text and "exc_path" not in text


def deeply_nested(depth: int) -> bytes:
    return b'{"args": [' + b"[" * depth + b"]" * depth + b'], "kwargs": {}}'


def call_body(args: Any, kwargs: Any = None) -> bytes:
    return json.dumps({"args": args, "kwargs": {} if kwargs is None else kwargs}).encode()


bodies = st.one_of(
    st.builds(call_body, st.just([{"customer_id": str(uuid.uuid4())}])),
    st.builds(call_body, st.just([])),
    st.builds(call_body, st.just([{}, {}])),
    st.builds(call_body, st.just([{}]), st.just({"surprise": 1})),
    st.just(b'{"args": [], "kwargs": []}'),
    st.just(b'{"kwargs": {}}'),
    st.just(b"[1, 2, 3]"),
    st.just(b'"just a string"'),
    st.just(b'{"args": [NaN], "kwargs": {}}'),
    st.just(deeply_nested(50_000)),
    st.just(b'{"args": ["' + b"x" * 3_000_000 + b'"], "kwargs": {}}'),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
)
header_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.lists(st.integers(0, 2**31), max_size=3),
    st.binary(max_size=8),
)
headers = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(
            [
                "nameko.auth_token",
                "nameko.correlation_id",
                "nameko.command_id",
                "nameko.call_id_stack",
                "x-odd",
            ]
        ),
        header_values,
        max_size=4,
    ),
)


@st.composite
def raw_requests(draw: st.DrawFn, reply_key: str) -> tuple[str, bytes, dict[str, Any]]:
    if draw(st.integers(0, 4)) == 0:  # a consumer of crm.events must stand the same
        return PROJECTOR_QUEUE, draw(bodies), {"content_type": "application/json", "headers": draw(headers)}
    service = draw(st.sampled_from(SERVICES))
    operation = draw(st.sampled_from((*OPERATIONS[service], "no_such_operation", "")))
    properties: dict[str, Any] = {
        "content_type": draw(
            st.sampled_from(
                [
                    "application/json",
                    "application/x-python-serialize",
                    "application/x-yaml",
                    "text/plain",
                    "application/data",
                    "no/such-type",
                ]
            )
        ),
        "content_encoding": draw(st.sampled_from(["utf-8", "binary", "latin-1", "no-such-encoding"])),
    }
    reply_to = draw(st.sampled_from(["ours", "absent", "empty", "nowhere", "long"]))
    if reply_to != "absent":
        properties["reply_to"] = {
            "ours": reply_key,
            "empty": "",
            "nowhere": f"nowhere-{uuid.uuid4().hex}",
            "long": "r" * 255,
        }[reply_to]
    if draw(st.booleans()):
        properties["correlation_id"] = draw(st.sampled_from([str(uuid.uuid4()), "", "c" * 255]))
    properties["headers"] = draw(headers)
    return f"{service}.{operation}", draw(bodies), properties


def test_a_request_without_reply_to_is_dropped_and_kills_nothing(
    system: System, raw: RawBroker, probe: CrmClient
) -> None:
    started = pids(system)
    body = call_body([{"customer_id": str(uuid.uuid4())}])
    for _ in range(3):
        raw.send("customer.get_customer", body, {"content_type": "application/json", "correlation_id": "x"})
    assert_healthy(system, probe, raw, started)
    log = (system.run_dir / "logs" / "customer.log").read_text()
    assert "dropped an RPC request on customer.get_customer: it has no usable reply_to" in log


def test_what_nameko_would_answer_with_its_exception_paths_is_a_structured_envelope(
    system: System, raw: RawBroker, probe: CrmClient
) -> None:
    cases = {
        "no arguments": ("customer.get_customer", call_body([])),
        "two arguments": ("customer.get_customer", call_body([{}, {}])),
        "unknown operation": ("customer.no_such_operation", call_body([{}])),
        "no args key": ("sales.get_policy", b'{"kwargs": {}}'),
        "not JSON": ("service_desk.get_ticket", b"\x00\xff not json"),
        "pickle": ("analytics.get_customer_360", b"\x80\x04K\x01."),
    }
    raw.answers()
    for routing_key, body in cases.values():
        content_type = "application/x-python-serialize" if body.startswith(b"\x80") else "application/json"
        raw.send(
            routing_key,
            body,
            {"content_type": content_type, "reply_to": raw.reply_key, "correlation_id": str(uuid.uuid4())},
        )
    answers: list[Any] = []

    def all_answered() -> bool:
        answers.extend(raw.answers())
        return len(answers) >= len(cases)

    wait_until(all_answered, timeout=10, what="an answer to each request")
    for answer in answers:
        assert_structured(answer)
        assert answer["result"]["error"]["code"] == "validation_failed"
    assert_healthy(system, probe, raw, pids(system))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_raw_request_crashes_a_service_or_stays_in_its_queue(
    system: System, raw: RawBroker, probe: CrmClient, data: st.DataObject
) -> None:
    started = pids(system)
    batch = data.draw(st.lists(raw_requests(raw.reply_key), min_size=1, max_size=6))
    for routing_key, body, properties in batch:
        raw.send(routing_key, body, properties)
    assert_healthy(system, probe, raw, started)
    for answer in raw.answers():
        assert_structured(answer)
