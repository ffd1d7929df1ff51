"""Reading a settlement file in tests: its layout, lines and payouts, and their sums.

A file is read as the import reads it, into a fresh organisation of the test's session
(an Adyen report's rows are checked and converted in PostgreSQL), and its stored lines
and payouts are read back.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from shared.access.settings_log import OPERATOR
from shared.models import SettlementLine, SettlementPayout
from shared.settlements.imports import import_settlement_file
from shared.settlements.layouts import read_settlement_report
from shared.settlements.model import Fees, ReportLine, ReportPayout
from tests.support.factories import make_account, make_org

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Parsed:
    """What a file holds: lines, payouts, and per settlement currency the net of its
    non-payout lines and the sum of its payouts."""

    layout: str
    lines: list[ReportLine] = field(default_factory=list)
    payouts: list[ReportPayout] = field(default_factory=list)
    net: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paid_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def parse_bytes(session: Session, content: bytes, **options: str) -> Parsed:
    """Every row of ``content``, imported (a Stripe file with an account whose merchant
    reference key is ``options["merchant_reference_key"]`` when given) and read back in
    file order."""
    org = make_org(session)
    account_id = None
    stripe = read_settlement_report(io.BytesIO(content)).provider == "stripe"
    if "merchant_reference_key" in options and stripe:
        account = make_account(session, org, "stripe")
        account.merchant_reference_key = options["merchant_reference_key"]
        session.flush()
        account_id = account.id
    imported = import_settlement_file(
        session=session, org_id=org.id, binary=io.BytesIO(content), filename="read.csv",
        imported_by=OPERATOR, provider_account_id=account_id,
    )  # fmt: skip
    parsed = Parsed(imported.file.layout)
    stored = session.scalars(
        select(SettlementLine)
        .where(SettlementLine.file_id == imported.file.id)
        .order_by(SettlementLine.row_number)
    )
    for line in stored:
        parsed.lines.append(_report_line(line))
        if line.line_type != "payout":
            parsed.net[line.net_currency] += line.net_minor
    # In file order where a line states the payout (Adyen), else as stored.
    stating_row = (
        select(func.min(SettlementLine.row_number))
        .where(SettlementLine.file_id == imported.file.id, SettlementLine.line_type == "payout",
               SettlementLine.batch_id == SettlementPayout.payout_id,
               SettlementLine.net_currency == SettlementPayout.currency)
        .scalar_subquery()
    )  # fmt: skip
    for payout in session.scalars(
        select(SettlementPayout)
        .where(SettlementPayout.org_id == org.id)
        .order_by(stating_row.nulls_last(), SettlementPayout.id)
    ):
        parsed.payouts.append(
            ReportPayout(payout.provider, 0, payout.payout_id, payout.currency,
                         payout.amount_minor, payout.status, payout.arrival_date,
                         payout.booked_at)
        )  # fmt: skip
        parsed.paid_out[payout.currency] += payout.amount_minor
    parsed.net, parsed.paid_out = dict(parsed.net), dict(parsed.paid_out)
    return parsed


def _report_line(line: SettlementLine) -> ReportLine:
    return ReportLine(
        provider=line.provider, row=line.row_number, batch_id=line.batch_id,
        line_type=line.line_type, provider_type=line.provider_type,
        provider_reference=line.provider_reference, line_reference=line.line_reference,
        merchant_reference=line.merchant_reference, payment_intent_id=line.payment_intent_id,
        gross_minor=line.gross_minor, gross_currency=line.gross_currency,
        fees=Fees(line.commission_minor, line.markup_minor, line.scheme_fee_minor,
                  line.interchange_minor, line.processing_minor, line.other_fee_minor),
        net_minor=line.net_minor, net_currency=line.net_currency,
        exchange_rate=line.exchange_rate, booked_at=line.booked_at,
        description=line.description,
    )  # fmt: skip


def parse_path(session: Session, path: Path, **options: str) -> Parsed:
    """:func:`parse_bytes` of a file."""
    return parse_bytes(session, path.read_bytes(), **options)


def csv_text(header: list[str], rows: list[dict[str, str]], *, newline: str = "\n") -> bytes:
    """A CSV file of ``header`` whose rows give cells by column name (others empty)."""
    lines = [",".join(header)]
    lines += [",".join(_quoted(row.get(name, "")) for name in header) for row in rows]
    return (newline.join(lines) + newline).encode()


def _quoted(cell: str) -> str:
    return f'"{cell}"' if "," in cell or '"' in cell else cell


def multipart(content: bytes, filename: str = "report.csv", field: str = "file") -> dict:
    """Keyword arguments of a test-client POST uploading ``content``, encoded in memory
    (the client would spool a large one to a temporary file it never closes)."""
    boundary, body = encode_multipart({field: FileStorage(io.BytesIO(content), filename)})
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}
