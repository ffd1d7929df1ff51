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
    BankEntryRecord,
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
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


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


@pytest.mark.parametrize(
    ("path", "setting", "content", "model"),
    [
        ("/console/settlements", "SETTLEMENT_MAX_BYTES", ADYEN, SettlementFile),
        ("/console/bank", "BANK_STATEMENT_MAX_BYTES", MT940, BankStatementRecord),
    ],
    ids=["settlement", "statement"],
)
def test_a_file_over_its_page_s_limit_is_a_page_saying_so(
    client, session, signed_in, override_settings, path, setting, content, model
):
    override_settings(**{setting: "1024"})
    signed_in()
    response = upload(client, path, content + b" " * 2048, "big.txt")
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "larger than the 1,024 bytes this page accepts" in response.text
    assert count(session, model) == 0


def test_a_file_over_the_application_s_body_limit_is_taken_by_the_upload_pages(
    app, client, session, signed_in
):
    app.config["MAX_CONTENT_LENGTH"] = 1024  # MAX_BODY_BYTES; the file is 3 KB
    signed_in()
    assert upload(client, "/console/settlements", ADYEN, "batch_501.csv").status_code == 201
    camt = fixture_bytes("camt053_v02.xml")  # 2 KB
    assert upload(client, "/console/bank", camt, "statement.xml").status_code == 201


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
    make_payout(
        session, org, "po_transit_001", 50_000, datetime.now(UTC).date() + timedelta(days=1)
    )
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


def adyen_eur_payout(session):
    from shared.models import SettlementPayout

    return session.scalars(select(SettlementPayout).where(SettlementPayout.currency == "EUR")).one()


def test_a_payout_page_shows_fees_lines_payments_and_their_discrepancies(
    client, session, org, signed_in
):
    signed_in()
    payment = make_payment(session, org, external_id="ORDER-5", amount_minor=1_000,
                           currency="EUR", provider="adyen")  # fmt: skip
    about_payment = make_discrepancy(session, org, payment_id=payment.id, type="AmountMismatch")
    upload(client, "/console/settlements", ADYEN, "batch_501.csv")
    payout = adyen_eur_payout(session)
    about_payout = make_discrepancy(
        session, org, type="PayoutMismatch", settlement_payout_id=payout.id, payment_id=None
    )
    page = client.get(f"/console/payouts/{payout.id}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Payout adyen 501</h1>" in html
    fees = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="number">([^<]+)</td>', html))
    assert (fees["Markup"], fees["Scheme fee"]) == ("10.50 EUR", "0.40 EUR")  # a chargeback's 10.00
    assert (fees["Commission"], fees["Interchange"]) == ("0.20 EUR", "1.00 EUR")
    assert len(rows(html, "14 of 14 lines")) == 14
    payments = html.split('id="payments-title"')[1].split("</section>")[0]
    assert "ORDER-5" in payments
    assert f"/console/discrepancies/{about_payment.id}" in payments
    listed = html.split('id="discrepancies-title"')[1].split("</section>")[0]
    assert f"/console/discrepancies/{about_payout.id}" in listed
    assert "in transit" in html
    assert f"/console/settlements/{payout.file_id}/original" in html


def suggested_payout(session, org):
    """A payout two entries of its amount could be (suggestions, never a link), and an
    entry in USD."""
    payout = make_payout(session, org, "po_console_0001", 25_010, ARRIVAL)
    import_rows(session, org, [
        (ARRIVAL, 25_010, "Stripe", "payout", "r1"),
        (ARRIVAL + timedelta(days=1), 25_010, "Stripe", "payout", "r2"),
    ])  # fmt: skip
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime.now(UTC))
    return payout


def entry_options(html: str) -> dict[str, str]:
    """The link form's entries: option label → entry id."""
    select_ = html.split('id="link-entry"', 1)[1].split("</select>", 1)[0]
    return {
        label: value for value, label in re.findall(r'<option value="([^"]+)">([^<]+)<', select_)
    }


def test_a_manager_links_and_unlinks_an_entry_and_both_are_logged(client, session, org, signed_in):
    signed_in(name="Ana Lima")
    payout = suggested_payout(session, org)
    path = f"/console/payouts/{payout.id}"
    page = client.get(path).text
    assert "suggestion" in page
    options = entry_options(page)
    assert len(options) == 2
    entry_id = options["2026-03-03 · 250.10 EUR · Stripe"]
    linked = client.post(f"{path}/link", data={
        "csrf_token": csrf_of(page), "entry_id": entry_id, "reason": "Bank confirmed by phone",
    })  # fmt: skip
    assert linked.status_code == 303
    assert linked.location == f"{path}?done=linked"
    link = session.scalars(select(BankPayoutLink)).one()
    assert (str(link.bank_entry_id), link.method) == (entry_id, "manual")
    shown = client.get(linked.location).text
    assert "The payout is linked to the entry." in shown
    assert "linked by hand" in shown
    history = shown.split('id="history-title"')[1]
    assert '<strong>linked</strong> (manual) by <span class="actor">Ana Lima</span>' in history
    assert "Bank confirmed by phone" in history

    unlinked = client.post(f"{path}/unlink", data={
        "csrf_token": csrf_of(shown), "reason": "Wrong entry: that was another payout",
    })  # fmt: skip
    assert unlinked.status_code == 303
    # That pair stays apart; the other entry, now the only candidate, is linked by amount.
    relinked = session.scalars(select(BankPayoutLink)).one()
    assert str(relinked.bank_entry_id) != entry_id
    assert relinked.method == "amount"
    log = session.scalars(select(BankPayoutLinkLogEntry).order_by(
        BankPayoutLinkLogEntry.created_at)).all()  # fmt: skip
    assert [(entry.action, entry.actor_name, entry.reason) for entry in log] == [
        ("linked", "Ana Lima", "Bank confirmed by phone"),
        ("unlinked", "Ana Lima", "Wrong entry: that was another payout"),
        ("linked", None, None),
    ]
    assert "The link is undone." in client.get(unlinked.location).text


def test_a_refused_link_is_a_message_and_changes_nothing(client, session, org, signed_in):
    signed_in()
    payout = suggested_payout(session, org)
    path = f"/console/payouts/{payout.id}"
    page = client.get(path).text
    entry_id = next(iter(entry_options(page).values()))
    usd = make_payout(session, org, "po_console_usd1", 25_010, ARRIVAL, currency="USD")
    before = database_checksum(session)
    cases = [
        (path, {"entry_id": entry_id, "reason": "  "}, 422, "reason must not be empty"),
        (path, {"reason": "no entry"}, 422, "entry_id"),
        (f"/console/payouts/{usd.id}", {"entry_id": entry_id, "reason": "r"}, 422,
         "the entry is in EUR, the payout in USD"),
    ]  # fmt: skip
    for target, fields, status, message in cases:
        response = client.post(f"{target}/link", data={"csrf_token": csrf_of(page), **fields})
        assert response.status_code == status, (fields, response.text)
        assert 'role="alert">Nothing was changed: ' in response.text
        assert message in response.text
    assert client.post(f"{path}/unlink", data={"csrf_token": csrf_of(page),
                                                "reason": "r"}).status_code == 404  # fmt: skip
    assert database_checksum(session) == before


def test_a_second_link_is_refused_until_the_first_is_undone(client, session, org, signed_in):
    signed_in()
    payout = suggested_payout(session, org)
    path = f"/console/payouts/{payout.id}"
    page = client.get(path).text
    first, second = entry_options(page).values()
    data = {"csrf_token": csrf_of(page), "reason": "checked"}
    assert client.post(f"{path}/link", data={**data, "entry_id": first}).status_code == 303
    other = make_payout(session, org, "po_console_0002", 25_010, ARRIVAL)
    refused = client.post(f"/console/payouts/{other.id}/link", data={**data, "entry_id": first})
    assert refused.status_code == 409
    assert "already linked: unlink it first" in refused.text
    assert client.post(f"/console/payouts/{other.id}/link",
                       data={**data, "entry_id": second}).status_code == 303  # fmt: skip


def test_a_viewer_reads_every_cash_page_but_may_not_upload_or_link(client, session, org, signed_in):
    signed_in()
    upload(client, "/console/settlements", ADYEN, "batch_501.csv")
    upload(client, "/console/bank", MT940, "statement.sta")
    payout = suggested_payout(session, org)
    signed_in(role="viewer", name="Vic Viewer")
    paths = ("/console/settlements", "/console/payouts", f"/console/payouts/{payout.id}",
             "/console/bank")  # fmt: skip
    pages = {path: client.get(path) for path in paths}
    assert {path: response.status_code for path, response in pages.items()} == dict.fromkeys(
        pages, 200
    )
    for response in pages.values():
        assert "multipart/form-data" not in response.text
        assert "/link" not in response.text
    nav = pages["/console/bank"].text.split('aria-label="Main"')[1].split("</nav>")[0]
    assert ["Queue", "Settlements", "Payouts", "Bank"] == re.findall(r">(\w+)</a>", nav)
    csrf = csrf_of(pages["/console/bank"].text)
    before = database_checksum(session)
    entry_id = session.scalars(select(BankEntryRecord.id)).first()
    for response in (
        upload(client, "/console/settlements", STRIPE_PAYOUT, "po.json", csrf_token=csrf),
        upload(client, "/console/bank", MT940.replace(b"RECON-MT-1", b"RECON-MT-2"), "s.sta",
               csrf_token=csrf),
        client.post(f"/console/payouts/{payout.id}/link",
                    data={"csrf_token": csrf, "entry_id": str(entry_id), "reason": "r"}),
        client.post(f"/console/payouts/{payout.id}/unlink",
                    data={"csrf_token": csrf, "reason": "r"}),
    ):  # fmt: skip
        assert response.status_code == 403
        assert "Your role may not do this." in response.text
    assert database_checksum(session) == before


def test_another_organisation_s_payout_and_file_are_404_pages(client, session, org, signed_in):
    other = make_org(session)
    payout = suggested_payout(session, other)
    signed_in()
    page = client.get(f"/console/payouts/{payout.id}")
    assert page.status_code == 404
    assert "There is nothing here in your organisation." in page.text
    before = database_checksum(session)
    entry_id = session.scalars(select(BankEntryRecord.id)).first()
    forged = client.post(f"/console/payouts/{payout.id}/link", data={
        "csrf_token": token(client), "entry_id": str(entry_id), "reason": "mine",
    })  # fmt: skip
    assert forged.status_code == 404
    assert client.get(f"/console/settlements/{payout.file_id}/original").status_code == 404
    assert database_checksum(session) == before


def test_posts_without_their_csrf_token_are_refused(client, session, org, signed_in):
    signed_in()
    payout = suggested_payout(session, org)
    before = database_checksum(session)
    responses = [
        upload(client, "/console/settlements", ADYEN, "batch_501.csv", csrf_token=""),
        upload(client, "/console/bank", MT940, "statement.sta", csrf_token="forged"),
        client.post(f"/console/payouts/{payout.id}/unlink", data={"reason": "r"}),
    ]
    assert [response.status_code for response in responses] == [403, 403, 403]
    assert "lacks its CSRF token" in responses[0].text
    assert database_checksum(session) == before


# --- the bank ---------------------------------------------------------------------------


def test_an_uploaded_statement_shows_its_account_statement_and_entries(client, session, signed_in):
    signed_in()
    response = upload(client, "/console/bank", MT940, "statement.sta")
    assert response.status_code == 201
    notice = response.text.split('role="status"')[1].split("</section>")[0]
    assert "Imported statement.sta" in notice
    assert "statement RECON-MT-1/00012/001 (mt940)" in notice
    assert "2 entries, 2 added" in notice
    assert "balance check: adds up" in notice
    page = client.get("/console/bank").text
    accounts = page.split('id="accounts-title"')[1].split("</section>")[0]
    assert "<code>NL91…4300</code>" in accounts
    assert "NL91ABNA0417164300" not in page
    statement = rows(page, "1 statement")[0]
    assert "1,000.00 EUR" in statement
    assert "1,249.75 EUR" in statement
    assert "adds up" in statement
    amounts = sorted(
        re.search(r'"number">(-?[0-9.,]+ EUR)<', row).group(1) for row in rows(page, "2 entries")
    )
    assert amounts == ["-0.35 EUR", "250.10 EUR"]
    again = upload(client, "/console/bank", MT940, "again.sta")
    assert again.status_code == 200
    assert "again.sta was imported before: nothing was added" in again.text


def test_a_statement_that_does_not_add_up_says_so(client, session, signed_in):
    signed_in()
    short = MT940.replace(b":62F:C260302EUR1249,75", b":62F:C260302EUR1249,00")
    upload(client, "/console/bank", short, "short.sta")
    statement = rows(client.get("/console/bank").text, "1 statement")[0]
    assert 'class="differs"' in statement
    assert "does not add up" in statement


def test_an_unreadable_statement_is_a_message_and_stores_nothing(client, session, signed_in):
    signed_in()
    before = database_checksum(session)
    truncated = MT940.replace(b":62F:C260302EUR1249,75\n", b"")
    response = upload(client, "/console/bank", truncated, "broken.sta")
    assert response.status_code == 422
    assert 'role="alert">Nothing was stored: ' in response.text
    assert database_checksum(session) == before
    assert count(session, BankStatementRecord) == 0


def test_entries_filter_by_account_match_dates_and_amount(client, session, org, signed_in):
    signed_in()
    payout = make_payout(session, org, "po_linked_0001", 10_000, ARRIVAL)
    import_rows(session, org, [
        (ARRIVAL, 10_000, "Stripe", "po_linked_0001", "r1"),
        (ARRIVAL + timedelta(days=1), 2_000, "Shop", "refund", "r2"),
        (ARRIVAL + timedelta(days=2), -500, "Bank", "fee", "r3"),
    ])  # fmt: skip
    reconcile_bank_payouts(session=session, org_id=org.id, now=datetime.now(UTC))

    def listed(query: str) -> list[str]:
        response = client.get(f"/console/bank{query}")
        assert response.status_code == 200, response.text
        return re.findall(r'<tr id="entry-[^"]+">\s*<td>([0-9-]+)</td>', response.text)

    assert listed("") == ["2026-03-04", "2026-03-03", "2026-03-02"]
    linked_row = rows(client.get("/console/bank?unmatched=false").text, "1 entry")[0]
    assert f"/console/payouts/{payout.id}" in linked_row
    assert listed("?unmatched=true") == ["2026-03-04", "2026-03-03"]
    assert listed("?booked_from=2026-03-03&booked_to=2026-03-03") == ["2026-03-03"]
    assert listed("?currency=eur&min_amount=-5&max_amount=20") == ["2026-03-04", "2026-03-03"]
    assert listed("?currency=usd") == []
    missing = client.get("/console/bank?min_amount=10")
    assert missing.status_code == 422
    assert "choose an account or a currency to filter by amount" in missing.text


# --- a discrepancy's cash subjects ----------------------------------------------------------


def test_a_discrepancy_links_to_its_payout_line_statement_and_entry(
    client, session, org, signed_in
):
    signed_in()
    upload(client, "/console/settlements", ADYEN, "batch_501.csv")
    upload(client, "/console/bank", MT940, "statement.sta")
    payout = adyen_eur_payout(session)
    line = session.scalars(select(SettlementLine).where(SettlementLine.row_number == 2)).one()
    statement = session.scalars(select(BankStatementRecord)).one()
    entry = session.scalars(select(BankEntryRecord).where(BankEntryRecord.amount_minor > 0)).one()
    discrepancy = make_discrepancy(
        session, org, type="DepositAmountMismatch", settlement_payout_id=payout.id,
        settlement_line_id=line.id, bank_statement_id=statement.id, bank_entry_id=entry.id,
        payment_id=None,
    )  # fmt: skip
    html = client.get(f"/console/discrepancies/{discrepancy.id}").text
    cash = html.split('id="cash"')[1].split("</section>")[0]
    assert f'href="/console/payouts/{payout.id}"' in cash
    assert f'href="/console/payouts/{payout.id}#line-{line.id}"' in cash
    assert f"#statement-{statement.id}" in cash
    assert f"booked_from={entry.booking_date}" in cash
    assert f"#entry-{entry.id}" in cash
    bank = client.get(
        f"/console/bank?account_id={entry.account_id}&booked_from={entry.booking_date}"
        f"&booked_to={entry.booking_date}"
    ).text
    assert f'id="entry-{entry.id}"' in bank
    assert f'id="statement-{statement.id}"' in bank
