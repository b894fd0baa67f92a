"""Ranking a whole book without holding it: the value at each band's last rank, read from a sorted
index (``thresholds``), then each customer's band from their own value alone. Customers with equal
values share the better band, exactly as ``rfm.ranked_quintiles`` ranks a list it is given."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

# The value at a rank of the book sorted best first (None past its end).
ValueAt = Callable[[int], Any]


def band_ends(count: int, shares: Sequence[float]) -> list[int]:
    """The last rank of each band holding the first ``share`` of ``count`` customers."""
    return [math.ceil(count * share) - 1 for share in shares]


QUINTILE_SHARES = (0.2, 0.4, 0.6, 0.8)


def quintile_thresholds(count: int, value_at: ValueAt) -> list[Any]:
    """The values at the last rank of quintiles 5, 4, 3 and 2."""
    return [value_at(rank) for rank in band_ends(count, QUINTILE_SHARES)] if count else []


def quintile_of(value: Any, thresholds: Sequence[Any]) -> int:
    """5 if ``value`` reaches the first threshold, 4 the second, ... 1 below them all."""
    for index, threshold in enumerate(thresholds):
        if threshold is not None and value >= threshold:
            return 5 - index
    return 1
