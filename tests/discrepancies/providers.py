"""An organisation's discrepancies on every kind of subject, each opened by its own path,
for the provider filter's tests (API and console)."""

from __future__ import annotations

import io
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.bank.accounts import AccountSettingsChange, change_account_settings
from shared.bank.imports import import_statement_file
from shared.bank.matching import reconcile_bank_payouts
from shared.models import BankAccount, Organization, ReconciliationDiscrepancy
from shared.settlements.matching import reconcile_settlement_file
from tests.bank.payouts import MAPPING, statement_csv
from tests.bank.support import fixture_bytes
from tests.discrepancies.factories import make_record
from tests.settlements.test_matching import adyen_file, imported, row
from tests.support.factories import make_discrepancy, make_payment

MONDAY = date(2026, 3, 2)
OTHER_IBAN = "DE89370400440532013000"


def discrepancies_by_provider(
    session: Session, org: Organization
) -> dict[str | None, set[uuid.UUID]]:
    """Open, for ``org``: a payment's (standard) and a provider record's (adyen)
    discrepancy; an Adyen settlement file's line and payout findings; an unbalanced
    statement and an unexpected credit on an account that lists only Stripe; an
    unexpected credit on an account that lists no provider. Returns their ids by provider."""
    standard = make_payment(session, org, provider="standard")
    make_discrepancy(session, org, payment_id=standard.id)
    record = make_record(session, org, provider="adyen")
    make_discrepancy(session, org, type="MissingInternalRecord", payment_id=None,
                     provider_record_id=record.id)  # fmt: skip
    file = imported(session, org, adyen_file(
        row("Settled", "PSP9", "ORDER-9", "12.34", "12.00"),  # linked to nothing
        row("MerchantPayout", net="-11.00"),  # not the lines' net
    ))  # fmt: skip
    reconcile_settlement_file(session=session, file_id=file.id, now=datetime.now(UTC))
    unbalanced = fixture_bytes("statement.sta").replace(b"EUR1249,75", b"EUR1249,00")
    import_statement_file(session=session, org_id=org.id, binary=io.BytesIO(unbalanced),
                          filename="x.sta")  # fmt: skip
    for amount, mapping in (
        (99900, MAPPING),
        (88800, MAPPING.model_copy(update={"account": OTHER_IBAN})),
    ):
        credit = [(MONDAY, amount, "STRIPE PAYMENTS EUROPE LTD", "STRIPE PAYOUT", "R1")]
        import_statement_file(session=session, org_id=org.id,
                              binary=io.BytesIO(statement_csv(credit)),
                              filename=f"{mapping.account}.csv", csv_mapping=mapping)  # fmt: skip
    [stripe_account] = session.scalars(
        select(BankAccount.id).where(BankAccount.org_id == org.id, BankAccount.country == "NL")
    )
    change_account_settings(session=session, org_id=org.id, account_id=stripe_account,
                            change=AccountSettingsChange(providers=["stripe"]))  # fmt: skip
    midday = datetime.combine(MONDAY, datetime.min.time(), UTC).replace(hour=12)
    reconcile_bank_payouts(session=session, org_id=org.id, now=midday)
    session.expire_all()
    mine = select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.org_id == org.id)
    by_provider: dict[str | None, set[uuid.UUID]] = defaultdict(set)
    kinds: dict[str | None, set[str]] = defaultdict(set)
    for discrepancy in session.scalars(mine):
        by_provider[discrepancy.provider].add(discrepancy.id)
        kinds[discrepancy.provider].add(discrepancy.type)
    assert kinds == {
        "standard": {"MissingProviderRecord"},
        "adyen": {"MissingInternalRecord", "PayoutMismatch"},
        "stripe": {"StatementBalanceMismatch", "UnexpectedDeposit"},
        None: {"UnexpectedDeposit"},
    }
    assert len(by_provider["adyen"]) == 3  # the record's and the line's MissingInternalRecord
    return by_provider
