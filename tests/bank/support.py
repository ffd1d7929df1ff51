"""Shared by the bank tests: the fixtures folder and reading a statement from bytes."""

from __future__ import annotations

import io
from pathlib import Path

from shared.bank.formats import read_statement_file
from shared.bank.model import BankEntry, BankStatement, read_statements

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """The bytes of one of the project's own fixtures."""
    return (FIXTURES / name).read_bytes()


def read_bytes(content: bytes, **options) -> list[tuple[BankStatement, list[BankEntry]]]:
    """Every statement of ``content``, read through format detection."""
    return read_statements(read_statement_file(io.BytesIO(content), **options))
