"""Quotes rated from the product catalogue: a premium from a base rate per thousand of the sum
insured, by the insured's age band and the term, never below the product's minimum premium.

The catalogue is data (``services/sales/catalogue/<version>.json``), versioned: a quote names the
version that rated it, so a later catalogue never changes a premium already quoted."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from crm_shared.domain import CommandMeta, CrmAggregate
from crm_shared.errors import ValidationFailed

QUOTE_NAMESPACE = uuid.UUID("a47c2e91-0d3b-4f58-9e16-5b8d0c7a3f24")
CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "catalogue"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class AgeBand:
    lowest: int
    highest: int
    rate_per_thousand: dict[int, Decimal]  # term in years -> rate

    @property
    def label(self) -> str:
        return f"{self.lowest}-{self.highest}"


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    terms: tuple[int, ...]
    min_sum_insured: Decimal
    max_sum_insured: Decimal
    minimum_premium: Decimal
    bands: tuple[AgeBand, ...]

    def band_for(self, age: int) -> AgeBand:
        for band in self.bands:
            if band.lowest <= age <= band.highest:
                return band
        ages = ", ".join(b.label for b in self.bands)
        raise ValidationFailed.single(
            "customer_id", "not_eligible", f"{self.name} covers ages {ages}; the insured is {age}"
        )


@dataclass(frozen=True)
class Rating:
    catalogue_version: str
    product: str
    age: int
    age_band: str
    term_years: int
    sum_insured: Decimal
    rate_per_thousand: Decimal
    annual_premium: Decimal


@dataclass(frozen=True)
class Catalogue:
    version: str
    effective_from: date
    quote_valid_days: int
    products: dict[str, Product]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Catalogue:
        products = {
            code: Product(
                code=code,
                name=spec["name"],
                terms=tuple(spec["terms"]),
                min_sum_insured=Decimal(spec["sum_insured"]["min"]),
                max_sum_insured=Decimal(spec["sum_insured"]["max"]),
                minimum_premium=Decimal(spec["minimum_premium"]),
                bands=tuple(
                    AgeBand(
                        band["ages"][0],
                        band["ages"][1],
                        {int(term): Decimal(rate) for term, rate in band["by_term"].items()},
                    )
                    for band in spec["rate_per_thousand"]
                ),
            )
            for code, spec in data["products"].items()
        }
        return cls(
            data["version"], date.fromisoformat(data["effective_from"]), data["quote_valid_days"], products
        )

    def product(self, code: str) -> Product:
        if code not in self.products:
            raise ValidationFailed.single(
                "product", "one_of", f"the catalogue {self.version} offers {', '.join(sorted(self.products))}"
            )
        return self.products[code]

    def rate(self, product: str, age: int, term_years: int, sum_insured: Decimal) -> Rating:
        offered = self.product(product)
        if term_years not in offered.terms:
            raise ValidationFailed.single(
                "term_years",
                "one_of",
                f"{offered.name} is sold for {', '.join(map(str, offered.terms))} years",
            )
        if not offered.min_sum_insured <= sum_insured <= offered.max_sum_insured:
            raise ValidationFailed.single(
                "sum_insured",
                "range",
                f"{offered.name} insures {offered.min_sum_insured} to {offered.max_sum_insured}",
            )
        band = offered.band_for(age)
        rate = band.rate_per_thousand.get(term_years)
        if rate is None:
            terms = ", ".join(map(str, sorted(band.rate_per_thousand)))
            raise ValidationFailed.single(
                "term_years",
                "not_offered_at_age",
                f"at ages {band.label} {offered.name} is sold for {terms} years",
            )
        premium = max(
            offered.minimum_premium, (sum_insured / 1000 * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        )
        return Rating(self.version, product, age, band.label, term_years, sum_insured, rate, premium)


def load_catalogue(directory: Path = CATALOGUE_DIR) -> dict[str, Catalogue]:
    """Every version of the catalogue kept, by version."""
    catalogues = [Catalogue.from_data(json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]
    return {c.version: c for c in catalogues}


def catalogue_in_force(catalogues: dict[str, Catalogue], on: date) -> Catalogue:
    """The latest version in force on ``on``."""
    in_force = [c for c in catalogues.values() if c.effective_from <= on]
    if not in_force:
        raise ValidationFailed.single("start_date", "no_catalogue", f"no catalogue is in force on {on}")
    return max(in_force, key=lambda c: c.effective_from)


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


class Quote(CrmAggregate):
    class Issued(CrmAggregate.Created):
        EVENT_TYPE = "sales.quote_issued"
        quote_id: str
        customer_id: str
        agent_id: str
        product: str
        sum_insured: Decimal
        term_years: int
        start_date: date
        age: int
        age_band: str
        rate_per_thousand: Decimal
        annual_premium: Decimal
        catalogue_version: str
        issued_on: date
        valid_until: date

    class Accepted(CrmAggregate.Event):
        EVENT_TYPE = "sales.quote_accepted"
        quote_id: str
        customer_id: str
        policy_number: str

        def apply(self, quote: Quote) -> None:
            quote.policy_number = self.policy_number

    quote_id: str
    customer_id: str
    agent_id: str
    product: str
    sum_insured: Decimal
    term_years: int
    start_date: date
    age: int
    age_band: str
    rate_per_thousand: Decimal
    annual_premium: Decimal
    catalogue_version: str
    issued_on: date
    valid_until: date
    policy_number: str | None = None

    @classmethod
    def issue(
        cls,
        *,
        rating: Rating,
        customer_id: str,
        agent_id: str,
        start_date: date,
        issued_on: date,
        valid_days: int,
        meta: CommandMeta,
    ) -> Quote:
        quote_id = meta.derived_id(QUOTE_NAMESPACE)
        return cls._create(
            cls.Issued,
            id=quote_id,
            meta=meta.as_event_meta(),
            quote_id=str(quote_id),
            customer_id=customer_id,
            agent_id=agent_id,
            product=rating.product,
            sum_insured=rating.sum_insured,
            term_years=rating.term_years,
            start_date=start_date,
            age=rating.age,
            age_band=rating.age_band,
            rate_per_thousand=rating.rate_per_thousand,
            annual_premium=rating.annual_premium,
            catalogue_version=rating.catalogue_version,
            issued_on=issued_on,
            valid_until=issued_on + timedelta(days=valid_days),
        )

    def require_usable(self, customer_id: str, on: date, field: str = "quote_id") -> None:
        """A quote is sold once, to its customer, on or before its last valid day."""
        if self.customer_id != customer_id:
            raise ValidationFailed.single(
                field, "other_customer", f"quote {self.quote_id} is for another customer"
            )
        if self.policy_number is not None:
            raise ValidationFailed.single(
                field, "used", f"quote {self.quote_id} was sold already, as policy {self.policy_number}"
            )
        if on > self.valid_until:
            raise ValidationFailed.single(
                field,
                "expired",
                f"quote {self.quote_id} was valid until {self.valid_until}; issue a new quote",
            )

    def accept(self, policy_number: str, meta: CommandMeta) -> None:
        self.trigger_event(
            self.Accepted,
            meta=meta.as_event_meta(),
            quote_id=self.quote_id,
            customer_id=self.customer_id,
            policy_number=policy_number,
        )
