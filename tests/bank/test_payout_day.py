"""Issue 19's closing check: a day with payouts from settlement files and a statement that
contains some of them ends with every payout either linked or flagged."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select

from shared.access.settings_log import OPERATOR
from shared.bank.matching import reconcile_bank_payouts
from shared.models import BankPayoutLink, ReconciliationDiscrepancy, SettlementPayout
from shared.platform.tasks import MATCH_BANK_PAYOUTS
from shared.settlements.imports import import_settlement_file
from tests.bank.payouts import import_rows
from tests.support.factories import make_org

SETTLEMENTS = Path(__file__).resolve().parents[1] / "settlements" / "fixtures"


def import_settlements(session, org, relative: str):
    path = SETTLEMENTS / relative
    return import_settlement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO(path.read_bytes()),
        filename=path.name,
        imported_by=OPERATOR,
    )


def test_every_payout_of_the_day_ends_linked_or_flagged(session, published_tasks):
    org = make_org(session)
    # Adyen batch 501 pays out EUR 106.06, USD 33.10 and KWD 12.000; Stripe po_own_json_1
    # EUR 96.50 is expected on 8 May.
    import_settlements(session, org, "adyen/settlement_details_every_type.csv")
    import_settlements(session, org, "stripe/payout.json")
    assert published_tasks == []
    session.commit()
    assert [task for task in published_tasks if task[0] == MATCH_BANK_PAYOUTS] == [
        (MATCH_BANK_PAYOUTS, [str(org.id)])
    ] * 2
    # The EUR account's statement: Adyen's transfer names its batch, Stripe's only its
    # name and the amount; the USD and KWD payouts never arrive.
    import_rows(session, org, [
        (date(2026, 5, 6), 10606, "ADYEN N.V.", "TX0501XT batch 501, ReconTestShop", "B1"),
        (date(2026, 5, 8), 9650, "STRIPE TECHNOLOGY EUROPE", "STRIPE PAYOUT", "B2"),
        (date(2026, 5, 8), -1500, "Landlord", "rent", "B3"),
    ])  # fmt: skip
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime(2026, 5, 12, tzinfo=UTC))

    payouts = {(p.provider, p.currency): p.id for p in session.scalars(select(SettlementPayout))}
    linked = dict(
        session.execute(select(BankPayoutLink.settlement_payout_id, BankPayoutLink.method)).all()
    )
    flagged = dict(
        session.execute(
            select(ReconciliationDiscrepancy.settlement_payout_id, ReconciliationDiscrepancy.type)
            .where(ReconciliationDiscrepancy.settlement_payout_id.is_not(None))
        ).all()
    )  # fmt: skip
    assert linked == {
        payouts[("adyen", "EUR")]: "reference", payouts[("stripe", "EUR")]: "amount",
    }  # fmt: skip
    assert flagged == {
        payouts[("adyen", "USD")]: "PayoutNotReceived",
        payouts[("adyen", "KWD")]: "PayoutNotReceived",
    }
    assert set(payouts.values()) == set(linked) | set(flagged)
