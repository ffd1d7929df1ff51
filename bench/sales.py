"""Internal payments and the Stripe events that settle them, for the event-processing bench.

About 2 % of the events state another amount than their payment (AmountMismatch); 30 %
of the payments know their PaymentIntent id (matched by provider reference), the rest
only their external id (matched by the event's ``metadata.external_id``).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from currencies import CURRENCIES
from environment import connect
from stripe_webhooks import event_id, stripe_event

from shared.platform.ids import new_id

MISMATCH_SHARE = 0.02
PROVIDER_REFERENCE_SHARE = 0.30
SEND_CHUNK = 2_000


@dataclass(frozen=True)
class Sale:
    """One internal payment and the Stripe PaymentIntent that settled it."""

    payment_id: uuid.UUID
    external_id: str
    intent_id: str
    intent_known: bool  # the billing side stored the pi_… id: a provider-reference match
    amount_minor: int
    provider_amount_minor: int  # differs from amount_minor for the deliberate mismatches
    currency: str
    customer: str
    occurred_at: datetime

    @property
    def mismatched(self) -> bool:
        return self.amount_minor != self.provider_amount_minor


@dataclass
class SaleMaker:
    """Makes sales with unique (customer, currency, amount) so no duplicate charge is
    suspected by accident: the only discrepancies are the deliberate AmountMismatches."""

    rng: random.Random
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    made: int = 0
    taken: set[tuple[str, str, int]] = field(default_factory=set)

    def _amount(self, customer: str, currency: str, low: int, high: int, step: int) -> int:
        while True:
            amount = self.rng.randrange(low // step, high // step) * step
            if (customer, currency, amount) not in self.taken:
                self.taken.add((customer, currency, amount))
                return amount

    def sales(self, count: int, phase: str) -> list[Sale]:
        """``count`` new sales, their external ids numbered within ``phase``."""
        codes = [entry[0] for entry in CURRENCIES]
        weights = [entry[1] for entry in CURRENCIES]
        ranges = {entry[0]: entry[2:] for entry in CURRENCIES}
        mismatched = set(self.rng.sample(range(count), round(count * MISMATCH_SHARE)))
        made = []
        for index in range(count):
            number = self.made + index
            currency = self.rng.choices(codes, weights)[0]
            customer = f"cus_B{number // 4:07d}"  # four payments per customer
            amount = self._amount(customer, currency, *ranges[currency])
            provider_amount = amount
            if index in mismatched:
                provider_amount = self._amount(customer, currency, *ranges[currency])
            made.append(
                Sale(
                    payment_id=new_id(),
                    external_id=f"INV-{phase}{number:08d}",
                    intent_id=f"pi_3B{number:08d}{uuid.uuid4().hex[:15]}",
                    intent_known=self.rng.random() < PROVIDER_REFERENCE_SHARE,
                    amount_minor=amount,
                    provider_amount_minor=provider_amount,
                    currency=currency,
                    customer=customer,
                    occurred_at=self.now - timedelta(seconds=self.rng.randrange(60, 7_200)),
                )
            )
        self.made += count
        return made


def load_payments(org_id: uuid.UUID, sales: list[Sale]) -> None:
    """The internal payments of ``sales``, with COPY (the billing side's bulk import)."""
    with connect(autocommit=True) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY payments (id, org_id, external_id, provider, provider_reference, "
            "amount_minor, currency, status, amount_refunded_minor, customer_ref, occurred_at) "
            "FROM STDIN"
        ) as copy:
            for sale in sales:
                copy.write_row(
                    (
                        sale.payment_id,
                        org_id,
                        sale.external_id,
                        "stripe",
                        sale.intent_id if sale.intent_known else None,
                        sale.amount_minor,
                        sale.currency,
                        "succeeded",
                        0,
                        sale.customer,
                        sale.occurred_at,
                    )
                )
        cursor.execute("ANALYZE payments")


def succeeded_event(sale: Sale, identifier: str) -> dict:
    """The ``payment_intent.succeeded`` Stripe sends for ``sale`` (the ingest bench's shape)."""
    created = int(sale.occurred_at.timestamp())
    event = stripe_event(identifier, created + 2)
    intent = event["data"]["object"]
    intent.update(
        id=sale.intent_id,
        amount=sale.provider_amount_minor,
        amount_received=sale.provider_amount_minor,
        currency=sale.currency.lower(),
        customer=sale.customer,
        created=created,
        client_secret=f"{sale.intent_id}_secret_{uuid.uuid4().hex[:25]}",
    )
    intent["metadata"]["external_id"] = sale.external_id
    return event


def store_events(
    org_id: uuid.UUID, account_id: uuid.UUID, sales: list[Sale], phase: str
) -> list[str]:
    """Verified events for ``sales`` written with COPY, as ingestion would have stored them;
    their row ids, in order."""
    ids = []
    with connect(autocommit=True) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY provider_events (id, org_id, provider_account_id, provider, "
            "provider_event_id, event_type, payload, signature_verified) FROM STDIN"
        ) as copy:
            for number, sale in enumerate(sales):
                row_id = new_id()
                identifier = event_id(phase, number)
                payload = json.dumps(succeeded_event(sale, identifier))
                copy.write_row(
                    (row_id, org_id, account_id, "stripe", identifier,
                     "payment_intent.succeeded", payload, True)
                )  # fmt: skip
                ids.append(str(row_id))
        cursor.execute("ANALYZE provider_events")
    return ids


def enqueue(ids: list[str]) -> int:
    """One process_event task per id, pushed to Redis the way ingestion does."""
    from shared.platform.dispatch import send_now
    from shared.platform.tasks import PROCESS_EVENT

    return sum(
        send_now(PROCESS_EVENT, ids[start : start + SEND_CHUNK])
        for start in range(0, len(ids), SEND_CHUNK)
    )
