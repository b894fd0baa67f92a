"""Ranking a whole book without holding it: the value at each band's last rank (``RankSelection``:
two passes over the values, counting them by bucket, then exactly within the buckets the ranks
fall in), then each customer's band from their own value alone. Customers with equal values share
the better band, exactly as ``rfm.ranked_quintiles`` ranks a list it is given."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# Buckets a doubling of the values is cut into: each about 1% wide, so the buckets the ranks fall
# in hold about 1% of the book's distinct values each.
BUCKETS_A_DOUBLING = 64

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


def bucket_of(value: int) -> int:
    """A bucket number ordered as the values are (negative values below the rest)."""
    magnitude = int(math.log2(abs(value) + 1) * BUCKETS_A_DOUBLING)
    return magnitude if value >= 0 else -magnitude - 1


class RankSelection:
    """The values at chosen ranks (0: the highest) of integers read in two passes, exactly, in
    memory bounded by the buckets and the distinct values of the few buckets the ranks fall in:
    ``count`` each value, ``choose`` the ranks (now that the total is known), ``refine`` with each
    value again, then ``value_at``."""

    def __init__(self) -> None:
        self.total = 0
        self.per_bucket: Counter[int] = Counter()
        # rank -> (its bucket, its rank within the bucket)
        self.where: dict[int, tuple[int, int]] = {}
        self.exact: dict[int, Counter[int]] = {}

    def count(self, value: int) -> None:
        self.total += 1
        self.per_bucket[bucket_of(value)] += 1

    def choose(self, ranks: Iterable[int]) -> None:
        wanted = sorted({r for r in ranks if 0 <= r < self.total})
        above, position = 0, 0
        for bucket in sorted(self.per_bucket, reverse=True):
            size = self.per_bucket[bucket]
            while position < len(wanted) and wanted[position] < above + size:
                self.where[wanted[position]] = (bucket, wanted[position] - above)
                self.exact.setdefault(bucket, Counter())
                position += 1
            above += size

    def refine(self, value: int) -> None:
        if (exact := self.exact.get(bucket_of(value))) is not None:
            exact[value] += 1

    def value_at(self, rank: int) -> int | None:
        """The value at a chosen ``rank``; None past the end."""
        if rank not in self.where:
            if 0 <= rank < self.total:
                raise KeyError(f"rank {rank} was not chosen")
            return None
        bucket, within = self.where[rank]
        for value in sorted(self.exact[bucket], reverse=True):
            within -= self.exact[bucket][value]
            if within < 0:
                return value
        raise AssertionError("the second pass saw fewer values than the first")

    def chosen(self, rank: int) -> int:
        """The value at a chosen rank within the values (never past their end)."""
        value = self.value_at(rank)
        if value is None:
            raise KeyError(f"rank {rank} is past the {self.total} values")
        return value
