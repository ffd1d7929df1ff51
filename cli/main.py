"""``recon``: the operator's command line (answers as :mod:`cli.output` says)."""

from __future__ import annotations

import uuid

import click

from cli.bank import bank
from cli.demo import demo
from cli.output import domain_errors, emit, json_option
from cli.payments import payments
from cli.processes import beat, serve, up, worker
from cli.runs import run
from cli.settings import provider, settings
from cli.settlements import settlements
from cli.users import user
from shared.access.api_keys import create_api_key, revoke_api_key
from shared.access.organizations import create_organization
from shared.models import ROLES
from shared.platform import migrations
from shared.platform.db import unit_of_work
from shared.platform.logs import configure_logging
from shared.platform.settings import load_settings


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


for command in (
    serve,
    worker,
    beat,
    up,
    demo,
    payments,
    run,
    settings,
    provider,
    settlements,
    bank,
    user,
):
    cli.add_command(command)
