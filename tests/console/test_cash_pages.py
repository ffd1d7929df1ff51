"""The cash chain's console pages through the test client: settlement files (list, upload,
original), payouts (list, filters, one payout's evidence, a person's link and unlink),
the bank (accounts, statements, entries, upload), roles, other organisations and CSRF."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from shared.bank.matching import reconcile_bank_payouts
from shared.models import (
    BankPayoutLink,
    BankPayoutLinkLogEntry,
    BankStatementRecord,
    SettlementFile,
    SettlementLine,
)
from tests.bank.payouts import import_rows, make_payout
from tests.bank.support import fixture_bytes
from tests.console.conftest import csrf_of
from tests.settlements.reading import FIXTURES as SETTLEMENT_FIXTURES
from tests.support.checksums import database_checksum
from tests.support.factories import make_discrepancy, make_org, make_payment

ADYEN = (SETTLEMENT_FIXTURES / "adyen" / "settlement_details_every_type.csv").read_bytes()
STRIPE_PAYOUT = (SETTLEMENT_FIXTURES / "stripe" / "payout.json").read_bytes()
MT940 = fixture_bytes("statement.sta")
ARRIVAL = date(2026, 3, 2)


def token(client, path: str = "/console/") -> str:
    return csrf_of(client.get(path).text)


def upload(client, path: str, content: bytes, name: str, **fields):
    """Post ``content`` as the form's file (with the page's CSRF token unless given)."""
    fields.setdefault("csrf_token", token(client))
    parts = {"file": FileStorage(io.BytesIO(content), name), **fields}
    boundary, body = encode_multipart(parts)
    return client.post(
        path, data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def rows(html: str, table_caption: str) -> list[str]:
    """The body rows of the table whose caption starts with ``table_caption``."""
    table = html.split(f"<caption>{table_caption}", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", table.split("<tbody>", 1)[1], re.S)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- settlements ------------------------------------------------------------------------


def test_an_uploaded_file_is_listed_with_its_summary_and_who_imported_it(
    client, session, signed_in
):
    person = signed_in(name="Ana Lima")
    response = upload(client, "/console/settlements", ADYEN, "batch_501.csv")
    assert response.status_code == 201
    assert "Imported batch_501.csv" in response.text
    assert "19 lines, 3 payouts" in response.text
    file = session.scalars(select(SettlementFile)).one()
    assert (file.imported_by, file.imported_by_name) == (f"user:{person.id}", "Ana Lima")
    listed = rows(client.get("/console/settlements").text, "1 file")
    assert len(listed) == 1
    for shown in ("batch_501.csv", "adyen_settlement_details", "Ana Lima",
                  "<strong>EUR</strong>: 15 lines,", "net 106.06 EUR", "fees 12.10 EUR",
                  "<strong>KWD</strong>: 2 lines,", "net 12.000 KWD"):  # fmt: skip
        assert shown in listed[0], shown


def test_the_same_file_again_says_so_and_adds_nothing(client, session, signed_in):
    signed_in()
    upload(client, "/console/settlements", ADYEN, "batch_501.csv")
    before = database_checksum(session)
    again = upload(client, "/console/settlements", ADYEN, "renamed.csv")
    assert again.status_code == 200
    assert "batch_501.csv was imported before: nothing was added" in again.text
    assert database_checksum(session) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (ADYEN.replace(b",98.10,", b",98.101,"), "row 2, column &#39;Net Credit (NC)&#39;"),
        (b"date,amount\n2026-05-01,10.00\n", "unknown layout; expected one of: Adyen Settlement"),
    ],
    ids=["bad-cell", "unknown-layout"],
)
def test_a_refused_file_is_a_message_and_stores_nothing(
    client, session, signed_in, content, message
):
    signed_in()
    before = database_checksum(session)
    response = upload(client, "/console/settlements", content, "report.csv")
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert 'role="alert">Nothing was stored: ' in response.text
    assert message in response.text
    assert database_checksum(session) == before


def test_a_bad_cell_late_in_the_file_leaves_no_row_of_it(client, session, signed_in):
    signed_in()
    lines = ADYEN.splitlines(keepends=True)
    bad = lines[-1].replace(b",12.000,", b",12.0001,")
    response = upload(client, "/console/settlements", b"".join([*lines[:-1], bad]), "r.csv")
    assert response.status_code == 422
    assert (count(session, SettlementFile), count(session, SettlementLine)) == (0, 0)


def test_an_upload_without_a_file_is_a_message(client, session, signed_in):
    signed_in()
    response = client.post("/console/settlements", data={"csrf_token": token(client)})
    assert response.status_code == 422
    assert "choose a settlement file to upload" in response.text


def test_a_file_over_the_limit_is_a_page_saying_so(client, session, signed_in, override_settings):
    override_settings(SETTLEMENT_MAX_BYTES="1024")
    signed_in()
    response = upload(client, "/console/settlements", ADYEN + b" " * 2048, "big.csv")
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "larger than the 1,024 bytes this page accepts" in response.text
    assert count(session, SettlementFile) == 0


def test_the_original_downloads_byte_for_byte_for_a_viewer_too(client, session, org, signed_in):
    content = b"\xef\xbb\xbf" + ADYEN.replace(b"\n", b"\r\n")
    signed_in()
    upload(client, "/console/settlements", content, "batch 501 (BOM).csv")
    file = session.scalars(select(SettlementFile)).one()
    signed_in(role="viewer", name="Vic Viewer")
    page = client.get("/console/settlements")
    assert "Upload a settlement report" not in page.text
    response = client.get(f"/console/settlements/{file.id}/original")
    assert response.status_code == 200
    assert response.data == content
    assert "batch 501 (BOM).csv" in response.headers["Content-Disposition"]


# --- payouts ----------------------------------------------------------------------------


def payouts_text(client, query: str = "") -> str:
    response = client.get(f"/console/payouts{query}")
    assert response.status_code == 200, response.text
    return response.text


def test_payouts_show_their_lines_net_and_the_difference_and_filter(client, session, signed_in):
    signed_in()
    upload(client, "/console/settlements", ADYEN.replace(b",USD,33.10,", b",USD,34.10,"), "a.csv")
    upload(client, "/console/settlements", STRIPE_PAYOUT, "po.json")
    everything = rows(payouts_text(client), "4 payouts")
    usd = next(row for row in everything if "34.10 USD" in row)
    assert 'class="differs"' in usd
    assert "33.10 USD" in usd  # the lines' net
    assert "1.00 USD" in usd  # the difference
    eur = next(row for row in everything if "106.06 EUR" in row)
    assert 'class="differs"' not in eur
    assert len(rows(payouts_text(client, "?currency=usd"), "1 payout")) == 1
    assert len(rows(payouts_text(client, "?status=pending"), "1 payout")) == 1
    booked = rows(payouts_text(client, "?booked_from=2026-05-05&booked_to=2026-05-06"), "3 payouts")
    assert all("adyen 501" in row for row in booked)
    assert "No payout matches" in payouts_text(client, "?booked_to=2026-05-04")


def test_a_bad_payout_filter_is_a_message(client, session, signed_in):
    signed_in()
    response = client.get("/console/payouts?booked_from=2026-05-06&booked_to=2026-05-05")
    assert response.status_code == 422
    assert "the first day must not be after the last" in response.text


def test_each_payout_shows_where_it_stands_at_the_bank(client, session, org, signed_in):
    signed_in()
    make_payout(session, org, "po_linked_0001", 10_000, ARRIVAL)
    make_payout(session, org, "po_suggested_1", 20_000, ARRIVAL)
    make_payout(session, org, "po_overdue_001", 30_000, ARRIVAL - timedelta(days=30))
    make_payout(session, org, "po_failed_0001", 40_000, ARRIVAL, status="failed")
    make_payout(session, org, "po_transit_001", 50_000, date.today() + timedelta(days=1))
    import_rows(session, org, [
        (ARRIVAL, 10_000, "Stripe", "po_linked_0001", "r1"),
        (ARRIVAL, 20_000, "Stripe", "payout", "r2"),
        (ARRIVAL, 20_000, "Stripe", "payout", "r3"),
    ])  # fmt: skip
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime.now(UTC))
    listed = rows(payouts_text(client), "5 payouts")
    states = {
        payout_id: re.search(r'class="arrival [^"]+">([^<]+)<', row).group(1)
        for row in listed
        for payout_id in re.findall(r"stripe (po_\w+)<", row)
    }
    assert states == {
        "po_linked_0001": "linked", "po_suggested_1": "suggestion",
        "po_overdue_001": "not received", "po_failed_0001": "not expected",
        "po_transit_001": "in transit",
    }  # fmt: skip
