"""The demo's data: one day of internal payments and the provider webhooks that describe them.

Pure and deterministic (a seeded generator, no I/O): ``build_demo_data`` returns the
payments to import and, per payment, the provider events in the order a provider sends
them. Most pairs agree; a few are deliberately wrong so that every discrepancy type
appears (``DELIBERATE`` says how many of each).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

# (currency, share, smallest, largest amount in minor units): EUR/USD/GBP in cents,
# JPY has no minor unit, KWD has three (fils).
CURRENCIES = (
    ("EUR", 40, 500, 50_000),
    ("USD", 25, 500, 50_000),
    ("GBP", 15, 500, 40_000),
    ("JPY", 12, 500, 60_000),
    ("KWD", 8, 1_000, 150_000),
)
PROVIDER_SHARES = (("stripe", 50), ("adyen", 30), ("standard", 20))
# Share of each internal status in percent; the rest succeeded.
STATUS_SHARES = (("refunded", 4), ("partially_refunded", 4), ("failed", 3))
CUSTOMERS = 400  # a customer pays again every CUSTOMERS payments: hours apart, never a duplicate
DELIBERATE = {
    "AmountMismatch": 4,
    "CurrencyMismatch": 2,
    "StatusMismatch": 3,
    "DuplicateChargeSuspected": 2,
    "MissingInternalRecord": 3,
    "MissingProviderRecord": 3,
    "DisputeOpened": 2,
}
OTHER_CURRENCY = {"EUR": "GBP", "USD": "EUR", "GBP": "EUR", "JPY": "USD", "KWD": "USD"}


@dataclass(frozen=True)
class Event:
    """One provider event before signing: the provider and its payload."""

    provider: str
    payload: dict[str, Any]


@dataclass
class DemoData:
    """Payments to import and webhook sequences to send (one sequence per payment)."""

    payments: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[list[Event]] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        """How many provider events the sequences hold."""
        return sum(len(sequence) for sequence in self.sequences)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _weighted(rng: random.Random, shares: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    return rng.choices(shares, weights=[share[1] for share in shares])[0]


def _status(rng: random.Random) -> str:
    roll = rng.uniform(0, 100)
    for status, share in STATUS_SHARES:
        if roll < share:
            return status
        roll -= share
    return "succeeded"


def _refunded(rng: random.Random, status: str, amount: int) -> int:
    if status == "refunded":
        return amount
    if status == "partially_refunded":
        return max(1, amount * rng.randint(10, 60) // 100)
    return 0


def _payment(rng: random.Random, index: int, occurred_at: datetime) -> dict[str, Any]:
    provider = _weighted(rng, PROVIDER_SHARES)[0]
    currency, _, low, high = _weighted(rng, CURRENCIES)
    amount = rng.randint(low, high)
    status = _status(rng)
    reference = {
        "stripe": f"pi_demo{index:05d}",
        "adyen": f"PSP{8800000000 + index:013d}",
        "standard": f"pay_demo{index:05d}",
    }[provider]
    # The billing side does not always know the provider's id: those match by external_id.
    known = rng.random() < {"stripe": 0.7, "adyen": 0.5, "standard": 0.5}[provider]
    return {
        "external_id": f"inv_{index + 10001}",
        "provider": provider,
        "provider_reference": reference if known else None,
        "amount_minor": amount,
        "currency": currency,
        "status": status,
        "amount_refunded_minor": _refunded(rng, status, amount),
        "customer_ref": f"cus_{index % CUSTOMERS:04d}",
        "occurred_at": _iso(occurred_at),
        # Not sent to the API (removed in ``importable``): the provider's own id.
        "_reference": reference,
    }


def importable(payment: dict[str, Any]) -> dict[str, Any]:
    """The payment as ``POST /billing/payments`` takes it."""
    return {key: value for key, value in payment.items() if not key.startswith("_")}


# --- provider payloads -------------------------------------------------------------------


def stripe_intent(
    event_type: str, *, intent: str, external_id: str | None, amount: int, currency: str,
    customer: str | None, at: datetime,
) -> Event:  # fmt: skip
    """A Stripe ``payment_intent.*`` event."""
    metadata = {"external_id": external_id} if external_id else {}
    return Event(
        "stripe",
        {
            "id": f"evt_{intent}_{event_type.rsplit('.', 1)[-1]}",
            "object": "event",
            "type": event_type,
            "created": _unix(at),
            "livemode": False,
            "data": {
                "object": {
                    "id": intent,
                    "object": "payment_intent",
                    "amount": amount,
                    "currency": currency.lower(),
                    "customer": customer,
                    "metadata": metadata,
                    "created": _unix(at),
                }
            },
        },
    )


def stripe_refund(*, intent: str, amount: int, currency: str, at: datetime) -> Event:
    """A succeeded Stripe ``refund.created`` event for the PaymentIntent ``intent``."""
    refund_id = "re_" + intent.removeprefix("pi_")
    return Event(
        "stripe",
        {
            "id": f"evt_{refund_id}",
            "object": "event",
            "type": "refund.created",
            "created": _unix(at),
            "livemode": False,
            "data": {
                "object": {
                    "id": refund_id,
                    "object": "refund",
                    "amount": amount,
                    "currency": currency.lower(),
                    "charge": "ch_" + intent.removeprefix("pi_"),
                    "payment_intent": intent,
                    "status": "succeeded",
                    "created": _unix(at),
                }
            },
        },
    )


def adyen_item(
    event_code: str, *, psp: str, original: str | None, merchant_reference: str | None,
    amount: int, currency: str, success: bool, shopper: str | None, at: datetime,
) -> Event:  # fmt: skip
    """A notification of one Adyen ``NotificationRequestItem`` (unsigned)."""
    item: dict[str, Any] = {
        "eventCode": event_code,
        "success": "true" if success else "false",
        "pspReference": psp,
        "merchantAccountCode": "DemoLtdECOM",
        "merchantReference": merchant_reference or "",
        "amount": {"value": amount, "currency": currency},
        "eventDate": _iso(at),
        "paymentMethod": "visa",
        "additionalData": {"shopperReference": shopper} if shopper else {},
    }
    if original:
        item["originalReference"] = original
    if not success:
        item["reason"] = "Refused"
    notification = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    return Event("adyen", notification)


def standard_payment(
    event_type: str, *, payment_id: str, merchant_reference: str | None, amount: int,
    currency: str, refunded: int, customer: str | None, occurred_at: datetime, at: datetime,
) -> Event:  # fmt: skip
    """A Standard Webhooks ``payment.<status>`` message body."""
    return Event(
        "standard",
        {
            "type": event_type,
            "timestamp": _iso(at),
            "data": {
                "id": payment_id,
                "merchant_reference": merchant_reference,
                "amount": amount,
                "currency": currency,
                "amount_refunded": refunded,
                "customer": customer,
                "occurred_at": _iso(occurred_at),
            },
        },
    )


# --- what each provider sends for one payment --------------------------------------------


@dataclass(frozen=True)
class Seen:
    """The payment as the provider saw it (a deliberate case changes some of it)."""

    reference: str
    external_id: str | None
    amount: int
    currency: str
    status: str  # succeeded or failed: the charge itself
    refunded: int
    customer: str | None
    occurred_at: datetime
    refunded_at: datetime


def _stripe_events(seen: Seen) -> list[Event]:
    event_type = (
        "payment_intent.succeeded"
        if seen.status == "succeeded"
        else "payment_intent.payment_failed"
    )
    events = [
        stripe_intent(
            event_type, intent=seen.reference, external_id=seen.external_id, amount=seen.amount,
            currency=seen.currency, customer=seen.customer, at=seen.occurred_at,
        )
    ]  # fmt: skip
    if seen.refunded:
        events.append(
            stripe_refund(
                intent=seen.reference, amount=seen.refunded, currency=seen.currency,
                at=seen.refunded_at,
            )
        )  # fmt: skip
    return events


def _adyen_events(seen: Seen) -> list[Event]:
    events = [
        adyen_item(
            "AUTHORISATION", psp=seen.reference, original=None,
            merchant_reference=seen.external_id, amount=seen.amount, currency=seen.currency,
            success=seen.status == "succeeded", shopper=seen.customer, at=seen.occurred_at,
        )
    ]  # fmt: skip
    if seen.refunded:
        events.append(
            adyen_item(
                "REFUND", psp="R" + seen.reference, original=seen.reference,
                merchant_reference=seen.external_id, amount=seen.refunded,
                currency=seen.currency, success=True, shopper=None, at=seen.refunded_at,
            )
        )  # fmt: skip
    return events


def _standard_events(seen: Seen) -> list[Event]:
    first = "payment.succeeded" if seen.status == "succeeded" else "payment.failed"
    common = {
        "payment_id": seen.reference, "merchant_reference": seen.external_id,
        "amount": seen.amount, "currency": seen.currency, "customer": seen.customer,
        "occurred_at": seen.occurred_at,
    }  # fmt: skip
    events = [standard_payment(first, refunded=0, at=seen.occurred_at, **common)]
    if seen.refunded:
        kind = "payment.refunded" if seen.refunded == seen.amount else "payment.partially_refunded"
        events.append(standard_payment(kind, refunded=seen.refunded, at=seen.refunded_at, **common))
    return events


def stripe_dispute(*, intent: str, amount: int, currency: str, at: datetime) -> Event:
    """A Stripe ``charge.dispute.created`` event: the whole amount of ``intent`` disputed,
    evidence due in a week."""
    dispute_id = "dp_" + intent.removeprefix("pi_")
    return Event(
        "stripe",
        {
            "id": f"evt_{dispute_id}",
            "object": "event",
            "type": "charge.dispute.created",
            "created": _unix(at),
            "livemode": False,
            "data": {
                "object": {
                    "id": dispute_id,
                    "object": "dispute",
                    "amount": amount,
                    "currency": currency.lower(),
                    "charge": "ch_" + intent.removeprefix("pi_"),
                    "payment_intent": intent,
                    "reason": "fraudulent",
                    "status": "needs_response",
                    "evidence_details": {"due_by": _unix(at + timedelta(days=7))},
                    "created": _unix(at),
                }
            },
        },
    )


PROVIDER_EVENTS = {"stripe": _stripe_events, "adyen": _adyen_events, "standard": _standard_events}


def _seen(payment: dict[str, Any], day_end: datetime) -> Seen:
    occurred = datetime.fromisoformat(payment["occurred_at"]) + timedelta(seconds=2)
    return Seen(
        reference=payment["_reference"],
        external_id=payment["external_id"],
        amount=payment["amount_minor"],
        currency=payment["currency"],
        status="failed" if payment["status"] == "failed" else "succeeded",
        refunded=payment["amount_refunded_minor"],
        customer=payment["customer_ref"],
        occurred_at=occurred,
        refunded_at=min(occurred + timedelta(hours=2), day_end - timedelta(minutes=1)),
    )


def _tampered(kind: str, seen: Seen) -> Seen:
    """What the provider says in a deliberate case of ``kind``."""
    changes: dict[str, Any] = {
        "AmountMismatch": {"amount": seen.amount + max(1, seen.amount // 10)},
        "CurrencyMismatch": {"currency": OTHER_CURRENCY[seen.currency]},
        "StatusMismatch": {"status": "failed"},
    }.get(kind, {})
    return Seen(**{**seen.__dict__, **changes})


def _duplicate_intent(payment: dict[str, Any], seen: Seen) -> Event:
    # A retry that charged the customer again: a second PaymentIntent, same external_id.
    return stripe_intent(
        "payment_intent.succeeded", intent=seen.reference + "dup",
        external_id=payment["external_id"], amount=seen.amount, currency=seen.currency,
        customer=seen.customer, at=seen.occurred_at + timedelta(seconds=40),
    )  # fmt: skip


def _unknown_payment(number: int, provider: str, at: datetime) -> list[Event]:
    # Charged at the provider, never recorded by billing: an external_id billing never issued.
    seen = Seen(
        reference={"stripe": f"pi_orphan{number}", "standard": f"pay_orphan{number}"}[provider],
        external_id=f"inv_unknown_{number}",
        amount=4_213 + 1_000 * number,
        currency="USD",
        status="succeeded",
        refunded=0,
        customer=f"cus_walkin_{number}",
        occurred_at=at,
        refunded_at=at,
    )
    return PROVIDER_EVENTS[provider](seen)


def _pick_deliberate(rng: random.Random, payments: list[dict[str, Any]]) -> dict[int, str]:
    """Which payment carries which deliberate case (succeeded payments only, disjoint)."""
    chosen: dict[int, str] = {}
    plain = [i for i, p in enumerate(payments) if p["status"] == "succeeded"]
    rng.shuffle(plain)
    # Missing internal records are separate provider payments, not tampered ones.
    for kind, count in DELIBERATE.items():
        if kind == "MissingInternalRecord":
            continue
        # A duplicate is two Stripe PaymentIntents; a missing provider record is an Adyen
        # payment, so that no unknown (Stripe/Standard) provider payment can pair with it.
        wanted = {
            "DuplicateChargeSuspected": "stripe",
            "MissingProviderRecord": "adyen",
            "DisputeOpened": "stripe",
        }
        fits = [i for i in plain if i not in chosen]
        if kind in wanted:
            fits = [i for i in fits if payments[i]["provider"] == wanted[kind]]
        for index in fits[:count]:
            chosen[index] = kind
    return chosen


def build_demo_data(day: date, count: int = 3_000, seed: int = 7) -> DemoData:
    """``count`` payments spread over ``day`` (UTC) and the webhooks their providers send."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    start = datetime.combine(day, time(0, 5), UTC)
    day_end = datetime.combine(day + timedelta(days=1), time.min, UTC)
    step = (day_end - timedelta(minutes=30) - start) / count
    payments = [
        _payment(rng, index, start + step * index + timedelta(seconds=rng.randint(0, 20)))
        for index in range(count)
    ]
    chosen = _pick_deliberate(rng, payments)
    data = DemoData(payments=[importable(payment) for payment in payments])
    for index, payment in enumerate(payments):
        kind = chosen.get(index)
        if kind == "MissingProviderRecord":
            continue
        seen = _seen(payment, day_end)
        events = PROVIDER_EVENTS[payment["provider"]](_tampered(kind or "", seen))
        if kind == "DuplicateChargeSuspected":
            events.append(_duplicate_intent(payment, seen))
        if kind == "DisputeOpened":
            at = seen.occurred_at + timedelta(minutes=20)
            events.append(
                stripe_dispute(
                    intent=seen.reference, amount=seen.amount, currency=seen.currency, at=at
                )
            )
        data.sequences.append(events)
    for number in range(DELIBERATE["MissingInternalRecord"]):
        at = start + timedelta(hours=3 + 6 * number, minutes=17)
        data.sequences.append(_unknown_payment(number, ("stripe", "standard")[number % 2], at))
    rng.shuffle(data.sequences)
    return data
