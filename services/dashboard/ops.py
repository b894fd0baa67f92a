"""What operators see of the running system: each process's last heartbeat (up, restarts, when it
last beat), the queues as RabbitMQ's management API reports them (depth, rates, consumers), and the
dead letters (browse with the reason, requeue, discard)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Queue

from crm_shared.dead_letters import discard_dead_letters, list_dead_letters, requeue_dead_letters
from crm_shared.heartbeat import BEAT_SECONDS, HEARTBEATS, Beat

log = logging.getLogger("crm.dashboard.ops")
# A process whose last beat is older than this is down.
DOWN_AFTER_SECONDS = 3 * BEAT_SECONDS


class Heartbeats:
    """The last beat of every process, from a queue of the dashboard's own bound to
    ``crm.heartbeats`` (exclusive: it goes with the dashboard). A process is counted as restarted
    each time it is seen with a new start."""

    def __init__(self, amqp_uri: str) -> None:
        self.amqp_uri = amqp_uri
        self.queue = Queue(
            f"dashboard.heartbeats.{uuid.uuid4().hex[:12]}",
            exchange=HEARTBEATS,
            exclusive=True,
            auto_delete=True,
            no_declare=False,
        )
        self._last: dict[str, Beat] = {}
        self._starts: dict[str, set[tuple[str, int, float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> Heartbeats:
        threading.Thread(target=self._run, name="heartbeats", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def take(self, beat: Beat) -> None:
        with self._lock:
            self._last[beat.process] = beat
            self._starts.setdefault(beat.process, set()).add((beat.host, beat.pid, beat.started_at))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with Connection(self.amqp_uri, connect_timeout=5) as conn:
                    queue = self.queue.bind(conn.default_channel)
                    queue.exchange.no_declare = True  # declared by the installation
                    queue.declare()

                    def on_message(body: Any, message: Any) -> None:
                        try:
                            self.take(Beat.of(body if isinstance(body, dict) else json.loads(body)))
                        except (KeyError, ValueError, TypeError):
                            log.warning("an unreadable heartbeat was dropped")
                        message.ack()

                    with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
                        while not self._stop.is_set():
                            with contextlib.suppress(TimeoutError):
                                conn.drain_events(timeout=1)
            except Exception as e:  # the broker away: try again
                log.warning("heartbeats not followed (%s); trying again", e)
                self._stop.wait(2)

    def processes(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        with self._lock:
            beats = dict(self._last)
            starts = {name: len(seen) for name, seen in self._starts.items()}
        return [
            {
                "process": name,
                "host": beat.host,
                "pid": beat.pid,
                "up": now - beat.at < DOWN_AFTER_SECONDS,
                "last_beat_seconds_ago": round(now - beat.at, 1),
                "started_at": beat.started_at,
                "restarts": starts[name] - 1,
                "detail": beat.detail,
            }
            for name, beat in sorted(beats.items())
        ]


@dataclass(frozen=True)
class ManagementApi:
    """RabbitMQ's management HTTP API, as a monitoring user."""

    url: str
    user: str
    password: str
    vhost: str

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(self.url.rstrip("/") + path)
        credentials = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def overview(self) -> dict[str, Any]:
        data = self._get("/api/overview")
        return {
            "rabbitmq_version": data.get("rabbitmq_version"),
            "node": data.get("node"),
            "messages": (data.get("queue_totals") or {}).get("messages", 0),
            "connections": (data.get("object_totals") or {}).get("connections", 0),
        }

    def queues(self) -> list[dict[str, Any]]:
        vhost = urllib.parse.quote(self.vhost, safe="")
        rows = self._get(f"/api/queues/{vhost}")
        found = []
        for row in rows:
            stats = row.get("message_stats") or {}
            found.append(
                {
                    "name": row["name"],
                    "messages": row.get("messages", 0),
                    "ready": row.get("messages_ready", 0),
                    "unacknowledged": row.get("messages_unacknowledged", 0),
                    "consumers": row.get("consumers", 0),
                    "publish_rate": round((stats.get("publish_details") or {}).get("rate", 0.0), 1),
                    "deliver_rate": round((stats.get("deliver_get_details") or {}).get("rate", 0.0), 1),
                    "type": row.get("type"),
                }
            )
        return sorted(found, key=lambda q: q["name"])


class DeadLetters:
    """Dead letters of the CRM's consumers and services, over the dashboard's broker user."""

    def __init__(self, amqp_uri: str, queues: list[str]) -> None:
        self.amqp_uri = amqp_uri
        self.queues = queues

    def known(self, queue: str) -> bool:
        return queue in self.queues

    def list(self, queue: str, limit: int) -> list[dict[str, Any]]:
        return [d.as_dict() for d in list_dead_letters(self.amqp_uri, queue, limit)]

    def requeue(self, queue: str, message_id: str) -> int:
        return requeue_dead_letters(self.amqp_uri, queue, {message_id})

    def discard(self, queue: str, message_id: str) -> int:
        return discard_dead_letters(self.amqp_uri, queue, {message_id})
