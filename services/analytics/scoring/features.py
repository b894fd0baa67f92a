"""What the scores are made of: a customer's facts at a moment, read from their 360 document alone
(a pure function, so the scheduled recompute, the live churn check and a backtest over the history
all see the same numbers).

Premium is counted as earned: each policy's annual premium pro rata over the days of a window it
was in force (sold or renewed, not yet lapsed or cancelled, not past its end), so a policy
cancelled in March counts for January to March. Windows are the twelve months before the moment
and the twelve before those (to see premium falling)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

Document = dict[str, Any]
YEAR = timedelta(days=365)
# Statuses after which a policy earns nothing until it is reinstated.
ENDING = ("lapsed", "cancelled")


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    return date.fromisoformat(text[:10]) if len(text) <= 10 else datetime.fromisoformat(text).date()


def moment_of(text: str) -> datetime:
    """A stored time in UTC; a bare day is its midnight in UTC."""
    return datetime.fromisoformat(text if "T" in text else f"{text}T00:00:00+00:00").astimezone(UTC)


@dataclass(frozen=True)
class Features:
    customer_id: str
    owning_agent_id: str | None
    erased: bool
    registered_at: datetime | None
    policies_ever: int
    policies_in_force: int
    first_policy_on: date | None
    # Premium earned in the twelve months before the moment, and in the twelve before those.
    premium_12m: Decimal
    premium_prior_12m: Decimal
    annual_premium_in_force: Decimal
    # Sales, renewals and payments: when the customer last bought or paid, how often in a year.
    last_transaction_on: date | None
    transactions_12m: int
    renewals: int
    lapses_12m: int
    cancellations_12m: int
    lapses_ever: int
    late_payments: int
    claims_36m: int
    claims_paid_36m: Decimal
    premium_36m: Decimal
    policy_years_36m: float
    # The last day any policy was in force (today while one is).
    in_force_until: date | None
    complaints_90d: int
    complaints_12m: int
    open_complaints: int
    breaches_12m: int
    last_satisfaction: float | None
    satisfaction_12m: float | None
    last_contact_at: datetime | None
    days_since_contact: int | None

    @property
    def is_prospect(self) -> bool:
        return self.policies_ever == 0


def _registered(text: str | None) -> datetime | None:
    return moment_of(text) if text else None


def _status_spans(doc: Document) -> dict[str, list[tuple[date, str]]]:
    """Each policy's changes of status in time order: (day, status)."""
    spans: dict[str, list[tuple[date, str]]] = {}
    for entry in doc.get("policy_status_history", []):
        day = _day(entry["at"])
        assert day is not None
        spans.setdefault(entry["policy_number"], []).append((day, entry["status"]))
    for changes in spans.values():
        changes.sort()
    return spans


def _in_force_days(policy: dict[str, Any], changes: list[tuple[date, str]], start: date, end: date) -> int:
    """Days of [start, end) the policy was in force."""
    began = _day(policy["start_date"])
    ends = _day(policy["end_date"])
    assert began is not None and ends is not None
    days = 0
    # Walk the policy's status changes: in force from its start until a lapse or cancellation,
    # again from a reinstatement, never past its end date.
    in_force_from: date | None = began
    for day, status in changes:
        if status in ENDING and in_force_from is not None:
            days += _overlap(in_force_from, min(day, ends), start, end)
            in_force_from = None
        elif status not in ENDING and in_force_from is None:
            in_force_from = max(day, began)
    if in_force_from is not None:
        days += _overlap(in_force_from, ends, start, end)
    return days


def _last_in_force(policy: dict[str, Any], changes: list[tuple[date, str]], today: date) -> date | None:
    """The last day up to ``today`` the policy was in force (None: it had not started)."""
    began, ends = _day(policy["start_date"]), _day(policy["end_date"])
    assert began is not None and ends is not None
    if began > today:
        return None
    last, in_force = None, True
    for day, status in changes:
        if day > today:
            break
        if status in ENDING and in_force:
            last, in_force = min(day, ends), False
        elif status not in ENDING and not in_force:
            in_force = True
    return min(today, ends) if in_force else last


def _overlap(a: date, b: date, start: date, end: date) -> int:
    return max(0, (min(b, end) - max(a, start)).days)


def _earned(
    doc: Document, spans: dict[str, list[tuple[date, str]]], start: date, end: date
) -> tuple[Decimal, float]:
    """Premium earned over [start, end), and the policy-years in force."""
    total, days_in_force = Decimal(0), 0
    for policy in doc.get("policies", []):
        days = _in_force_days(policy, spans.get(policy["policy_number"], []), start, end)
        total += Decimal(policy["annual_premium"]) * days / 365
        days_in_force += days
    return total.quantize(Decimal("0.01")), days_in_force / 365


def features_of(doc: Document, at: datetime) -> Features:
    today = at.astimezone(UTC).date()
    year_ago, two_years_ago, three_years_ago = today - YEAR, today - 2 * YEAR, today - 3 * YEAR
    spans = _status_spans(doc)
    policies = doc.get("policies", [])
    in_force = [
        p
        for p in policies
        if p["status"] == "active"
        and (_day(p["start_date"]) or today) <= today < (_day(p["end_date"]) or today)
    ]
    history = doc.get("policy_status_history", [])

    def events_since(status: str, since: date) -> int:
        return sum(1 for e in history if e["status"] == status and since <= (_day(e["at"]) or today) <= today)

    transactions = [d for p in policies if (d := _day(p["start_date"])) is not None and d <= today]
    transactions += [
        d for e in history if e["reason"].startswith("renewed") and (d := _day(e["at"])) is not None
    ]
    transactions += [d for p in policies if (d := _day(p.get("last_paid_on"))) is not None]
    transactions = [d for d in transactions if d <= today]
    claims = [c for c in doc.get("claims", []) if three_years_ago <= (_day(c["loss_date"]) or today) <= today]
    complaints = [t for t in doc.get("tickets", []) if t["kind"] == "complaint"]

    def opened_since(since: date) -> int:
        return sum(1 for t in complaints if since <= moment_of(t["opened_at"]).date() <= today)

    scores = [
        (moment_of(s["at"]), float(s["score"]))
        for s in doc.get("satisfaction_history", [])
        if s.get("score") is not None and moment_of(s["at"]) <= at
    ]
    # By time only: answers of one moment keep the history's order, so the last given is the last.
    scores.sort(key=lambda pair: pair[0])
    recent_scores = [score for moment, score in scores if moment.date() >= year_ago]
    contacts = [
        moment_of(a["completed_at"])
        for a in doc.get("activities", [])
        if a["state"] == "done" and a.get("completed_at")
    ]
    contacts += [moment_of(t["opened_at"]) for t in doc.get("tickets", [])]
    calls = [s for s in doc.get("satisfaction_history", []) if s["source"] == "call_back"]
    contacts += [moment_of(s["at"]) for s in calls]
    contacts = [c for c in contacts if c <= at]
    last_contact = max(contacts, default=None)
    first_policy = min((d for p in policies if (d := _day(p["start_date"])) is not None), default=None)
    registered = doc.get("registered_at")
    premium_36m, policy_years_36m = _earned(doc, spans, three_years_ago, today)
    return Features(
        customer_id=str(doc["customer_id"]),
        owning_agent_id=doc.get("owning_agent_id"),
        erased=doc.get("erased_at") is not None,
        registered_at=moment_of(registered) if registered else None,
        policies_ever=len(policies),
        policies_in_force=len(in_force),
        first_policy_on=first_policy,
        premium_12m=_earned(doc, spans, year_ago, today)[0],
        premium_prior_12m=_earned(doc, spans, two_years_ago, year_ago)[0],
        annual_premium_in_force=sum((Decimal(p["annual_premium"]) for p in in_force), Decimal(0)),
        last_transaction_on=max(transactions, default=None),
        transactions_12m=sum(1 for d in transactions if d >= year_ago),
        renewals=sum(1 for e in history if e["reason"].startswith("renewed")),
        lapses_12m=events_since("lapsed", year_ago),
        cancellations_12m=events_since("cancelled", year_ago),
        lapses_ever=sum(1 for e in history if e["status"] == "lapsed"),
        late_payments=int(doc.get("late_payment_count", 0)),
        claims_36m=len(claims),
        claims_paid_36m=sum((Decimal(c["amount_paid"] or 0) for c in claims), Decimal(0)),
        premium_36m=premium_36m,
        policy_years_36m=round(policy_years_36m, 3),
        in_force_until=max(
            (
                d
                for p in policies
                if (d := _last_in_force(p, spans.get(p["policy_number"], []), today)) is not None
            ),
            default=None,
        ),
        complaints_90d=opened_since(today - timedelta(days=90)),
        complaints_12m=opened_since(year_ago),
        open_complaints=int(doc.get("open_complaint_count", 0)),
        breaches_12m=sum(
            1
            for t in doc.get("tickets", [])
            if t.get("breached_at") and moment_of(t["breached_at"]).date() >= year_ago
        ),
        last_satisfaction=scores[-1][1] if scores else None,
        satisfaction_12m=round(sum(recent_scores) / len(recent_scores), 2) if recent_scores else None,
        last_contact_at=last_contact,
        # A customer never contacted counts from their registration.
        days_since_contact=None
        if (since := last_contact or _registered(registered)) is None
        else (at - since).days,
    )
