"""Which settlement layout a file is, told from its first record, and its rows streamed.

:func:`read_settlement_report` reads the header (or the JSON object) at once, so an
unknown layout is refused before anything else happens. An Adyen report's body is then
read in PostgreSQL (:class:`StagedReport`, shared/settlements/adyen.py); the other
layouts' rows come one by one as the caller iterates, never the whole file in memory (a
JSON object is one document, bounded by ``MAX_JSON_CHARACTERS``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from shared.settlements import adyen, paypal, stripe_csv, stripe_json
from shared.settlements.cells import (
    Columns,
    SettlementFileRefused,
    decoded_lines,
    numbered_records,
)
from shared.settlements.model import ReportLine, ReportPayout

# What each layout is told by, for the refusal of a file that is none of them.
EXPECTED = (
    f"Adyen Settlement details report (a header with {', '.join(adyen.REQUIRED_COLUMNS)}); "
    f"Stripe itemized balance or payout report (a header with "
    f"{', '.join(stripe_csv.REQUIRED_COLUMNS)}, created or created_utc); "
    "a Stripe balance_transaction or payout JSON object; "
    "PayPal Settlement report (STL: records starting RH, FH, SH or CH)"
)
ADYEN_ACCOUNTING_REPORT = ("Record Type", "Payable (SC)")


@dataclass(frozen=True)
class SettlementReport:
    """A file's provider and layout, and its rows (lines and payouts) as an iterator."""

    provider: str
    layout: str
    rows: Iterator[ReportLine | ReportPayout]


@dataclass(frozen=True)
class StagedReport:
    """A CSV report whose body is read in PostgreSQL: its header, the header's record
    number, and where in the file its body starts."""

    provider: str
    layout: str
    header: list[str]
    header_row: int
    body_start: int


def read_settlement_report(
    binary: IO[bytes], *, merchant_reference_key: str = "external_id"
) -> SettlementReport | StagedReport:
    """The report in ``binary`` (UTF-8, with or without a BOM, any line ending).

    Refuses (``SettlementFileRefused``) a file of no known layout, naming those expected;
    a bad cell met while iterating the rows raises ``SettlementCellInvalid``. ``binary``
    is read from where it stands and never closed here.
    """
    lines = decoded_lines(binary)
    first = next(lines, "")
    if first.lstrip().startswith("{"):
        limit = stripe_json.MAX_JSON_CHARACTERS + 1
        return _json_report(
            "".join(itertools.chain([first], itertools.islice(lines, limit)))[:limit]
        )
    records = numbered_records(itertools.chain([first], lines))
    head = next(records, None)
    if head is None:
        raise SettlementFileRefused(f"the file is empty; expected one of: {EXPECTED}")
    # The lines read so far are exactly the header's (the CSV reader asks for no more).
    return _csv_report(head, records, merchant_reference_key, body_start=binary.tell())


def _csv_report(
    head: tuple[int, list[str]],
    records: Iterator[tuple[int, list[str]]],
    merchant_reference_key: str,
    *,
    body_start: int,
) -> SettlementReport | StagedReport:
    header_row, header = head
    if header[0].strip().upper() in {"RH", "FH", "SH", "CH"}:
        rows = paypal.parse_paypal_settlement(itertools.chain([head], records))
        return SettlementReport("paypal", paypal.LAYOUT, rows)
    columns = Columns(header)
    if not columns.missing(adyen.REQUIRED_COLUMNS):
        return StagedReport("adyen", adyen.LAYOUT, header, header_row, body_start)
    if not columns.missing(stripe_csv.REQUIRED_COLUMNS) and any(
        name in columns for name in stripe_csv.CREATED_COLUMNS
    ):
        rows = stripe_csv.parse_stripe_balance_report(
            header, records, merchant_reference_key=merchant_reference_key
        )
        return SettlementReport("stripe", stripe_csv.LAYOUT, rows)
    if not columns.missing(ADYEN_ACCOUNTING_REPORT):
        raise SettlementFileRefused(
            "this is an Adyen Payments accounting report (a payment's lifecycle: Received, "
            "Authorised, SentForSettle, Settled), not a settlement report; upload the "
            "Settlement details report of the batch instead"
        )
    raise SettlementFileRefused(f"unknown layout; expected one of: {EXPECTED}")


def _json_report(document_text: str) -> SettlementReport:
    if len(document_text) > stripe_json.MAX_JSON_CHARACTERS:
        raise SettlementFileRefused(
            f"a JSON document is read whole: at most {stripe_json.MAX_JSON_CHARACTERS} characters"
        )
    try:
        document: Any = json.loads(document_text, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        raise SettlementFileRefused(f"not valid JSON ({str(error)[:100]})") from None
    kind = document.get("object") if isinstance(document, dict) else None
    if kind == "balance_transaction":
        rows = stripe_json.parse_balance_transaction(document)
        return SettlementReport("stripe", stripe_json.BALANCE_TRANSACTION_LAYOUT, iter(list(rows)))
    if kind == "payout":
        rows = stripe_json.parse_payout(document)
        return SettlementReport("stripe", stripe_json.PAYOUT_LAYOUT, iter(list(rows)))
    raise SettlementFileRefused(f"unknown JSON object; expected one of: {EXPECTED}")
