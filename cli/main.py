"""``recon``: the operator's command line.

Creating commands print a human summary, or with ``--json`` exactly one JSON object on
stdout for scripts. Domain errors become one-line messages and exit status 1.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from cli.demo import demo
from cli.payments import payments
from cli.processes import beat, serve, up, worker
from cli.runs import run
from cli.settlements import settlements
from shared.access.api_keys import create_api_key, revoke_api_key
from shared.access.organizations import create_organization
from shared.models import ROLES
from shared.platform import migrations
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError
from shared.platform.logs import configure_logging
from shared.platform.settings import load_settings
from shared.providers.accounts import (
    add_provider_account,
    add_signing_secret,
    remove_signing_secret,
    webhook_path,
)
from shared.providers.registry import PROVIDER_NAMES

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


def emit(as_json: bool, data: dict[str, str], text: str) -> None:
    """Print ``data`` as one JSON object, or ``text`` for a person."""
    click.echo(json.dumps(data) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Billing reconciliation service: webhooks in, discrepancies out.

    Configure with environment variables (DATABASE_URL, REDIS_URL, ...; see README).
    Start everything for development with `recon up`.
    """
    # Refuse to start on an invalid setting, with one line naming the variable.
    load_settings()
    # JSON log lines go to stderr, so stdout stays the command's own output (--json).
    configure_logging()


@cli.group()
def db() -> None:
    """Database schema commands (migrations with Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply every pending migration to DATABASE_URL (safe to run repeatedly)."""
    migrations.upgrade(revision)
    click.echo(f"database at revision {revision}")


@cli.group()
def org() -> None:
    """Organisations: the tenants that own payments, providers and keys."""


@org.command("create")
@click.argument("name")
@click.option("--timezone", help="IANA time zone of the daily run [RECONCILIATION_TIMEZONE].")
@click.option(
    "--daily-hour",
    type=click.IntRange(0, 23),
    help="Local hour (0-23) of the daily run [RECONCILIATION_HOUR].",
)
@json_option
@domain_errors
def org_create(name: str, timezone: str | None, daily_hour: int | None, as_json: bool) -> None:
    """Create an organisation NAME and print its id."""
    with unit_of_work() as session:
        organization = create_organization(
            session=session, name=name, timezone=timezone, daily_hour=daily_hour
        )
    emit(as_json, {"id": str(organization.id)}, str(organization.id))


@cli.group()
def key() -> None:
    """API keys for the HTTP API (owner and manager triage; viewer reads)."""


@key.command("create")
@click.option("--org", "org_id", type=click.UUID, required=True, help="Organisation id.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do.")
@click.option("--name", help="A label to recognise the key by (e.g. who holds it).")
@json_option
@domain_errors
def key_create(org_id: uuid.UUID, role: str, name: str | None, as_json: bool) -> None:
    """Create an API key. The key is printed once: only its hash is stored."""
    with unit_of_work() as session:
        issued = create_api_key(session=session, org_id=org_id, role=role, name=name)
    key_id = str(issued.api_key.id)
    emit(
        as_json,
        {"id": key_id, "key": issued.secret},
        f"id:  {key_id}\nkey: {issued.secret}\n(store the key now: it cannot be shown again)",
    )


@key.command("revoke")
@click.argument("key_id", type=click.UUID)
@domain_errors
def key_revoke(key_id: uuid.UUID) -> None:
    """Revoke the API key KEY_ID; requests with it are refused from now on."""
    with unit_of_work() as session:
        revoke_api_key(session=session, key_id=key_id)
    click.echo(f"revoked {key_id}")


@cli.group()
def provider() -> None:
    """Provider accounts that send webhooks, and their signing secrets."""


@provider.command("add")
@click.option("--org", "org_id", type=click.UUID, required=True, help="Organisation id.")
@click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDER_NAMES),
    required=True,
    help="Which provider sends the webhooks.",
)
@click.option(
    "--secret",
    required=True,
    help="Webhook signing secret (Stripe whsec_..., Adyen HMAC hex key, Standard whsec_...).",
)
@click.option("--name", help="A label, e.g. the provider's account or merchant name.")
@json_option
@domain_errors
def provider_add(
    org_id: uuid.UUID, provider_name: str, secret: str, name: str | None, as_json: bool
) -> None:
    """Register a provider account and print the webhook path to configure at the provider."""
    with unit_of_work() as session:
        account = add_provider_account(
            session=session, org_id=org_id, provider=provider_name, secret=secret, name=name
        )
    path = webhook_path(account)
    emit(
        as_json,
        {"id": str(account.id), "webhook_path": path},
        f"id:           {account.id}\nwebhook path: {path}",
    )


def secret_rotation_command(
    name: str, change: Callable[..., Any], secret_help: str, summary: str
) -> None:
    """Register ``recon provider <name> ACCOUNT_ID --secret S``: ``change`` the account's
    signing secrets and print how many are active."""

    @provider.command(name, help=summary)
    @click.argument("account_id", type=click.UUID)
    @click.option("--secret", required=True, help=secret_help)
    @domain_errors
    def command(account_id: uuid.UUID, secret: str) -> None:
        with unit_of_work() as session:
            account = change(session=session, account_id=account_id, secret=secret)
        click.echo(f"{account.id}: {len(account.signing_secrets)} active secrets")


secret_rotation_command(
    "add-secret",
    add_signing_secret,
    "The new signing secret.",
    "Accept a second signing secret during rotation (both verify until one is removed).",
)
secret_rotation_command(
    "remove-secret",
    remove_signing_secret,
    "The signing secret to retire.",
    "Stop accepting an old signing secret (the last one cannot be removed).",
)


for command in (serve, worker, beat, up, demo, payments, run, settlements):
    cli.add_command(command)
