"""Rows for tests: organisations, payments and stored provider events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.access.organizations import create_organization
from shared.models import (
    DISCREPANCY_SUBJECTS,
    Organization,
    Payment,
    ProviderAccount,
    ProviderEvent,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
    SettlementFile,
    SettlementPayout,
    discrepancy_provider,
)
from shared.providers.accounts import add_provider_account
from tests.support.signing import ADYEN_KEY, STANDARD_SECRET, STRIPE_SECRET

SECRETS = {"stripe": STRIPE_SECRET, "adyen": ADYEN_KEY, "standard": STANDARD_SECRET}


def make_org(session: Session, **settings) -> Organization:
    org = create_organization(session=session, name=f"Org {uuid.uuid4().hex[:6]}")
    for name, value in settings.items():
        setattr(org, name, value)
    session.flush()
    return org


def make_account(session: Session, org: Organization, provider: str = "stripe") -> ProviderAccount:
    return add_provider_account(
        session=session, org_id=org.id, provider=provider, secret=SECRETS[provider]
    )


def make_payment(session: Session, org: Organization, **fields) -> Payment:
    values = {
        "org_id": org.id,
        "external_id": f"inv_{uuid.uuid4().hex[:8]}",
        "provider": "stripe",
        "provider_reference": None,
        "amount_minor": 2500,
        "currency": "EUR",
        "status": "succeeded",
        "amount_refunded_minor": 0,
        "occurred_at": datetime.now(UTC) - timedelta(minutes=1),
    } | fields
    payment = Payment(**values)
    session.add(payment)
    session.flush()
    return payment


_PROVIDER_OF_SUBJECTS = text(f"SELECT {discrepancy_provider(prefix=':')}")


def make_discrepancy(session: Session, org: Organization, **fields) -> ReconciliationDiscrepancy:
    """An open MissingProviderRecord on a new payment of ``org``, with its ``opened`` entry;
    its provider derived from its subjects as opening does, unless given."""
    payment = make_payment(session, org)
    values = {
        "org_id": org.id,
        "type": "MissingProviderRecord",
        "severity": "medium",
        "payment_id": payment.id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
    } | fields
    subjects = {subject: values.get(subject) for subject in DISCREPANCY_SUBJECTS}
    if "provider" not in values:
        values["provider"] = session.scalar(_PROVIDER_OF_SUBJECTS, subjects)
    discrepancy = ReconciliationDiscrepancy(**values)
    session.add(discrepancy)
    session.flush()
    session.add(
        ReconciliationActionLog(
            org_id=org.id, discrepancy_id=discrepancy.id, action="opened", actor="system"
        )
    )
    session.flush()
    return discrepancy


def make_event(
    session: Session,
    account: ProviderAccount,
    event_type: str = "payment_intent.succeeded",
    payload: dict | None = None,
    **fields,
) -> ProviderEvent:
    event = ProviderEvent(
        org_id=account.org_id,
        provider_account_id=account.id,
        provider=account.provider,
        provider_event_id=f"evt_{uuid.uuid4().hex}",
        event_type=event_type,
        payload=payload or {},
        signature_verified=True,
        **fields,
    )
    session.add(event)
    session.flush()
    return event


def stripe_intent_event(
    event_type: str = "payment_intent.succeeded",
    *,
    intent_id: str = "pi_1",
    amount: int = 2500,
    currency: str = "eur",
    external_id: str | None = None,
    created: datetime | None = None,
    customer: str | None = None,
) -> dict:
    created = created or datetime.now(UTC) - timedelta(minutes=1)
    metadata = {"external_id": external_id} if external_id else {}
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created": int(created.timestamp()),
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "metadata": metadata,
                "customer": customer,
                "created": int(created.timestamp()),
            }
        },
    }


def stripe_refund_event(
    *,
    intent_id: str = "pi_1",
    refund_id: str = "re_1",
    amount: int = 2500,
    created: datetime | None = None,
    status: str = "succeeded",
) -> dict:
    created = created or datetime.now(UTC)
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "refund.created",
        "created": int(created.timestamp()),
        "data": {
            "object": {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "currency": "eur",
                "charge": "ch_1",
                "payment_intent": intent_id,
                "status": status,
                "created": int(created.timestamp()),
            }
        },
    }


def stripe_dispute_event(
    event_type: str = "charge.dispute.created",
    *,
    intent_id: str = "pi_1",
    status: str = "needs_response",
    amount: int = 1500,
    reason: str = "fraudulent",
    created: datetime | None = None,
    due_by: datetime | None = None,
) -> dict:
    created = created or datetime.now(UTC)
    due_by = due_by or created + timedelta(days=14)
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created": int(created.timestamp()),
        "data": {
            "object": {
                "id": f"dp_{intent_id}",
                "object": "dispute",
                "amount": amount,
                "currency": "eur",
                "charge": f"ch_{intent_id}",
                "payment_intent": intent_id,
                "reason": reason,
                "status": status,
                "evidence_details": {"due_by": int(due_by.timestamp())},
                "created": int(created.timestamp()),
            }
        },
    }


def make_settlement_payout(session: Session, org: Organization) -> SettlementPayout:
    """An imported (empty) Adyen settlement file of ``org`` and one payout of it."""
    file = SettlementFile(
        org_id=org.id, provider="adyen", layout="adyen_settlement_details",
        filename="batch_1.csv", sha256=uuid.uuid4().hex * 2, size_bytes=0,
        summary={"lines": 0, "payouts": 1, "already_known": {"lines": 0, "payouts": 0},
                 "totals": {"EUR": {"lines": 0, "net_minor": 0, "fees_minor": 0,
                                    "payouts_minor": 100}}},
    )  # fmt: skip
    session.add(file)
    session.flush()
    payout = SettlementPayout(
        org_id=org.id, file_id=file.id, provider="adyen", payout_id="1", currency="EUR",
        amount_minor=100, status="paid", booked_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(payout)
    session.flush()
    return payout
