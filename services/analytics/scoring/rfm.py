"""RFM scores in quintiles: recency (the last sale, renewal or payment), frequency (how many in the
last 12 months), monetary (premium earned in the last 12 months), each 5 for the best fifth of the
customers down to 1 for the last; customers with equal values share a quintile. A customer whose
score fell by ``watch_drop`` quintiles or more since the last recompute goes on the watch list."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from services.analytics.scoring.features import Features

T = TypeVar("T")
DIMENSIONS = ("recency", "frequency", "monetary")


@dataclass(frozen=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int

    @property
    def code(self) -> str:
        return f"{self.recency}{self.frequency}{self.monetary}"

    @property
    def total(self) -> int:
        return self.recency + self.frequency + self.monetary


def quintile(rank: int, count: int) -> int:
    """5 for the first fifth of ``count`` (rank 0 is the best), 1 for the last."""
    if count <= 0 or not 0 <= rank < count:
        raise ValueError(f"rank {rank} outside 0..{count - 1}")
    return 5 - rank * 5 // count


def ranked_quintiles(ordered: Iterable[tuple[T, object]], count: int) -> Iterator[tuple[T, int]]:
    """(item, quintile) for items given best first with their sort value: equal values share the
    rank of the first of them, so ties never split across quintiles. Streams: one item at a time."""
    last, first_rank = object(), 0
    for rank, (item, value) in enumerate(ordered):
        if value != last:
            first_rank, last = rank, value
        yield item, quintile(first_rank, count)


def recency_value(features: Features) -> int:
    """Sorts best first when descending: the later the last transaction, the higher."""
    last = features.last_transaction_on
    return last.toordinal() if last is not None else date.min.toordinal()


def frequency_value(features: Features) -> int:
    return features.transactions_12m


def monetary_value(features: Features) -> float:
    return float(features.premium_12m)


def fallen(previous: Rfm | None, now: Rfm, drop: int) -> list[str]:
    """The dimensions whose quintile fell by ``drop`` or more (the reasons for the watch list)."""
    if previous is None:
        return []
    return [
        f"{name} fell from {getattr(previous, name)} to {getattr(now, name)}"
        for name in DIMENSIONS
        if getattr(previous, name) - getattr(now, name) >= drop
    ]
