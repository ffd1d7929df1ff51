"""Every bank statement in ../shared/provider-reports, read in place, never copied here.

Each file has its expected outcome: per statement (id, entries, opening, closing,
balanced), or the precise reason it is refused. A file added to the folder without an
expectation fails the test, so none goes unchecked.
"""

from __future__ import annotations

import pytest

from shared.bank.model import UnreadableStatement
from tests.bank.support import read_bytes
from tests.conftest import REPO_ROOT

REPORTS = REPO_ROOT.parent / "shared" / "provider-reports"
FOLDERS = ("camt053", "mt940", "bai2")
pytestmark = pytest.mark.skipif(
    not REPORTS.is_dir(),
    reason=f"{REPORTS} is absent on this machine: the real bank statements are not checked "
    "here (the suite's own fixtures in tests/bank/fixtures still are)",
)

# file → [(statement id, entries, opening, closing, balanced)], or the refusal's message.
EXPECTED: dict[str, list[tuple[str, int, int | None, int | None, bool | None]] | str] = {
    "camt053/bankstatementparser_camt053_multicurrency.xml": [
        ("GOLDEN-MULTI-EUR", 2, 1000000, 1075025, True),
        ("GOLDEN-MULTI-USD", 1, 250000, 240001, True),
    ],
    # Its opening is EUR, its closing SEK (a synthetic file): no one account holds both.
    "camt053/genkgo_camt053.v8.xml": "camt053 Stmt[1]/Bal[2]: balance in SEK on a EUR statement",
    # 15,568.27 − 754.25 − 664.05 + 1,405.31 = 15,555.28, not the stated 15,121.12.
    "camt053/oca_test-camt053.xml": [("1234Test/1", 3, 1556827, 1512112, False)],
    "mt940/wolph_betterplace_sepa_snippet.sta": [
        ("T089414086000001/00004/00001", 4, 76665649, 112525040, True),
        # A debit opening balance; the entries miss the closing by 300.08.
        ("T089414096000001/00004/00001", 7, -197043187, -447204909, False),
    ],
    # Deutsche Mark: withdrawn in 2002, not in the ISO 4217 table any more.
    "mt940/wolph_cmxl_mt940.sta": (
        "mt940 statement 1 (line 1): opening balance currency 'DEM': not an ISO 4217 currency code"
    ),
    "mt940/wolph_jejik_abnamro.sta": [
        ("ABN AMRO BANK NV/19321/1", 8, 323628, 87684, False),
        ("ABN AMRO BANK NV/19322/1", 2, 287684, 184975, False),
    ],
    "bai2/moj_svb_us_example.bai2": [
        ("2022-02-01/1234567890", 1, 34726979, 35217175, True),
        ("2022-02-02/1234567890", 1, 35217175, 36122975, True),
    ],
    # Only available balances (040/045), no ledger ones: the check cannot be made.
    "bai2/moov_sample1.bai2": [
        ("2006-03-17/10200123456", 11, None, None, None),
        ("2006-03-17/10200123456#2", 6, None, None, None),
    ],
    "bai2/moov_sample3.bai2": (
        "bai2 line 1: a second record ('02,') follows '/' on the same line; "
        "BAI2 puts each record on its own line"
    ),
}


def test_every_file_has_an_expectation():
    present = sorted(
        f"{folder}/{path.name}" for folder in FOLDERS for path in (REPORTS / folder).iterdir()
    )
    assert present == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_reads_or_is_refused_as_expected(name):
    content = (REPORTS / name).read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(UnreadableStatement) as refused:
            read_bytes(content)
        assert refused.value.detail == expected
        return
    statements = read_bytes(content)
    assert [
        (
            statement.header.statement_id,
            len(entries),
            statement.header.opening_balance_minor,
            statement.header.closing_balance_minor,
            statement.balanced,
        )
        for statement, entries in statements
    ] == expected
    for statement, entries in statements:
        assert statement.entry_count == len(entries)
        assert statement.entries_total_minor == sum(entry.amount_minor for entry in entries)
        assert all(entry.currency == statement.header.currency for entry in entries)
