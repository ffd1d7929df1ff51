"""``recon settlements``: import a provider's settlement report from a file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from cli.output import owning_org
from cli.payments import Progress
from shared.access.settings_log import OPERATOR
from shared.models import ProviderAccount
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError
from shared.settlements.imports import import_settlement_file


@click.group()
def settlements() -> None:
    """Provider settlement reports: what was settled, kept as fees and paid out."""


@settlements.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--account",
    "account_id",
    type=click.UUID,
    help="Provider account the file is from (gives the organisation and the Stripe "
    "merchant-reference metadata key).",
)
@click.option("--org", "org_id", type=click.UUID, help="Organisation, when no --account is given.")
def import_settlements(file: Path, account_id: uuid.UUID | None, org_id: uuid.UUID | None) -> None:
    """Import FILE (Adyen, Stripe or PayPal settlement report) in one transaction.

    Prints the import's summary as JSON. The same file again prints the earlier import
    (exit 0); a file of no known layout or with a bad cell stores nothing and exits 1
    naming the row and column.
    """
    try:
        with unit_of_work() as session:
            org_id = owning_org(session, ProviderAccount, account_id, org_id)
            with file.open("rb") as binary, Progress(binary, file.stat().st_size) as progress:
                imported = import_settlement_file(
                    session=session,
                    org_id=org_id,
                    binary=binary,
                    filename=file.name,
                    imported_by=OPERATOR,
                    provider_account_id=account_id,
                    on_progress=lambda _: progress.advance(),
                )
                progress.clear_line()
            answer = {
                "file_id": str(imported.file.id),
                "created": imported.created,
                "layout": imported.file.layout,
                **imported.file.summary,
            }
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    click.echo(json.dumps(answer, indent=2))
