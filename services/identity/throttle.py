"""How many refused client-credential sign-ins become audit events: one per client id a minute,
and a bounded number a minute in all. A refusal costs its caller no password hashing, so without a
bound anyone could grow identity's store and the audit log as fast as they can send; past the bound
the refusals are only counted in the log."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("crm.identity")

WINDOW_SECONDS = 60.0
PER_WINDOW = 60


class RefusalThrottle:
    def __init__(self, window: float = WINDOW_SECONDS, per_window: int = PER_WINDOW) -> None:
        self.window = window
        self.per_window = per_window
        self._started = float("-inf")
        self._recorded: set[str] = set()
        self._dropped = 0
        self._lock = threading.Lock()

    def admits(self, key: str, now: float) -> bool:
        """Whether the refusal of ``key`` (a hashed client id) at ``now`` is recorded."""
        with self._lock:
            if now - self._started >= self.window:
                if self._dropped:
                    log.warning(
                        "%d refused client sign-ins in the last %.0f s were not recorded (over %d a window, "
                        "or repeats of one client id)",
                        self._dropped,
                        self.window,
                        self.per_window,
                    )
                self._started, self._recorded, self._dropped = now, set(), 0
            if key in self._recorded or len(self._recorded) >= self.per_window:
                self._dropped += 1
                return False
            self._recorded.add(key)
            return True
