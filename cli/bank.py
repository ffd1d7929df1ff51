"""``recon bank``: import a bank statement file (camt.053, MT940, BAI2 or CSV)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from cli.output import owning_org
from cli.payments import Progress
from shared.bank.csv_format import CsvMapping
from shared.bank.imports import ImportedStatement, import_statement_file
from shared.models import BankAccount
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError, validate_input
from shared.values.money import format_minor

BALANCE_CHECK = {True: "balances add up", False: "balances do NOT add up", None: "no balances"}


def describe(imported: ImportedStatement) -> str:
    """One line per statement: account, id, period, entries, balances and their check."""
    record, account = imported.record, imported.account
    added = "already imported" if imported.already_imported else f"{imported.entries_added} added"
    balances = ", ".join(
        f"{name} {format_minor(value, record.currency)}"
        for name, value in (
            ("opening", record.opening_balance_minor),
            ("closing", record.closing_balance_minor),
        )
        if value is not None
    )
    return (
        f"{account.masked_identifier} {account.currency} · {record.statement_id} "
        f"({record.format}, {record.period_start} → {record.period_end}): "
        f"{record.entry_count} entries ({added})"
        + (f", {balances}" if balances else "")
        + f", {BALANCE_CHECK[record.balanced]}"
    )


def read_mapping(path: Path | None) -> CsvMapping | None:
    """The CSV mapping of a JSON file, or a usage error naming what is wrong."""
    if path is None:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--mapping") from None
    return validate_input(CsvMapping, document, "mapping file is invalid")


@click.group()
def bank() -> None:
    """Bank statements: what arrived on the organisation's bank accounts."""


@bank.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--account",
    "account_id",
    type=click.UUID,
    help="Bank account the statements are of (gives the organisation, and a CSV its mapping).",
)
@click.option("--org", "org_id", type=click.UUID, help="Organisation, when no --account is given.")
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="CSV column mapping (JSON); saved on the account for its next CSV file.",
)
def import_statements(
    file: Path, account_id: uuid.UUID | None, org_id: uuid.UUID | None, mapping_path: Path | None
) -> None:
    """Import FILE (camt.053, MT940, BAI2, or CSV with a mapping) in one transaction.

    Prints a line per statement: account, statement id, period, entries, balances and
    whether they add up. The same file again prints its earlier import (exit 0); an
    unreadable file stores nothing and exits 1 naming the place.
    """
    try:
        mapping = read_mapping(mapping_path)
        with unit_of_work() as session:
            org_id = owning_org(session, BankAccount, account_id, org_id)
            with file.open("rb") as binary, Progress(binary, file.stat().st_size) as progress:
                imported = import_statement_file(
                    session=session,
                    org_id=org_id,
                    binary=binary,
                    filename=file.name,
                    account_id=account_id,
                    csv_mapping=mapping,
                    on_progress=lambda _: progress.advance(),
                )
                progress.clear_line()
            lines = [describe(statement) for statement in imported.statements]
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    for line in lines:
        click.echo(line)
