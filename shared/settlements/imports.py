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
from shared.settlements.layouts import read_settlement_report
from shared.settlements.links import LINK_COLUMNS, link_joins
from shared.settlements.model import ReportLine, ReportPayout
from shared.settlements.payouts import record_payouts
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
    summary = _ImportSummary()
    for lines, payouts in _batches(report.rows):
        summary.count(
            lines, payouts, *_write(session, org_id, file_id, report.provider, lines, payouts)
        )
        if on_progress is not None:
            on_progress(binary.tell())
    _keep_original(session, file_id, binary)
    file = session.get(SettlementFile, file_id)
    file.summary = summary.as_json()  # type: ignore[union-attr]
    session.flush()
    # Its lines are judged against payments, its payouts against bank entries.
    send_after_commit(session, MATCH_SETTLEMENT_FILE, [str(file_id)])
    queue_payout_matching(session, org_id)
    log.info("settlement.imported", org_id=str(org_id), file_id=str(file_id), layout=report.layout,
             lines=summary.lines, payouts=summary.payouts)  # fmt: skip
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


# column → PostgreSQL array type, in the order each row's values are listed.
LINE_COLUMNS = {
    "line_key": "text", "row_number": "int", "batch_id": "text", "line_type": "text",
    "provider_type": "text", "provider_reference": "text", "line_reference": "text",
    "merchant_reference": "text", "payment_intent_id": "text", "gross_minor": "bigint",
    "gross_currency": "text", "commission_minor": "bigint", "markup_minor": "bigint",
    "scheme_fee_minor": "bigint", "interchange_minor": "bigint", "processing_minor": "bigint",
    "other_fee_minor": "bigint", "net_minor": "bigint", "net_currency": "text",
    "exchange_rate": "numeric", "booked_at": "timestamptz", "description": "text",
}  # fmt: skip


# Each line is inserted with its links (shared/settlements/links.py) already found; column
# names are this module's constants, never input.
_LISTED = ", ".join(LINE_COLUMNS)
INSERT_LINES = text(f"""
INSERT INTO settlement_lines
  (org_id, file_id, provider, {_LISTED}, provider_record_id, payment_id)
SELECT :org_id, :file_id, :provider, {", ".join(f"v.{name}" for name in LINE_COLUMNS)},
       {LINK_COLUMNS}
FROM unnest({array_parameters(LINE_COLUMNS)}) AS v({_LISTED})
{link_joins("v", ":provider")}
ON CONFLICT (org_id, line_key) DO NOTHING
""")  # noqa: S608


def _line_values(line: ReportLine) -> tuple[Any, ...]:
    fees = line.fees
    return (
        line.key, line.row, line.batch_id, line.line_type, line.provider_type,
        line.provider_reference, line.line_reference, line.merchant_reference,
        line.payment_intent_id, line.gross_minor, line.gross_currency, fees.commission,
        fees.markup, fees.scheme_fee, fees.interchange, fees.processing, fees.other,
        line.net_minor, line.net_currency, line.exchange_rate, line.booked_at, line.description,
    )  # fmt: skip


def _write(
    session: Session,
    org_id: uuid.UUID,
    file_id: uuid.UUID,
    provider: str,
    lines: list[ReportLine],
    payouts: list[ReportPayout],
) -> tuple[int, int]:
    """Insert one batch; the lines and payouts it added (the others were known)."""
    added_lines = 0
    if lines:
        parameters = column_arrays([_line_values(line) for line in lines], LINE_COLUMNS) | {
            "org_id": org_id, "file_id": file_id, "provider": provider,
        }  # fmt: skip
        added_lines = session.execute(INSERT_LINES, parameters).rowcount
    added_payouts = record_payouts(
        session=session, org_id=org_id, provider=provider, payouts=payouts, file_id=file_id
    )
    return added_lines, added_payouts


def _keep_original(session: Session, file_id: uuid.UUID, binary: IO[bytes]) -> None:
    binary.seek(0)
    position = 0
    while chunk := binary.read(CHUNK_BYTES):
        session.execute(
            insert(SettlementFileChunk).values(file_id=file_id, position=position, data=chunk)
        )
        position += 1


class _ImportSummary:
    """What a file held, per settlement currency, and how much of it was already known."""

    def __init__(self) -> None:
        self.lines = self.payouts = self.known_lines = self.known_payouts = 0
        self.totals: dict[str, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(("lines", "net_minor", "fees_minor", "payouts_minor"), 0)
        )

    def count(
        self,
        lines: list[ReportLine],
        payouts: list[ReportPayout],
        added_lines: int,
        added_payouts: int,
    ) -> None:
        self.lines += len(lines)
        self.payouts += len(payouts)
        self.known_lines += len(lines) - added_lines
        self.known_payouts += len(payouts) - added_payouts
        for line in lines:
            total = self.totals[line.net_currency]
            total["lines"] += 1
            if line.line_type != "payout":
                total["net_minor"] += line.net_minor
                total["fees_minor"] += line.fees.total
        for payout in payouts:
            self.totals[payout.currency]["payouts_minor"] += payout.amount_minor

    def as_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "payouts": self.payouts,
            "already_known": {"lines": self.known_lines, "payouts": self.known_payouts},
            "totals": dict(sorted(self.totals.items())),
        }
