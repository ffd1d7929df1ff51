"""Importing a settlement file: streamed, all-or-nothing, idempotent.

The caller's unit of work holds the whole import: the file row, its lines and payouts
(in bulk statements of BATCH_ROWS), and its original bytes. A refusal anywhere rolls
every piece back; once it commits, a task matches the file's lines
(shared/settlements/matching.py). The same bytes again answer the earlier import; a line
or payout that another file already brought is counted as already known and not added.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.access.settings_log import Actor
from shared.bank.matching import queue_payout_matching
from shared.models import (
    ProviderAccount,
    SettlementFile,
    SettlementFileChunk,
)
from shared.platform.bulk import array_parameters, column_arrays
from shared.platform.dispatch import send_after_commit
from shared.platform.errors import NotFound, ValidationFailed
from shared.platform.ids import new_id
from shared.platform.logs import get_logger
from shared.platform.tasks import MATCH_SETTLEMENT_FILE
from shared.settlements.adyen import adyen_payouts, stage_adyen_lines
from shared.settlements.layouts import SettlementReport, StagedReport, read_settlement_report
from shared.settlements.links import LINK_COLUMNS, link_joins
from shared.settlements.model import ReportLine, ReportPayout
from shared.settlements.payouts import record_payouts
from shared.settlements.staging import (
    CREATE_IMPORT_LINES,
    IMPORT_LINE_COLUMNS,
    IMPORT_LINES,
    drop_staging,
    stage_csv_body,
)
from shared.values.text import MAX_TEXT_LENGTH, check_identifier

BATCH_ROWS = 5_000
CHUNK_BYTES = 1 << 20
DEFAULT_MERCHANT_REFERENCE_KEY = "external_id"

log = get_logger(__name__)


@dataclass(frozen=True)
class SettlementImport:
    """The file row of an import, and whether this call created it (else it existed)."""

    file: SettlementFile
    created: bool


class ProviderMismatch(ValidationFailed):
    """A file of one provider uploaded for another provider's account."""


def import_settlement_file(
    *,
    session: Session,
    org_id: uuid.UUID,
    binary: IO[bytes],
    filename: str,
    imported_by: Actor,
    provider_account_id: uuid.UUID | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SettlementImport:
    """Import the seekable ``binary`` for ``org_id`` as ``imported_by``, or answer its
    earlier import (and who made that one).

    ``on_progress`` is called with the bytes read so far. Raises the parsers' refusals
    (422), NotFound for another organisation's account, and never commits.
    """
    filename = _storable_filename(filename)
    account = _account(session, org_id, provider_account_id)
    sha256, size = _digest(binary)
    earlier = _earlier(session, org_id, sha256)
    if earlier is not None:
        return SettlementImport(earlier, created=False)
    key = account.merchant_reference_key if account else DEFAULT_MERCHANT_REFERENCE_KEY
    report = read_settlement_report(binary, merchant_reference_key=key)
    if account is not None and account.provider != report.provider:
        raise ProviderMismatch(
            f"this is a {report.provider} file ({report.layout}); the account is {account.provider}"
        )
    file_id = new_id()
    claimed = session.execute(
        pg_insert(SettlementFile)
        .values(
            id=file_id,
            org_id=org_id,
            provider=report.provider,
            layout=report.layout,
            provider_account_id=provider_account_id,
            filename=filename,
            sha256=sha256,
            size_bytes=size,
            imported_by=imported_by.id,
            imported_by_name=imported_by.name,
        )
        .on_conflict_do_nothing()
        .returning(SettlementFile.id)
    ).scalar()
    if claimed is None:  # a concurrent upload of the same bytes committed first
        return SettlementImport(_earlier(session, org_id, sha256), created=False)  # type: ignore[arg-type]
    # A refused import earlier in this transaction may have left its TEMP tables.
    session.execute(text(f"DROP TABLE IF EXISTS {IMPORT_LINES}"))
    session.execute(text(CREATE_IMPORT_LINES))
    if isinstance(report, StagedReport):
        payouts = _stage_adyen(session, org_id, file_id, binary, report, on_progress)
    else:
        payouts = _stage_rows(session, org_id, file_id, binary, report, on_progress)
    summary = payouts.with_lines(_store_lines(session, org_id, file_id, report.provider))
    _keep_original(session, file_id, binary)
    file = session.get(SettlementFile, file_id)
    file.summary = summary  # type: ignore[union-attr]
    session.flush()
    # Its lines are judged against payments, its payouts against bank entries.
    send_after_commit(session, MATCH_SETTLEMENT_FILE, [str(file_id)])
    queue_payout_matching(session, org_id)
    log.info("settlement.imported", org_id=str(org_id), file_id=str(file_id), layout=report.layout,
             lines=summary["lines"], payouts=summary["payouts"])  # fmt: skip
    return SettlementImport(file, created=True)  # type: ignore[arg-type]


def _storable_filename(filename: str) -> str:
    name = filename.strip()[:MAX_TEXT_LENGTH] or "settlement-file"
    try:
        return check_identifier(name, field="filename")
    except ValueError as error:
        raise ValidationFailed(str(error)) from None


def _account(
    session: Session, org_id: uuid.UUID, account_id: uuid.UUID | None
) -> ProviderAccount | None:
    if account_id is None:
        return None
    account = session.get(ProviderAccount, account_id)
    if account is None or account.org_id != org_id:
        raise NotFound(f"provider account {account_id} does not exist")
    return account


def _digest(binary: IO[bytes]) -> tuple[str, int]:
    """The SHA-256 and size of ``binary`` from where it stands; it is rewound after."""
    start = binary.tell()
    digest = hashlib.sha256()
    while chunk := binary.read(CHUNK_BYTES):
        digest.update(chunk)
    size = binary.tell() - start
    binary.seek(start)
    return digest.hexdigest(), size


def _earlier(session: Session, org_id: uuid.UUID, sha256: str) -> SettlementFile | None:
    return session.scalar(
        select(SettlementFile).where(
            SettlementFile.org_id == org_id, SettlementFile.sha256 == sha256
        )
    )


def _batches(
    rows: Iterable[ReportLine | ReportPayout],
) -> Iterable[tuple[list[ReportLine], list[ReportPayout]]]:
    lines: list[ReportLine] = []
    payouts: list[ReportPayout] = []
    for row in rows:
        (payouts if isinstance(row, ReportPayout) else lines).append(row)  # type: ignore[arg-type]
        if len(lines) + len(payouts) >= BATCH_ROWS:
            yield lines, payouts
            lines, payouts = [], []
    yield lines, payouts


_FEES = ("commission_minor", "markup_minor", "scheme_fee_minor", "interchange_minor",
         "processing_minor", "other_fee_minor")  # fmt: skip
INSERT_IMPORT_LINES = text(f"""
INSERT INTO {IMPORT_LINES} ({", ".join(IMPORT_LINE_COLUMNS)})
SELECT * FROM unnest({array_parameters(IMPORT_LINE_COLUMNS)})
""")  # noqa: S608


def line_key(line: str, provider: str) -> str:
    """The SQL of a line's identity across files: the SHA-256 (hex) of every fact of the
    line ``line`` (an alias) of provider ``provider`` but its row number, joined by U+001F
    (an absent fact is empty; the booking time in ISO 8601, UTC), so the same row in
    another file, or repeated, is the same line."""
    facts = [provider, *(f"{line}.{name}" for name in IMPORT_LINE_COLUMNS if name not in {
        "row_number", "booked_at", "description"})]  # fmt: skip
    utc = f"({line}.booked_at AT TIME ZONE 'UTC')"
    booked = (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"extract(microseconds FROM {utc})::bigint % 1000000 <> 0 "
        f"THEN to_char({utc}, '.US') ELSE '' END || '+00:00'"
    )
    listed = ", ".join(f"coalesce(CAST({fact} AS text), '')" for fact in facts)
    return (
        f"encode(sha256(convert_to(concat_ws(chr(31), {listed}, {booked}, "
        f"coalesce({line}.description, '')), 'UTF8')), 'hex')"
    )


# Each line is stored with its links (shared/settlements/links.py) already found, in file
# order (the first of identical lines keeps its row number; key order filled the unique
# index faster but slowed the settlement leg, bench/README.md). Names are this module's
# constants, never input.
_STORED = list(IMPORT_LINE_COLUMNS)
STORE_LINES = text(f"""
INSERT INTO settlement_lines
  (org_id, file_id, provider, line_key, {", ".join(_STORED)}, provider_record_id, payment_id)
SELECT :org_id, :file_id, :provider, {line_key("v", ":provider")},
       {", ".join(f"v.{name}" for name in _STORED)}, {LINK_COLUMNS}
FROM {IMPORT_LINES} AS v
{link_joins("v", ":provider")}
ORDER BY v.row_number
ON CONFLICT (org_id, line_key) DO NOTHING
""")  # noqa: S608
LINE_TOTALS = text(f"""
SELECT net_currency, count(*) AS lines,
       CAST(coalesce(sum(net_minor) FILTER (WHERE line_type <> 'payout'), 0) AS bigint)
         AS net_minor,
       CAST(coalesce(sum({" + ".join(_FEES)}) FILTER (WHERE line_type <> 'payout'), 0) AS bigint)
         AS fees_minor
FROM {IMPORT_LINES} GROUP BY net_currency
""")  # noqa: S608


def _line_values(line: ReportLine) -> tuple[Any, ...]:
    fees = line.fees
    return (
        line.row, line.batch_id, line.line_type, line.provider_type,
        line.provider_reference, line.line_reference, line.merchant_reference,
        line.payment_intent_id, line.gross_minor, line.gross_currency, fees.commission,
        fees.markup, fees.scheme_fee, fees.interchange, fees.processing, fees.other,
        line.net_minor, line.net_currency, line.exchange_rate, line.booked_at, line.description,
    )  # fmt: skip


def _stage_rows(
    session: Session,
    org_id: uuid.UUID,
    file_id: uuid.UUID,
    binary: IO[bytes],
    report: SettlementReport,
    on_progress: Callable[[int], None] | None,
) -> _PayoutSummary:
    """Parse the rows in Python: lines into IMPORT_LINES, payouts recorded."""
    payouts = _PayoutSummary()
    for lines, stated in _batches(report.rows):
        if lines:
            values = [_line_values(line) for line in lines]
            session.execute(INSERT_IMPORT_LINES, column_arrays(values, IMPORT_LINE_COLUMNS))
        payouts.count(stated, _record(session, org_id, file_id, report.provider, stated))
        if on_progress is not None:
            on_progress(binary.tell())
    return payouts


def _stage_adyen(
    session: Session,
    org_id: uuid.UUID,
    file_id: uuid.UUID,
    binary: IO[bytes],
    report: StagedReport,
    on_progress: Callable[[int], None] | None,
) -> _PayoutSummary:
    """Read the body in PostgreSQL: lines into IMPORT_LINES, its payouts recorded."""
    staged = stage_csv_body(
        session, binary, width=len(report.header), header_row=report.header_row,
        body_start=report.body_start, on_progress=on_progress,
    )  # fmt: skip
    stage_adyen_lines(session=session, staged=staged, header=report.header, into=IMPORT_LINES)
    drop_staging(session)
    session.execute(text(f"ANALYZE {IMPORT_LINES}"))
    payouts = _PayoutSummary()
    for stated in adyen_payouts(session=session, lines=IMPORT_LINES, batch=BATCH_ROWS):
        payouts.count(stated, _record(session, org_id, file_id, report.provider, stated))
    return payouts


def _record(
    session: Session,
    org_id: uuid.UUID,
    file_id: uuid.UUID,
    provider: str,
    payouts: list[ReportPayout],
) -> int:
    return record_payouts(
        session=session, org_id=org_id, provider=provider, payouts=payouts, file_id=file_id
    )


def _store_lines(
    session: Session, org_id: uuid.UUID, file_id: uuid.UUID, provider: str
) -> dict[str, Any]:
    """Store the staged lines not known yet; the lines part of the summary."""
    ids = {"org_id": org_id, "file_id": file_id, "provider": provider}
    added = session.execute(STORE_LINES, ids).rowcount
    totals = {
        row.net_currency: {"lines": row.lines, "net_minor": row.net_minor,
                           "fees_minor": row.fees_minor, "payouts_minor": 0}
        for row in session.execute(LINE_TOTALS)
    }  # fmt: skip
    session.execute(text(f"DROP TABLE {IMPORT_LINES}"))
    lines = sum(total["lines"] for total in totals.values())
    return {"lines": lines, "known_lines": lines - added, "totals": totals}


def _keep_original(session: Session, file_id: uuid.UUID, binary: IO[bytes]) -> None:
    binary.seek(0)
    position = 0
    while chunk := binary.read(CHUNK_BYTES):
        session.execute(
            insert(SettlementFileChunk).values(file_id=file_id, position=position, data=chunk)
        )
        position += 1


class _PayoutSummary:
    """The payouts a file stated, per currency, and how many were already known."""

    def __init__(self) -> None:
        self.payouts = self.known = 0
        self.amounts: dict[str, int] = defaultdict(int)

    def count(self, payouts: list[ReportPayout], added: int) -> None:
        self.payouts += len(payouts)
        self.known += len(payouts) - added
        for payout in payouts:
            self.amounts[payout.currency] += payout.amount_minor

    def with_lines(self, lines: dict[str, Any]) -> dict[str, Any]:
        """The file's summary: these payouts and the ``lines`` part (_store_lines)."""
        totals = lines["totals"]
        empty = {"lines": 0, "net_minor": 0, "fees_minor": 0, "payouts_minor": 0}
        for currency, amount in self.amounts.items():
            totals.setdefault(currency, dict(empty))["payouts_minor"] += amount
        return {
            "lines": lines["lines"],
            "payouts": self.payouts,
            "already_known": {"lines": lines["known_lines"], "payouts": self.known},
            "totals": dict(sorted(totals.items())),
        }
