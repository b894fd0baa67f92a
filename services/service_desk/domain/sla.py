"""SLA arithmetic: a ticket's clock runs from opening for its target window, stands still while the
desk waits on the customer and once the ticket is resolved, and runs on when the customer answers
or the ticket is reopened. The warning falls due at a share of the window (three quarters), the
breach at the deadline; each once per ticket however often the clock stops and starts, so a
ticket paused after its warning is not warned again. Pure: times are given, never read."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class SlaState(StrEnum):
    """What the SLA board says of an unresolved ticket at a moment."""

    ON_TRACK = "on_track"
    WARNED = "warned"
    BREACHED = "breached"
    PAUSED = "paused"


class Due(StrEnum):
    WARNING = "warning"
    BREACH = "breach"
    AUTO_CLOSE = "auto_close"


@dataclass(frozen=True)
class SlaClock:
    started_at: datetime
    target: timedelta
    warning_share: float
    paused_for: timedelta = timedelta(0)
    stopped_at: datetime | None = None  # waiting on the customer, or resolved
    warned: bool = False
    breached: bool = False

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def _end(self) -> datetime:
        return self.started_at + self.target + self.paused_for

    @property
    def last_deadline(self) -> datetime:
        """The deadline now, or the one it had when the clock stopped."""
        return self._end()

    def deadline(self) -> datetime | None:
        """When the breach falls due; None while the clock stands still."""
        return self._end() if self.running else None

    def warning_at(self) -> datetime | None:
        """When the warning falls due; None while stopped or once given."""
        if not self.running or self.warned:
            return None
        return self.started_at + self.target * self.warning_share + self.paused_for

    def remaining(self, now: datetime) -> timedelta:
        """Time left to the deadline (negative once past); frozen while the clock stands still."""
        return self._end() - (now if self.stopped_at is None else self.stopped_at)

    def stop(self, at: datetime) -> SlaClock:
        return self if self.stopped_at is not None else replace(self, stopped_at=max(at, self.started_at))

    def start(self, at: datetime) -> SlaClock:
        if self.stopped_at is None:
            return self
        return replace(
            self, paused_for=self.paused_for + max(at - self.stopped_at, timedelta(0)), stopped_at=None
        )

    def next_due(self) -> tuple[Due, datetime] | None:
        if not self.running:
            return None
        if (warning := self.warning_at()) is not None:
            return Due.WARNING, warning
        if not self.breached:
            return Due.BREACH, self._end()
        return None

    def state(self, now: datetime) -> SlaState:
        if self.breached or self.remaining(now) <= timedelta(0):
            return SlaState.BREACHED
        if not self.running:
            return SlaState.PAUSED
        warning = self.started_at + self.target * self.warning_share + self.paused_for
        return SlaState.WARNED if self.warned or now >= warning else SlaState.ON_TRACK
