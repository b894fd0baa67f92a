"""Heartbeats: every process of the CRM says it is alive every few seconds on the fanout exchange
``crm.heartbeats`` (its name, host, pid, when it started, what it is doing), and whoever watches the
system (the operators' dashboard) keeps the last one of each. A process whose beat is older than
three intervals is down; one that started again since last seen has restarted.

A beat is sent without confirms and never blocks or fails its process: a broker away for a moment
costs a beat, nothing else."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kombu import Connection, Exchange

HEARTBEATS = Exchange("crm.heartbeats", type="fanout", durable=True)
BEAT_SECONDS = 5.0
log = logging.getLogger("crm.heartbeat")


@dataclass(frozen=True)
class Beat:
    process: str
    host: str
    pid: int
    started_at: float
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Beat:
        return cls(
            process=str(data["process"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            started_at=float(data["started_at"]),
            at=float(data["at"]),
            detail=dict(data.get("detail") or {}),
        )


class HeartbeatSender:
    """Beats for one process, from a daemon thread of its own (``start``), or one at a time
    (``beat``, for a process whose loop calls it)."""

    def __init__(
        self,
        amqp_uri: str,
        process: str,
        detail: Callable[[], dict[str, Any]] = dict,
        every: float = BEAT_SECONDS,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.process = process
        self.detail = detail
        self.every = every
        self.started_at = time.time()
        self._stop = threading.Event()
        self._connection: Connection | None = None

    def beat(self) -> None:
        beat = Beat(
            self.process, socket.gethostname(), os.getpid(), self.started_at, time.time(), self.detail()
        )
        try:
            if self._connection is None:
                self._connection = Connection(self.amqp_uri, connect_timeout=3)
            # Declared by the installation: a process may publish to it, not configure it.
            producer = self._connection.Producer(exchange=HEARTBEATS, auto_declare=False)
            producer.publish(
                json.dumps(asdict(beat)), content_type="application/json", retry=False, expiration=60
            )
        except Exception as e:  # never the process's problem
            log.debug("a heartbeat was not sent (%s)", e)
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = None

    def start(self) -> HeartbeatSender:
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.every)
        self._drop()

    def stop(self) -> None:
        self._stop.set()
