"""One organisation's day of payments and provider records for the period-run bench.

Stripe (``pi_…``) and Adyen (16-digit pspReference), six currencies, many customers,
succeeded/refunded/partially refunded/failed/canceled; 70 % of the payments know their
provider reference, the rest match by merchant reference (= external id), 1 % by the
heuristic only; about 2 % of rows are seeded discrepancies, spread evenly over the seven
types. Rows are COPY text lines, in the shape the incremental path leaves them before
the daily run: each record bound to its payment, except an unbound share.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from currencies import CURRENCIES
from environment import connect

from shared.models import MATCHING_DISCREPANCY_TYPES
from shared.platform.ids import new_id

TYPES = MATCHING_DISCREPANCY_TYPES
DISCREPANCY_SHARE = 0.02  # of the payments, spread evenly over TYPES
HEURISTIC_SHARE = 0.01  # of the clean rows: no reference on either side
PROVIDER_REFERENCE_SHARE = 0.70  # of the payments: the rest only know their external id
ADYEN_SHARE = 0.25
# Clean rows' statuses (payment and record agree): (status, weight).
STATUSES = (
    ("succeeded", 85),
    ("refunded", 4),
    ("partially_refunded", 3),
    ("failed", 6),
    ("canceled", 2),
)
CHUNK = 20_000
DAY_SECONDS = 86_400
EDGE_SECONDS = 300  # seeded cases stay this far from midnight: they belong to the day
PAYMENT_COLUMNS = (
    "id, org_id, external_id, provider, provider_reference, amount_minor, currency, status, "
    "amount_refunded_minor, customer_ref, occurred_at, created_at, updated_at"
)
RECORD_COLUMNS = (
    "id, org_id, provider, provider_reference, merchant_reference, amount_minor, currency, status, "
    "amount_refunded_minor, customer_ref, occurred_at, last_event_at, payment_status, status_at, "
    "refunds, reported_refunded_minor, created_at, updated_at, payment_id, match_method, "
    "matched_at, dispute_status, dispute_amount_minor"
)
SEEDED_DISPUTES = ("open", "under_review", "lost")  # each finds DisputeOpened


@dataclass
class Seeded:
    """What the generator made: rows written and discrepancies planted, by type."""

    payments: int = 0
    records: int = 0
    by_method: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)


def _copy_text(value) -> str:
    return "\\N" if value is None else str(value)


class Generator:
    """Payments and provider records of one day, as COPY text lines, ``CHUNK`` at a time."""

    def __init__(
        self, org_id: uuid.UUID, day: date, count: int, seed: int, unbound_share: float
    ) -> None:
        self.org = str(org_id)
        self.unbound_share = unbound_share
        self.start = datetime.combine(day, datetime.min.time(), UTC)
        self.count = count
        self.random = random.Random(seed)
        self.seeded = Seeded()
        self.customers = max(count // 4, 10)
        self.codes = [c[0] for c in CURRENCIES]
        self.ranges = {c[0]: c[2:] for c in CURRENCIES}
        self.weights = [c[1] for c in CURRENCIES]
        self.statuses = [s[0] for s in STATUSES]
        self.status_weights = [s[1] for s in STATUSES]
        self.unique_amount = 0  # rows left unbound get distinct amounts: no heuristic pairs
        self.tag = f"{seed % 100:02d}"

    # Small pieces -------------------------------------------------------------------

    def _time(self, seconds: float) -> str:
        return (self.start + timedelta(seconds=seconds)).isoformat()

    def _id(self, seconds: float) -> uuid.UUID:
        """The id the service gives a row it creates at that moment (time-ordered)."""
        return new_id(self.start + timedelta(seconds=seconds))

    def _amount(self, currency: str) -> int:
        low, high, step = self.ranges[currency]
        return self.random.randrange(low, high, step)

    def _distinct_amount(self, currency: str) -> int:
        self.unique_amount += 1
        low, _, step = self.ranges[currency]
        return low + 7 * step * self.unique_amount

    def _reference(self, provider: str, number: int, variant: int = 0) -> str:
        if provider == "stripe":
            return f"pi_3P{self.tag}{variant}{number:010d}{self.random.getrandbits(40):010x}"
        return f"{88 + variant:02d}{number:014d}"

    def _payment(self, ext, provider, reference, amount, currency, status, refunded, customer, at):
        """The payment's COPY line, and its id."""
        self.seeded.payments += 1
        created = self._time(at + 2)
        payment_id = str(self._id(at + 2))
        line = "\t".join(
            (payment_id, self.org, ext, provider, _copy_text(reference), str(amount), currency,
             status, str(refunded), customer, self._time(at), created, created)
        )  # fmt: skip
        return line, payment_id

    def _record(self, provider, reference, merchant, amount, currency, status, refunded,
                customer, at, payment_id=None, method=None, dispute=None):  # fmt: skip
        """The record's COPY line; bound to ``payment_id`` as the incremental path would
        have bound it, unless it is one of the ``unbound_share`` still unprocessed."""
        self.seeded.records += 1
        occurred = self._time(at)
        settled = self._time(at + 3600) if refunded else occurred
        base = "succeeded" if status in ("refunded", "partially_refunded") else status
        if payment_id is not None and self.random.random() < self.unbound_share:
            payment_id = method = None
        matched = None if payment_id is None else self._time(at + 2)
        return "\t".join(
            (str(self._id(at + 1)), self.org, provider, reference, _copy_text(merchant),
             str(amount), currency, status, str(refunded), customer, occurred, settled, base,
             occurred, "{}", str(refunded), self._time(at + 1), settled, _copy_text(payment_id),
             _copy_text(method), _copy_text(matched), _copy_text(dispute),
             _copy_text(dispute and str(amount // 2)))
        )  # fmt: skip

    # Rows ---------------------------------------------------------------------------

    def rows(self, number: int) -> tuple[list[str], list[str]]:
        """The payment lines and record lines of sale ``number``."""
        rnd = self.random
        provider = "adyen" if rnd.random() < ADYEN_SHARE else "stripe"
        currency = rnd.choices(self.codes, self.weights)[0]
        customer = f"cus_{rnd.randrange(self.customers):09d}"
        ext = f"inv_{self.tag}{number:010d}"
        reference = self._reference(provider, number)
        knows_reference = rnd.random() < PROVIDER_REFERENCE_SHARE
        roll = rnd.random()
        share = DISCREPANCY_SHARE / len(TYPES)
        if roll < DISCREPANCY_SHARE:
            kind = TYPES[int(roll / share)]
            self.seeded.by_type[kind] += 1
            return self._discrepancy(
                kind, number, provider, currency, customer, ext, reference, knows_reference
            )
        at = rnd.uniform(0, DAY_SECONDS)  # clean rows may spill over midnight
        delay = rnd.uniform(0.5, 90)
        status = rnd.choices(self.statuses, self.status_weights)[0]
        if rnd.random() < HEURISTIC_SHARE:
            amount = self._distinct_amount(currency)
            self.seeded.by_method["heuristic"] += 1
            payment, payment_id = self._payment(ext, provider, None, amount, currency, status,
                                                0, customer, at)  # fmt: skip
            return (
                [payment],
                [self._record(provider, reference, None, amount, currency, status, 0, customer,
                              at + delay, payment_id, "heuristic")],
            )  # fmt: skip
        amount = self._amount(currency)
        refunded = {"refunded": amount, "partially_refunded": amount // 3}.get(status, 0)
        method = "provider_reference" if knows_reference else "merchant_reference"
        self.seeded.by_method[method] += 1
        known = reference if knows_reference else None
        payment, payment_id = self._payment(ext, provider, known, amount, currency, status,
                                            refunded, customer, at)  # fmt: skip
        return (
            [payment],
            [self._record(provider, reference, ext, amount, currency, status, refunded,
                          customer, at + delay, payment_id, method)],
        )  # fmt: skip

    def _discrepancy(self, kind, number, provider, currency, customer, ext, reference, knows):
        rnd = self.random
        at = rnd.uniform(EDGE_SECONDS, DAY_SECONDS - EDGE_SECONDS)
        delay = rnd.uniform(0.5, 90)
        known = reference if knows else None
        if kind == "MissingInternalRecord":  # the provider charged; billing knows nothing
            amount = self._distinct_amount(currency)
            merchant = f"ord_lost_{self.tag}{number:010d}" if rnd.random() < 0.5 else None
            return [], [self._record(provider, reference, merchant, amount, currency,
                                     "succeeded", 0, customer, at)]  # fmt: skip
        if kind == "MissingProviderRecord":  # billing says paid; the provider never told
            amount = self._distinct_amount(currency)
            payment, _ = self._payment(ext, provider, known, amount, currency, "succeeded", 0,
                                       customer, at)  # fmt: skip
            return [payment], []
        amount = self._amount(currency)
        payment_status, record_status = "succeeded", "succeeded"
        record_amount, record_currency = amount, currency
        if kind == "AmountMismatch":
            low, _, step = self.ranges[currency]
            record_amount = amount + rnd.choice((-1, 1)) * step * rnd.randrange(1, 500)
            if record_amount < low:
                record_amount = amount + step * rnd.randrange(1, 500)
        elif kind == "CurrencyMismatch":
            record_currency = rnd.choice([c for c in self.codes if c != currency])
        elif kind == "StatusMismatch":
            payment_status, record_status = rnd.choice(
                (("failed", "succeeded"), ("succeeded", "failed"), ("canceled", "succeeded"))
            )
        payment, payment_id = self._payment(ext, provider, known, amount, currency,
                                            payment_status, 0, customer, at)  # fmt: skip
        method = "provider_reference" if knows else "merchant_reference"
        dispute = rnd.choice(SEEDED_DISPUTES) if kind == "DisputeOpened" else None
        records = [self._record(provider, reference, ext, record_amount, record_currency,
                                record_status, 0, customer, at + delay, payment_id,
                                method, dispute)]  # fmt: skip
        if kind == "DuplicateChargeSuspected":  # charged twice for one invoice
            second = self._reference(provider, number, variant=1)
            records.append(self._record(provider, second, ext, amount, currency, "succeeded", 0,
                                        customer, at + delay + rnd.uniform(5, 120), payment_id,
                                        "merchant_reference"))  # fmt: skip
        return [payment], records

    def chunks(self):
        """(payment lines, record lines), ``CHUNK`` sales at a time."""
        for first in range(0, self.count, CHUNK):
            payments: list[str] = []
            records: list[str] = []
            for number in range(first, min(first + CHUNK, self.count)):
                made_payments, made_records = self.rows(number)
                payments += made_payments
                records += made_records
            yield payments, records


def load(org_id: uuid.UUID, day: date, count: int, seed: int, unbound_share: float) -> Seeded:
    """Generate and COPY both tables at once (one connection per table), then VACUUM ANALYZE.

    The records stream names payments the other stream has not committed yet, so it skips
    the foreign-key triggers (``session_replication_role = replica``, as ``pg_restore
    --disable-triggers``; the bench's admin URL is a superuser's): the ids are consistent
    by construction.
    """
    generator = Generator(org_id, day, count, seed, unbound_share)
    payments_copy = f"COPY payments ({PAYMENT_COLUMNS}) FROM STDIN"
    records_copy = f"COPY provider_records ({RECORD_COLUMNS}) FROM STDIN"
    with (
        connect() as payments_db,
        connect(options="-c session_replication_role=replica") as records_db,
        payments_db.cursor().copy(payments_copy) as to_payments,
        records_db.cursor().copy(records_copy) as to_records,
    ):
        for payments, records in generator.chunks():
            if payments:
                to_payments.write("\n".join(payments) + "\n")
            if records:
                to_records.write("\n".join(records) + "\n")
    with connect(autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE payments")
        connection.execute("VACUUM ANALYZE provider_records")
    return generator.seeded
