"""A terminal progress bar: done/total, rate, time left. Redraws at most a few times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    def __init__(
        self, total: int, label: str, unit: str = "events", stream: TextIO = sys.stderr, width: int = 30
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.stream = stream
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self.interactive = stream.isatty()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= (0.2 if self.interactive else 5.0):
            self._drawn = now
            self.draw()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.width)
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0.0
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{self.done:,}/{self.total:,} {self.unit}  {rate:,.0f}/s  "
            f"elapsed {_clock(elapsed)}  left {_clock(left)}"
        )

    def draw(self) -> None:
        end = "\r" if self.interactive else "\n"
        self.stream.write(self.line() + end)
        self.stream.flush()

    def finish(self) -> None:
        self.draw()
        if self.interactive:
            self.stream.write("\n")
        self.stream.flush()


class PhasedProgress:
    """One bar per phase of a long job, the previous phase's bar finished when the next begins."""

    def __init__(self) -> None:
        self.bar: ProgressBar | None = None
        self.phase: str | None = None

    def at(self, phase: str, total: int, label: str, unit: str) -> ProgressBar:
        """The bar of ``phase`` (a new one, the last one finished, when the phase changes)."""
        if phase != self.phase or self.bar is None:
            self.finish()
            self.phase, self.bar = phase, ProgressBar(total, label, unit)
        return self.bar

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.finish()
            self.bar = None
