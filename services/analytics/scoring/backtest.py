"""Backtesting a churn rule set before trusting it (``crm churn backtest RULES --from DATE``): the
history is replayed, customer by customer, under the proposed rules, without touching a live read
model. Each customer's 360 document is folded event by event from their timeline (the same pure
``fold`` the 360 as of a date uses), and the rules are judged after every event and on the first of
every month (for the rules that depend on time passing: no contact, falling premium). A warning is
what the rules would have raised then; a departure is the customer's first lapse or cancellation
from the start date on. The report says how many warnings were raised, how many were followed by a
departure within the horizon (precision), how many departures were warned of before they happened
(recall), and how long before (lead time). One customer's history is held at a time."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from services.analytics.changes import Document, Message
from services.analytics.customer_360 import fold_into
from services.analytics.scoring.churn import assess, crossing
from services.analytics.scoring.config import ChurnRules
from services.analytics.scoring.features import features_of

DEPARTURES = frozenset({"sales.policy_lapsed", "sales.policy_cancelled"})


@dataclass(frozen=True)
class Warned:
    at: datetime
    score: int
    rules: tuple[str, ...]


@dataclass
class CustomerReplay:
    customer_id: str
    warnings: list[Warned] = field(default_factory=list)
    departed_at: datetime | None = None


def month_starts(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = datetime(start.year, start.month, 1, tzinfo=UTC)
    if moment < start:
        moment = _next_month(moment)
    while moment <= end:
        yield moment
        moment = _next_month(moment)


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def replay_customer(
    customer_id: str, history: Iterable[Message], rules: ChurnRules, start: datetime, end: datetime
) -> CustomerReplay:
    """The warnings the rules would have raised for one customer from ``start`` to ``end``, and
    their departure (their first lapse or cancellation from ``start`` on)."""
    replay = CustomerReplay(customer_id)
    events = sorted(
        ((datetime.fromisoformat(m["occurred_at"]).astimezone(UTC), m) for m in history),
        key=lambda pair: pair[0],
    )
    moments: list[tuple[datetime, Message | None]] = [*events, *((t, None) for t in month_starts(start, end))]
    moments.sort(key=lambda pair: (pair[0], pair[1] is None))
    doc: Document | None = None
    at_risk = False
    for moment, message in moments:
        if moment > end:
            break
        if message is not None:
            if message["event_type"] in DEPARTURES and moment >= start and replay.departed_at is None:
                replay.departed_at = moment
            doc = fold_into(doc, message)
        if doc is None or moment < start:
            continue
        assessed = assess(features_of(doc, moment), rules)
        turned = crossing(at_risk, assessed.score, rules)
        if turned is None:
            continue
        at_risk = turned
        if turned:
            replay.warnings.append(Warned(moment, assessed.score, tuple(r.rule for r in assessed.reasons)))
    return replay


@dataclass(frozen=True)
class BacktestReport:
    start: str
    end: str
    horizon_days: int
    customers: int
    warnings: int
    warnings_followed_by_departure: int
    precision: float | None
    departures: int
    departures_warned: int
    departures_missed: int
    recall: float | None
    lead_days_median: float | None
    lead_days_p90: float | None
    lead_days_mean: float | None
    rules_in_warnings: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tally:
    """Adds up customers' replays into the report, one customer at a time."""

    def __init__(self, start: datetime, end: datetime, horizon: timedelta) -> None:
        self.start, self.end, self.horizon = start, end, horizon
        self.customers = self.warnings = self.true_warnings = self.departures = 0
        self.leads: list[float] = []
        self.rules: Counter[str] = Counter()

    def add(self, replay: CustomerReplay) -> None:
        self.customers += 1
        self.warnings += len(replay.warnings)
        for warned in replay.warnings:
            self.rules.update(warned.rules)
        left = replay.departed_at
        if left is None:
            return
        self.departures += 1
        self.true_warnings += sum(1 for w in replay.warnings if w.at < left <= w.at + self.horizon)
        before = [w.at for w in replay.warnings if left - self.horizon <= w.at < left]
        if before:
            self.leads.append((left - min(before)).total_seconds() / 86400)

    def report(self) -> BacktestReport:
        leads = sorted(self.leads)
        return BacktestReport(
            start=self.start.isoformat(),
            end=self.end.isoformat(),
            horizon_days=self.horizon.days,
            customers=self.customers,
            warnings=self.warnings,
            warnings_followed_by_departure=self.true_warnings,
            precision=round(self.true_warnings / self.warnings, 4) if self.warnings else None,
            departures=self.departures,
            departures_warned=len(leads),
            departures_missed=self.departures - len(leads),
            recall=round(len(leads) / self.departures, 4) if self.departures else None,
            lead_days_median=round(statistics.median(leads), 1) if leads else None,
            lead_days_p90=round(leads[min(len(leads) - 1, int(0.9 * len(leads)))], 1) if leads else None,
            lead_days_mean=round(statistics.fmean(leads), 1) if leads else None,
            rules_in_warnings=dict(self.rules.most_common()),
        )


def customer_histories(timeline: Collection, page: int = 1000) -> Iterator[tuple[str, list[Message]]]:
    """Each customer's events as published, in the timeline's (customer, sequence) order: one
    cursor over that index (on MongoDB an index walk; paging by ranges would make SecantusDB scan the
    collection once per page), one customer's history in memory at once."""
    current: str | None = None
    history: list[Message] = []
    fields = {"customer_id": 1, "seq": 1, "envelope": 1}
    order = [("customer_id", ASCENDING), ("seq", ASCENDING)]
    with timeline.find({}, fields, batch_size=page).sort(order) as cursor:
        for entry in cursor:
            if entry["customer_id"] != current:
                if current is not None:
                    yield current, history
                current, history = entry["customer_id"], []
            history.append(entry["envelope"])
    if current is not None:
        yield current, history


def backtest(
    timeline: Collection,
    rules: ChurnRules,
    start: datetime,
    end: datetime,
    horizon: timedelta = timedelta(days=180),
    progress: Callable[[int], None] | None = None,
) -> BacktestReport:
    tally = Tally(start, end, horizon)
    for customer_id, history in customer_histories(timeline):
        tally.add(replay_customer(customer_id, history, rules, start, end))
        if progress is not None:
            progress(len(history))
    return tally.report()
