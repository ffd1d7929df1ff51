"""``recon user``: the people who sign in to the console, and their one-time links."""

from __future__ import annotations

import uuid

import click

from cli.output import domain_errors, emit, json_option
from shared.access.users import PasswordLink, add_user, disable_user, issue_password_link
from shared.models import ROLES
from shared.platform.db import unit_of_work

org_option = click.option(
    "--org", "org_id", type=click.UUID, required=True, help="Organisation id."
)
email_option = click.option("--email", required=True, help="The person's e-mail address.")


@click.group()
def user() -> None:
    """People of an organisation who use the console (roles as API keys')."""


def emit_link(as_json: bool, link: PasswordLink) -> None:
    """Print the person's id and their one-time link (shown once: only its hash is kept)."""
    emit(
        as_json,
        {"id": str(link.user.id), "link": link.url, "expires_at": link.expires_at.isoformat()},
        f"id:   {link.user.id}\nlink: {link.url}\n"
        f"(send it to {link.user.email}: it sets the password once, until "
        f"{link.expires_at:%Y-%m-%d %H:%M} UTC)",
    )


@user.command("add")
@org_option
@email_option
@click.option("--name", required=True, help="The person's name, as the action log shows it.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What they may do.")
@json_option
@domain_errors
def user_add(org_id: uuid.UUID, email: str, name: str, role: str, as_json: bool) -> None:
    """Add a person and print a one-time link that sets their password."""
    with unit_of_work() as session:
        link = add_user(session=session, org_id=org_id, email=email, name=name, role=role)
    emit_link(as_json, link)


@user.command("reset-password")
@org_option
@email_option
@json_option
@domain_errors
def user_reset_password(org_id: uuid.UUID, email: str, as_json: bool) -> None:
    """Print a new one-time link that sets the person's password (older links stop working)."""
    with unit_of_work() as session:
        link = issue_password_link(session=session, org_id=org_id, email=email)
    emit_link(as_json, link)


@user.command("disable")
@org_option
@email_option
@domain_errors
def user_disable(org_id: uuid.UUID, email: str) -> None:
    """Stop a person signing in; their open sessions end at their next request."""
    with unit_of_work() as session:
        disabled = disable_user(session=session, org_id=org_id, email=email)
    click.echo(f"disabled {disabled.email}")
