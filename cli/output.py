"""How every ``recon`` command answers: a human summary, or with ``--json`` exactly one
JSON object on stdout; a domain error as a one-line message and exit status 1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from sqlalchemy.orm import Session

from shared.platform.errors import DomainError

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of text."
)


def domain_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report a DomainError as a one-line click error instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as error:
            raise click.ClickException(error.detail) from None

    return wrapper


def emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    """Print ``data`` as one JSON object, or ``text`` for a person."""
    click.echo(json.dumps(data) if as_json else text)


def owning_org(
    session: Session, account_model: type, account_id: uuid.UUID | None, org_id: uuid.UUID | None
) -> uuid.UUID:
    """The organisation an import is for: the account's (``--account``), else ``--org``."""
    if account_id is not None:
        account = session.get(account_model, account_id)
        if account is None:
            label = account_model.__tablename__.removesuffix("s").replace("_", " ")
            raise click.ClickException(f"{label} {account_id} does not exist")
        return account.org_id
    if org_id is None:
        raise click.UsageError("give --account or --org")
    return org_id
