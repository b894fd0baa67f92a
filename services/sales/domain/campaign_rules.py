"""The rules of a campaign that need no store: who of the target may be contacted and on which
channel, who falls in the control group, how an agent's campaign calls spread over the campaign's
working days, and what the campaign brought against its control group.

- **Reach**: a channel reaches a customer only with their marketing consent in force for it (an
  agent's call or visit needs consent to be phoned: a visit is arranged by phone); do-not-call
  closes the agent's channels whatever the consent; an erased or merged customer is never reached.
- **Control group**: a stable share of the target, drawn by hashing the campaign and the customer
  (the same customer is in or out on every launch, preview and replay), never contacted.
- **Spreading**: an agent's calls go to the campaign's working days (Monday to Friday) in turn, at
  most ``per_day`` a day, earliest days first, so the first days are not flooded and nothing falls
  after the end while there is room.
- **Effect**: conversion of the contacted beside the control group; the uplift with a 95%
  confidence interval (Newcombe's hybrid Wilson score interval for a difference of proportions,
  sound for small groups and rates near 0); the cost per policy won."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# The campaign's channels, and the consent channel each needs.
AGENT_CHANNELS = ("agent_call", "visit")
MESSAGE_CHANNELS = ("sms", "email", "post")
CHANNELS = AGENT_CHANNELS + MESSAGE_CHANNELS
CONSENT_FOR: dict[str, str] = {
    "agent_call": "phone",
    "visit": "phone",
    "sms": "sms",
    "email": "email",
    "post": "post",
}
MARKETING = "marketing"
# z for a two-sided 95% interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Reachable:
    """What the customer record says about contacting someone for marketing."""

    consents: Mapping[str, Any]  # "<channel>_<purpose>" -> the consent in force ({"status": ...})
    do_not_call: bool = False
    erased: bool = False
    merged: bool = False

    @classmethod
    def from_360(cls, view: Mapping[str, Any]) -> Reachable:
        preferences = view.get("contact_preferences") or {}
        return cls(
            consents=view.get("consents") or {},
            do_not_call=bool(preferences.get("do_not_call")),
            erased=view.get("erased_at") is not None or bool(view.get("erased")),
            merged=view.get("merged_into") is not None,
        )


def consented(reachable: Reachable, channel: str) -> bool:
    consent = reachable.consents.get(f"{CONSENT_FOR[channel]}_{MARKETING}") or {}
    return consent.get("status") == "granted"


def channels_reaching(reachable: Reachable, channels: tuple[str, ...]) -> tuple[str, ...]:
    """The campaign's ``channels`` (in their order) that may carry it to this customer."""
    if reachable.erased or reachable.merged:
        return ()
    return tuple(
        c for c in channels if consented(reachable, c) and not (reachable.do_not_call and c in AGENT_CHANNELS)
    )


def control_draw(campaign_id: uuid.UUID | str, customer_id: str) -> float:
    """A number in [0, 1) fixed for the pair: the customer's place in the campaign's draw."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_control(campaign_id: uuid.UUID | str, customer_id: str, control_share: Decimal) -> bool:
    return control_draw(campaign_id, customer_id) < float(control_share)


def working_days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def spread(
    tasks: int, start: date, end: date, per_day: int, already: Mapping[date, int] | None = None
) -> list[date]:
    """The due day of each of an agent's ``tasks`` calls: the working days from ``start`` to
    ``end`` in turn, a day taking at most ``per_day`` (less what ``already`` holds for it), the
    earliest days first. Calls beyond the room the period has go to its last working day, so none
    is lost (the agent's plan shows them as a heavy day)."""
    days = list(working_days(start, end)) or [end]
    taken = dict(already or {})
    due: list[date] = []
    while len(due) < tasks:
        placed = False
        for day in days:
            if len(due) == tasks:
                break
            if taken.get(day, 0) < per_day:
                taken[day] = taken.get(day, 0) + 1
                due.append(day)
                placed = True
        if not placed:
            due += [days[-1]] * (tasks - len(due))
    return sorted(due)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """Wilson's score interval of one proportion."""
    if trials == 0:
        return Interval(0.0, 1.0)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return Interval(max(0.0, (centre - margin) / denominator), min(1.0, (centre + margin) / denominator))


@dataclass(frozen=True)
class Uplift:
    treated_rate: float | None
    control_rate: float | None
    uplift: float | None  # treated minus control, in conversion share
    interval: Interval | None  # 95% for the uplift
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "treated_rate": r(self.treated_rate),
            "control_rate": r(self.control_rate),
            "uplift": r(self.uplift),
            "uplift_low": r(self.interval.low) if self.interval else None,
            "uplift_high": r(self.interval.high) if self.interval else None,
            "significant": self.significant,
        }


def uplift(treated_won: int, treated: int, control_won: int, control: int) -> Uplift:
    """The difference of conversion between the contacted and the control group, with Newcombe's
    95% interval (method 10: from each group's Wilson interval)."""
    if treated == 0 or control == 0:
        rate = (treated_won / treated) if treated else None
        return Uplift(rate, (control_won / control) if control else None, None, None, False)
    p1, p2 = treated_won / treated, control_won / control
    w1, w2 = wilson(treated_won, treated), wilson(control_won, control)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    high = difference + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    return Uplift(p1, p2, difference, Interval(low, high), low > 0 or high < 0)


def cost_per_policy(spent: Decimal, policies_won: int) -> Decimal | None:
    if policies_won == 0:
        return None
    return (spent / policies_won).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
