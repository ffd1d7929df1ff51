"""Payouts and CSV statements for the payout matching tests."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.bank.csv_format import CsvMapping
from shared.bank.imports import StatementImport, import_statement_file
from shared.models import (
    BankPayoutLink,
    Organization,
    ReconciliationDiscrepancy,
    SettlementFile,
    SettlementPayout,
)

IBAN = "NL91ABNA0417164300"
MAPPING = CsvMapping(
    account=IBAN,
    currency="EUR",
    date_column="Booking date",
    debit_column="Debit",
    credit_column="Credit",
    counterparty_column="Counterparty",
    text_column="Details",
    reference_column="Reference",
    date_format="%Y-%m-%d",
    delimiter=";",
)
HEADER = "Booking date;Debit;Credit;Counterparty;Details;Reference"


def make_payout(
    session: Session,
    org: Organization,
    payout_id: str,
    amount_minor: int,
    arrival: date,
    *,
    provider: str = "stripe",
    currency: str = "EUR",
    status: str = "paid",
    provider_account_id: uuid.UUID | None = None,
) -> SettlementPayout:
    """A payout of ``org`` from a file of its own (nothing else in it)."""
    file = SettlementFile(
        org_id=org.id, provider=provider, layout="stripe_payout", filename=f"{payout_id}.json",
        sha256=uuid.uuid4().hex * 2, size_bytes=0, provider_account_id=provider_account_id,
    )  # fmt: skip
    session.add(file)
    session.flush()
    payout = SettlementPayout(
        org_id=org.id, file_id=file.id, provider=provider, payout_id=payout_id,
        currency=currency, amount_minor=amount_minor, status=status, arrival_date=arrival,
        booked_at=datetime.combine(arrival, datetime.min.time(), UTC),
    )  # fmt: skip
    session.add(payout)
    session.flush()
    return payout


def _amount(minor: int) -> str:
    return f"{abs(minor) // 100}.{abs(minor) % 100:02d}"


def statement_csv(rows: list[tuple[date, int, str, str, str]]) -> bytes:
    """A CSV statement: (booking date, signed minor units, counterparty, details, reference)."""
    lines = [HEADER]
    for booked, minor, counterparty, details, reference in rows:
        debit, credit = ("", _amount(minor)) if minor > 0 else (_amount(minor), "")
        lines.append(f"{booked.isoformat()};{debit};{credit};{counterparty};{details};{reference}")
    return ("\n".join(lines) + "\n").encode()


def import_rows(
    session: Session, org: Organization, rows: list[tuple[date, int, str, str, str]]
) -> StatementImport:
    """Import ``rows`` as a CSV statement of the organisation's EUR account."""
    return import_statement_file(
        session=session, org_id=org.id, binary=io.BytesIO(statement_csv(rows)),
        filename="statement.csv", csv_mapping=MAPPING,
    )  # fmt: skip


def links(session: Session, org: Organization) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
    """(payout, entry, method) of every link of ``org``."""
    query = select(
        BankPayoutLink.settlement_payout_id, BankPayoutLink.bank_entry_id, BankPayoutLink.method
    ).where(BankPayoutLink.org_id == org.id)
    return {tuple(row) for row in session.execute(query)}


def discrepancies(
    session: Session, org: Organization, **filters
) -> list[ReconciliationDiscrepancy]:
    """The organisation's discrepancies, oldest first, filtered by column values."""
    query = select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
    for column, value in filters.items():
        query = query.where(getattr(ReconciliationDiscrepancy, column) == value)
    return list(session.scalars(query.order_by(ReconciliationDiscrepancy.opened_at)))
