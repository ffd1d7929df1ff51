"""camt.053: every supported version, exact amounts, streaming, and hostile documents."""

from __future__ import annotations

import io
from datetime import date

import pytest

from shared.bank.camt053 import SUPPORTED_VERSIONS, read_camt053
from shared.bank.model import BankEntry, ForbiddenXml, TransactionCodes, UnreadableStatement
from tests.bank.support import fixture_bytes, read_bytes

V02 = fixture_bytes("camt053_v02.xml").decode()


def as_version(version: str) -> bytes:
    """The fixture under another schema version, in that version's status shape (.07 on:
    ``Sts/Cd``) and party shape (.08 on: ``Pty/Nm``)."""
    text = V02.replace("camt.053.001.02", f"camt.053.001.{version}")
    if int(version) >= 7:
        text = text.replace("<Sts>BOOK</Sts>", "<Sts><Cd>BOOK</Cd></Sts>")
        text = text.replace("<Sts>PDNG</Sts>", "<Sts><Cd>PDNG</Cd></Sts>")
    if int(version) >= 8:
        text = text.replace(
            "<Dbtr><Nm>Example Payments Ltd</Nm></Dbtr>",
            "<Dbtr><Pty><Nm>Example Payments Ltd</Nm></Pty></Dbtr>",
        )
    return text.encode()


@pytest.mark.parametrize("version", sorted(SUPPORTED_VERSIONS))
def test_every_supported_version_reads_the_same_statement(version):
    [(statement, entries)] = read_bytes(as_version(version))
    header = statement.header
    assert (header.statement_id, header.currency, header.account.scheme) == (
        "RECON-2026-03-02",
        "EUR",
        "iban",
    )
    assert header.account.masked == "NL91…4300"
    assert (header.opening_balance_minor, header.closing_balance_minor) == (100000, 124975)
    assert (statement.entry_count, statement.entries_total_minor) == (2, 24975)
    assert statement.balanced is True
    assert statement.skipped_unbooked == 1  # the pending entry is not part of the sum
    assert (statement.period_start, statement.period_end) == (date(2026, 3, 2), date(2026, 3, 2))
    assert entries == [
        BankEntry(
            booking_date=date(2026, 3, 2),
            value_date=date(2026, 3, 3),
            amount_minor=25010,
            currency="EUR",
            counterparty_name="Example Payments Ltd",
            counterparty_account="GB29NWBK60161331926819",
            # Repeated Ustrd lines continue one text.
            remittance_text="PAYOUT po_fixture_0001 second line",
            bank_reference="BANKREF-0001",
            end_to_end_id="po_fixture_0001",
            codes=TransactionCodes(
                domain="PMNT", family="RCDT", subfamily="ESCT", proprietary="SCT"
            ),
        ),
        BankEntry(
            booking_date=date(2026, 3, 2),
            value_date=None,
            amount_minor=-35,
            currency="EUR",
            remittance_text="Account charges",
            codes=TransactionCodes(domain="ACMT", family="MDOP", subfamily="CHRG"),
        ),
    ]


PARTY = "<Dbtr><Nm>Example Payments Ltd</Nm></Dbtr>"
PARTY_ACCOUNT = "<DbtrAcct><Id><IBAN>GB29NWBK60161331926819</IBAN></Id></DbtrAcct>"
USTRD = "<Ustrd>PAYOUT po_fixture_0001</Ustrd><Ustrd>second line</Ustrd>"
TRANSACTION_END = "</TxDtls>"


def first_entry(*changes: tuple[str, str]) -> BankEntry:
    """The fixture's first entry read after ``changes`` to that entry only."""
    start, end = V02.index("<Ntry>"), V02.index("</Ntry>")
    entry = V02[start:end]
    for old, new in changes:
        assert old in entry, old
        entry = entry.replace(old, new, 1)
    [(_, entries)] = read_bytes((V02[:start] + entry + V02[end:]).encode())
    return entries[0]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        (  # a debit names its creditor; a name under Pty, an account by another id
            [("CRDT", "DBIT"), (PARTY, "<Cdtr><Pty><Nm>Landlord BV</Nm></Pty></Cdtr>"),
             (PARTY_ACCOUNT, "<CdtrAcct><Id><Othr><Id>12345678</Id></Othr></Id></CdtrAcct>")],
            {"amount_minor": -25010, "counterparty_name": "Landlord BV",
             "counterparty_account": "12345678"},
        ),
        (  # a batch of two transactions has no one counterparty or end-to-end id
            [(TRANSACTION_END, TRANSACTION_END + "<TxDtls><RmtInf><Ustrd>other</Ustrd></RmtInf>"
              + TRANSACTION_END)],
            {"counterparty_name": None, "counterparty_account": None, "end_to_end_id": None,
             "remittance_text": "PAYOUT po_fixture_0001 second line other"},
        ),
        (
            [(USTRD, "<Strd><CdtrRefInf><Ref>RF18 5390 0754 7034</Ref></CdtrRefInf></Strd>")],
            {"remittance_text": "RF18 5390 0754 7034"},
        ),
        (
            [("<RmtInf>" + USTRD + "</RmtInf>", "<AddtlTxInf>Payout  of\n the day</AddtlTxInf>")],
            {"remittance_text": "Payout of the day"},
        ),
        (
            [("<Dt>2026-03-02</Dt></BookgDt>", "<DtTm>2026-03-02T23:30:00+01:00</DtTm></BookgDt>"),
             ("<AcctSvcrRef>", "<RvslInd>true</RvslInd><AcctSvcrRef>")],
            {"booking_date": date(2026, 3, 2), "reversal": True},
        ),
    ],
    ids=["debit-creditor", "batch", "creditor-reference", "transaction-information", "date-time"],
)  # fmt: skip
def test_an_entry_is_read_from_each_place_the_schema_allows(changes, fields):
    entry = first_entry(*changes)
    assert {name: getattr(entry, name) for name in fields} == fields


def test_a_statement_whose_balances_do_not_add_up_is_read_and_flagged():
    content = V02.replace('<Amt Ccy="EUR">1249.75</Amt>', '<Amt Ccy="EUR">1249.76</Amt>')
    [(statement, entries)] = read_bytes(content.encode())
    assert statement.balanced is False
    assert len(entries) == 2


def one_entry_statement(currency: str, opening: str, amount: str, closing: str) -> bytes:
    """A camt.053 of one credit entry, written from scratch for the exactness cases."""
    return f"""<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04">
<BkToCstmrStmt><Stmt><Id>EXACT</Id><Acct><Id><Othr><Id>12345678</Id></Othr></Id></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">{opening}</Amt>
<CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">{closing}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-02</Dt></Dt></Bal>
<Ntry><Amt Ccy="{currency}">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><DtTm>2026-03-02T23:30:00-05:00</DtTm></BookgDt></Ntry>
</Stmt></BkToCstmrStmt></Document>""".encode()


@pytest.mark.parametrize(
    ("currency", "opening", "amount", "closing", "minor"),
    [
        ("JPY", "100", "2700", "2600", (-100, 2700, 2600)),
        ("KWD", "0.001", "1.234", "1.233", (-1, 1234, 1233)),
        ("EUR", "0.1", "0.3", "0.20", (-10, 30, 20)),
        ("BHD", "0", "1000.000", "1000", (0, 1000000, 1000000)),
    ],
)
def test_amounts_are_exact_in_the_currency_exponent(currency, opening, amount, closing, minor):
    [(statement, [entry])] = read_bytes(one_entry_statement(currency, opening, amount, closing))
    header = statement.header
    assert (header.opening_balance_minor, entry.amount_minor, header.closing_balance_minor) == minor
    assert statement.balanced is True
    assert (header.currency, header.account.scheme, header.account.masked) == (
        currency,
        "other",
        "…5678",
    )
    # A date-time booking is the date as the bank wrote it, not converted to UTC.
    assert entry.booking_date == date(2026, 3, 2)


def test_more_decimals_than_the_currency_has_is_refused_naming_the_element():
    content = V02.replace(">250.10<", ">250.105<")
    with pytest.raises(UnreadableStatement, match=r"Stmt\[1\]/Ntry\[1\]/Amt: .*more decimals"):
        read_bytes(content.encode())


def test_an_entry_in_another_currency_is_refused():
    content = V02.replace('<Amt Ccy="EUR">0.35</Amt>', '<Amt Ccy="USD">0.35</Amt>')
    with pytest.raises(UnreadableStatement, match=r"Stmt\[1\]/Ntry\[2\]: entry in USD on a EUR"):
        read_bytes(content.encode())


def test_a_booked_entry_without_booking_date_is_refused():
    content = V02.replace("<BookgDt><Dt>2026-03-02</Dt></BookgDt>\n        <ValDt>", "<ValDt>")
    with pytest.raises(UnreadableStatement, match=r"Ntry\[1\]: a booked entry needs BookgDt"):
        read_bytes(content.encode())


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<Stmt><Id>&lol9;</Id></Stmt></BkToCstmrStmt></Document>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<Stmt><Id>&secret;</Id></Stmt></BkToCstmrStmt></Document>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://attacker.invalid/camt.dtd">
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>
"""


@pytest.mark.parametrize(
    "document", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["bomb", "entity", "dtd"]
)
def test_dtds_entities_and_external_references_are_refused_unexpanded(document):
    with pytest.raises(ForbiddenXml, match="DTDs, entity declarations and external references"):
        read_bytes(document)


def test_a_truncated_document_is_refused_naming_the_line():
    cut = V02.encode()[: len(V02) // 2]
    with pytest.raises(UnreadableStatement, match=r"camt053 line \d+, column \d+: not well-formed"):
        read_bytes(cut)


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("urn:iso:std:iso:20022:tech:xsd:camt.052.001.02", "is not a camt.053 Document"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.01", "camt.053.001.01 is not a supported"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.99", "camt.053.001.99 is not a supported"),
    ],
)
def test_an_unknown_schema_is_refused(namespace, message):
    content = V02.replace("urn:iso:std:iso:20022:tech:xsd:camt.053.001.02", namespace)
    with pytest.raises(UnreadableStatement, match=message):
        read_bytes(content.encode())


def test_a_document_without_statements_is_refused():
    content = (
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        b"<BkToCstmrStmt/></Document>"
    )
    with pytest.raises(UnreadableStatement, match="no Stmt"):
        read_bytes(content)


def test_the_stream_yields_each_entry_before_the_document_ends():
    """Streaming: the first entry arrives although the rest of the file is unreadable."""
    first_entry_end = V02.index("</Ntry>") + len("</Ntry>")
    broken = V02[:first_entry_end] + "<Ntry><Amt Ccy=" + "x" * 20_000
    stream = read_camt053(io.BytesIO(broken.encode()))
    header, entry = next(stream), next(stream)
    assert header.statement_id == "RECON-2026-03-02"
    assert entry.amount_minor == 25010
    with pytest.raises(UnreadableStatement):
        next(stream)


def test_a_doctype_before_any_other_root_is_refused_too():
    document = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    with pytest.raises(ForbiddenXml):
        read_bytes(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('<Amt Ccy="EUR">1249.75</Amt>', '<Amt Ccy="SEK">1249.75</Amt>'),
            r"camt053 Stmt\[1\]/Bal\[2\]: balance in SEK on a EUR statement",
        ),
        (("<Id>RECON-2026-03-02</Id>", ""), r"Stmt\[1\]: needs Id and Acct/Id"),
        (("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>CREDIT</CdtDbtInd>"), r"Bal\[1\]: needs Amt"),
        (("<Dt>2026-03-02</Dt></BookgDt>", "<Dt>2026-02-30</Dt></BookgDt>"), r"BookgDt '2026"),
        (  # a part after the entries is read too
            (
                "</Stmt>",
                '<Bal><Tp><CdOrPrtry><Cd>PRCD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">'
                "1.005</Amt><CdtDbtInd>CRDT</CdtDbtInd></Bal></Stmt>",
            ),
            r"Stmt\[1\]/Bal\[3\]/Amt: 1.005 has more decimals",
        ),
    ],
)
def test_a_malformed_statement_is_refused_naming_the_element(change, message):
    with pytest.raises(UnreadableStatement, match=message):
        read_bytes(V02.replace(*change, 1).encode())
