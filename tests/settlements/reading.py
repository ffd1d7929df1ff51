"""Reading a settlement file in tests: its layout, lines and payouts, and their sums."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from shared.settlements.layouts import read_settlement_report
from shared.settlements.model import ReportLine, ReportPayout

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


def parse_bytes(content: bytes, **options: str) -> Parsed:
    """Every row of ``content``, read as the import reads it."""
    report = read_settlement_report(io.BytesIO(content), **options)
    parsed = Parsed(report.layout)
    for row in report.rows:
        if isinstance(row, ReportPayout):
            parsed.payouts.append(row)
            parsed.paid_out[row.currency] += row.amount_minor
        else:
            parsed.lines.append(row)
            if row.line_type != "payout":
                parsed.net[row.net_currency] += row.net_minor
    parsed.net, parsed.paid_out = dict(parsed.net), dict(parsed.paid_out)
    return parsed


def parse_path(path: Path, **options: str) -> Parsed:
    """:func:`parse_bytes` of a file."""
    return parse_bytes(path.read_bytes(), **options)


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
