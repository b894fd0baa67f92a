"""Time, injected: production reads the system clock; tests pass a clock they move.

A test that runs real processes moves their time with a ``FileClock``: every process started with
``CRM_TEST_CLOCK_FILE`` reads the instant written in that file (and the system clock while it is
absent or empty), so a test jumps days ahead by writing one line, and SLA timers fire as they
would then. A deployment never sets it."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class FileClock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> datetime:
        try:
            with self.path.open() as moment:
                if os.fstat(moment.fileno()).st_mode & 0o022:
                    # Whoever may write it could make every deadline fall due.
                    raise PermissionError(f"{self.path} may be written by others: the clock refuses it")
                text = moment.read().strip()
        except FileNotFoundError:
            text = ""
        return datetime.fromisoformat(text) if text else utc_now()

    def set(self, moment: datetime) -> None:
        """Every process reading this file is at ``moment`` from now on (written atomically, so
        that no reader sees half a time)."""
        if moment.tzinfo is None:
            raise ValueError("give the time with its UTC offset")
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_text(moment.isoformat())
        temporary.chmod(0o600)
        os.replace(temporary, self.path)

    def release(self) -> None:
        """Back to the system clock."""
        self.path.unlink(missing_ok=True)
