"""Importing statement files into PostgreSQL: accounts, statements, entries; idempotent,
all-or-nothing per file, bulk staged."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select

from shared.bank import imports
from shared.bank.imports import entry_digest, import_statement_file
from shared.bank.model import BankEntry, TransactionCodes, UnreadableStatement
from shared.models import BankAccount, BankEntryRecord, BankStatementRecord
from shared.platform.db import unit_of_work
from shared.platform.errors import NotFound, ValidationFailed
from tests.bank.support import fixture_bytes
from tests.bank.test_csv import MAPPING
from tests.bank.test_real_statements import EXPECTED, REPORTS
from tests.support.checksums import database_checksum
from tests.support.factories import make_org

CAMT = fixture_bytes("camt053_v02.xml")
MT940 = fixture_bytes("statement.sta")
CSV = fixture_bytes("statement.csv")


def load(session, org, content: bytes, **options):
    return import_statement_file(
        session=session,
        org_id=org.id,
        binary=io.BytesIO(content),
        filename=options.pop("filename", "statement.xml"),
        **options,
    )


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_camt053_file_stores_its_account_statement_and_booked_entries(session):
    org = make_org(session)
    imported = load(session, org, CAMT)
    assert imported.created
    [statement] = imported.statements
    account, record = statement.account, statement.record
    assert (account.masked_identifier, account.currency, account.country, account.providers) == (
        "NL91…4300", "EUR", "NL", [],
    )  # fmt: skip
    assert "0417164300" not in repr(session.get(BankAccount, account.id).__dict__)
    assert (record.statement_id, record.format, record.period_start, record.period_end) == (
        "RECON-2026-03-02", "camt053", date(2026, 3, 2), date(2026, 3, 2),
    )  # fmt: skip
    assert (record.opening_balance_minor, record.closing_balance_minor) == (100000, 124975)
    assert (record.entry_count, record.entries_total_minor, record.balanced) == (2, 24975, True)
    assert (record.file_sha256, record.filename) == (imported.sha256, "statement.xml")
    assert statement.entries_added == 2
    entries = session.scalars(
        select(BankEntryRecord).order_by(BankEntryRecord.amount_minor.desc())
    ).all()
    assert [(e.amount_minor, e.currency, e.booking_date, e.value_date) for e in entries] == [
        (25010, "EUR", date(2026, 3, 2), date(2026, 3, 3)),
        (-35, "EUR", date(2026, 3, 2), None),
    ]
    credit = entries[0]
    assert (credit.counterparty_name, credit.bank_reference, credit.end_to_end_id) == (
        "Example Payments Ltd", "BANKREF-0001", "po_fixture_0001",
    )  # fmt: skip
    assert credit.transaction_codes == {
        "domain": "PMNT", "family": "RCDT", "subfamily": "ESCT", "proprietary": "SCT",
    }  # fmt: skip
    assert {e.bank_statement_id for e in entries} == {record.id}
    assert {e.account_id for e in entries} == {account.id}


def test_the_same_file_again_answers_the_earlier_import_and_adds_nothing(session):
    org = make_org(session)
    first = load(session, org, CAMT)
    session.flush()
    before = database_checksum(session)
    again = load(session, org, CAMT, filename="renamed.xml")
    assert not again.created
    assert [s.record.id for s in again.statements] == [s.record.id for s in first.statements]
    assert [(s.already_imported, s.entries_added) for s in again.statements] == [(True, 0)]
    assert database_checksum(session) == before


def test_the_same_statement_in_another_file_adds_nothing(session):
    org = make_org(session)
    load(session, org, CAMT)
    other_bytes = CAMT.replace(b"<MsgId>RECON-FIXTURE-1", b"<MsgId>RECON-FIXTURE-2")
    again = load(session, org, other_bytes)
    assert not again.created
    assert again.statements[0].already_imported
    assert (count(session, BankStatementRecord), count(session, BankEntryRecord)) == (1, 2)


def test_a_later_statement_holding_known_entries_adds_only_the_new_ones(session):
    org = make_org(session)
    load(session, org, MT940)
    # The next day's statement repeats the credit and has one new charge of its own.
    later = MT940.replace(b":20:RECON-MT-1", b":20:RECON-MT-2").replace(
        b":62F:C260302EUR1249,75", b":61:2603030303DR1,00NCHGNONREF\n:62F:C260303EUR1248,75"
    )
    [statement] = load(session, org, later).statements
    assert (statement.already_imported, statement.record.entry_count) == (False, 3)
    assert statement.entries_added == 1
    assert count(session, BankEntryRecord) == 3


def test_identical_entries_of_one_statement_are_each_kept(session):
    org = make_org(session)
    lines = CSV.splitlines(keepends=True)
    twice = b"".join([lines[0], lines[2], lines[2], lines[1]])
    [statement] = load(session, org, twice, csv_mapping=MAPPING).statements
    assert (statement.record.entry_count, statement.entries_added) == (3, 3)
    occurrences = session.scalars(
        select(BankEntryRecord.occurrence).where(BankEntryRecord.amount_minor == -35)
    ).all()
    assert sorted(occurrences) == [1, 2]


def test_an_entry_digest_never_changes():
    """Entries stored by earlier releases are found again only if the same facts give the
    same digest: a faster digest must not be a different one."""
    entry = BankEntry(
        booking_date=date(2026, 3, 2), value_date=date(2026, 3, 3), amount_minor=25010,
        currency="EUR", counterparty_name="Société Générale",
        counterparty_account="GB29NWBK60161331926819", remittance_text="PAYOUT po_fixture_0001",
        bank_reference="BANKREF-0001", end_to_end_id="po_fixture_0001",
        codes=TransactionCodes(domain="PMNT", family="RCDT", subfamily="ESCT", proprietary="SCT"),
    )  # fmt: skip
    assert entry_digest(entry).hex() == (
        "fc5430f0d37f8722be63b9ff11a5f8cd5a76bddaeb55e3c71879c37c8384e011"
    )


def test_a_refusal_while_entries_stream_stores_nothing_of_the_file(session):
    org = make_org(session)
    first, rest = CAMT.split(b"</Stmt>", 1)
    # A second statement whose second entry has more decimals than EUR: refused while
    # its entries are being copied, after the first statement was stored.
    second = first.split(b"<Stmt>", 1)[1].replace(b"RECON-2026-03-02", b"RECON-2026-03-03")
    second = second.replace(b'<Amt Ccy="EUR">0.35</Amt>', b'<Amt Ccy="EUR">0.355</Amt>')
    content = first + b"</Stmt><Stmt>" + second + b"</Stmt>" + rest
    with (
        pytest.raises(UnreadableStatement, match=r"Stmt\[2\]/Ntry\[2\]/Amt: 0.355 has more"),
        unit_of_work() as work,
    ):
        load(work, org, content)
    assert [count(session, model) for model in (BankStatementRecord, BankEntryRecord)] == [0, 0]


def test_every_entry_arrives_and_progress_is_reported_while_reading(session, monkeypatch):
    monkeypatch.setattr(imports, "PROGRESS_ROWS", 2)
    org = make_org(session)
    header, row = CSV.splitlines(keepends=True)[:2]
    rows = [row.replace(b"BANKREF-0005", f"REF-{n}".encode()) for n in range(7)]
    progress: list[int] = []
    [statement] = load(
        session, org, header + b"".join(rows), csv_mapping=MAPPING, on_progress=progress.append
    ).statements
    assert statement.entries_added == 7
    references = session.scalars(select(BankEntryRecord.bank_reference))
    assert sorted(references) == [f"REF-{n}" for n in range(7)]
    assert progress == sorted(progress)
    assert len(progress) >= 3


def test_a_statement_whose_balances_do_not_add_up_is_stored_flagged(session):
    org = make_org(session)
    broken = CAMT.replace(b'<Amt Ccy="EUR">1249.75</Amt>', b'<Amt Ccy="EUR">1249.70</Amt>')
    [statement] = load(session, org, broken).statements
    assert (statement.record.balanced, statement.record.closing_balance_minor) == (False, 124970)
    assert statement.entries_added == 2


def test_a_csv_statement_saves_its_mapping_on_the_account_for_the_next_file(session):
    org = make_org(session)
    [first] = load(session, org, CSV, csv_mapping=MAPPING, filename="march.csv").statements
    account = first.account
    assert first.record.statement_id.startswith("csv:")
    assert account.csv_mapping is not None
    assert "account" not in account.csv_mapping
    assert MAPPING.account not in str(account.csv_mapping)
    april = CSV.replace(b"02.03.2026", b"02.04.2026")
    [second] = load(session, org, april, account_id=account.id).statements
    assert (second.account.id, second.entries_added) == (account.id, 2)
    assert second.record.period_start == date(2026, 4, 2)


def test_a_csv_without_a_mapping_is_refused(session):
    org = make_org(session)
    with pytest.raises(UnreadableStatement, match="needs the account's column mapping"):
        load(session, org, CSV)


def test_a_statement_of_another_account_than_the_one_named_is_refused(session):
    org = make_org(session)
    [mt940] = load(session, org, MT940).statements
    other = CAMT.replace(b"NL91ABNA0417164300", b"DE89370400440532013000")
    with pytest.raises(ValidationFailed, match=r"for account DE89…3000, not NL91…4300"):
        load(session, org, other, account_id=mt940.account.id)
    usd = CAMT.replace(b"EUR", b"USD")
    with pytest.raises(ValidationFailed, match="is in USD; account NL91…4300 is in EUR"):
        load(session, org, usd, account_id=mt940.account.id)


def test_another_organisations_account_is_not_found(session):
    org, other = make_org(session), make_org(session)
    [statement] = load(session, other, CAMT).statements
    with pytest.raises(NotFound):
        load(session, org, CAMT, account_id=statement.account.id)


def test_one_identifier_is_one_account_per_organisation_and_currency(session):
    org, other = make_org(session), make_org(session)
    camt = load(session, org, CAMT).statements[0].account
    mt940 = load(session, org, MT940).statements[0].account
    assert camt.id == mt940.id
    assert load(session, other, CAMT).statements[0].account.id != camt.id
    spaced = CAMT.replace(b"NL91ABNA0417164300", b"nl91 abna 0417 1643 00")
    spaced = spaced.replace(b"RECON-2026-03-02", b"RECON-2026-03-03")
    assert load(session, org, spaced).statements[0].account.id == camt.id


def test_an_unusable_filename_is_refused(session):
    org = make_org(session)
    with pytest.raises(ValidationFailed, match="filename"):
        load(session, org, CAMT, filename="a\x00b")


@pytest.mark.skipif(
    not REPORTS.is_dir(),
    reason=f"{REPORTS} is absent on this machine: the real bank statements are not imported "
    "here (the suite's own fixtures still are)",
)
@pytest.mark.parametrize(
    "name", sorted(name for name, expected in EXPECTED.items() if not isinstance(expected, str))
)
def test_each_readable_real_statement_imports_its_entries(session, name):
    org = make_org(session)
    imported = load(session, org, (REPORTS / name).read_bytes(), filename=name.split("/")[1])
    assert [
        (s.record.statement_id, s.record.entry_count, s.record.balanced)
        for s in imported.statements
    ] == [(sid, entries, balanced) for sid, entries, _, _, balanced in EXPECTED[name]]
    assert count(session, BankEntryRecord) == sum(s.entries_added for s in imported.statements)
    assert sum(s.entries_added for s in imported.statements) == sum(
        s.record.entry_count for s in imported.statements
    )
