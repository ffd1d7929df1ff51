"""``recon settings`` and ``recon provider``: an organisation's settings and its provider
accounts, changed through the same core functions (and validation) as the HTTP API, and
logged in the settings log as ``cli``."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

import click

from cli.output import domain_errors, emit, json_option
from shared.access.organizations import get_organization
from shared.access.settings import OrganizationSettings, apply_settings_change, parse_assignments
from shared.access.settings_log import OPERATOR, list_settings_history
from shared.models import Organization
from shared.platform.db import unit_of_work
from shared.platform.errors import validate_input
from shared.platform.pagination import MAX_LIMIT
from shared.providers.accounts import (
    AccountChange,
    AccountView,
    NewAccount,
    change_provider_account,
    create_provider_account,
    list_provider_accounts,
)
from shared.providers.registry import PROVIDER_NAMES

org_option = click.option(
    "--org", "org_id", type=click.UUID, required=True, help="Organisation id."
)


def plain(value: Any) -> Any:
    """``value`` as JSON data (ids and times as text)."""
    return json.loads(json.dumps(value, default=str))


def settings_data(organization: Organization) -> dict[str, Any]:
    """The organisation's settings and their version, as JSON data."""
    values = OrganizationSettings.of(organization).model_dump(mode="json")
    return {**values, "settings_version": organization.settings_version}


def lines(data: dict[str, Any]) -> str:
    """``key: value`` lines for a person."""
    return "\n".join(
        f"{key}: {json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in data.items()
    )


@click.group()
def settings() -> None:
    """An organisation's settings: matching tolerances and windows, schedule, auto-fix."""


@settings.command("show")
@org_option
@json_option
@domain_errors
def settings_show(org_id: uuid.UUID, as_json: bool) -> None:
    """Print every setting of the organisation and its settings_version."""
    with unit_of_work() as session:
        data = settings_data(get_organization(session=session, org_id=org_id))
    emit(as_json, data, lines(data))


@settings.command("set")
@org_option
@click.argument("assignments", nargs=-1, required=True)
@json_option
@domain_errors
def settings_set(org_id: uuid.UUID, assignments: tuple[str, ...], as_json: bool) -> None:
    """Change settings, e.g. `grace_period_seconds=600 amount_tolerance_percent=0.5
    auto_fix=null` (null: the deployment default). Validated as the API validates."""
    change = parse_assignments(list(assignments))
    with unit_of_work() as session:
        organization = apply_settings_change(
            session=session, org_id=org_id, change=change, actor=OPERATOR, expected_version=None
        )
        data = settings_data(organization)
    emit(as_json, data, lines(data))


@settings.command("history")
@org_option
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="How many entries.",
)
@json_option
@domain_errors
def settings_history(org_id: uuid.UUID, limit: int, as_json: bool) -> None:
    """Print the settings log, newest first: who changed which field, from what to what."""
    with unit_of_work() as session:
        get_organization(session=session, org_id=org_id)
        page = list_settings_history(session=session, org_id=org_id, cursor=None, limit=limit)
        entries = [
            plain(
                {
                    "created_at": entry.created_at,
                    "actor": entry.actor,
                    "actor_name": entry.actor_name,
                    "subject": entry.subject,
                    "field": entry.field,
                    "old_value": entry.old_value,
                    "new_value": entry.new_value,
                }
            )
            for entry in page.items
        ]
    text = "\n".join(
        f"{e['created_at']} {e['actor_name'] or e['actor']} {e['subject']} {e['field']}: "
        f"{json.dumps(e['old_value'])} → {json.dumps(e['new_value'])}"
        for e in entries
    )
    emit(as_json, {"items": entries}, text or "no changes recorded")


@click.group()
def provider() -> None:
    """Provider accounts that send webhooks, their options and their signing secrets."""


def account_text(view: AccountView) -> str:
    """A provider account for a person; a generated secret with a warning, once."""
    text = (
        f"id:           {view.id}\nprovider:     {view.provider}\nactive:       {view.active}\n"
        f"webhook path: {view.webhook_path}\n"
        f"secrets:      {', '.join(s.fingerprint for s in view.secrets)}"
    )
    if view.provider == "stripe":
        text += f"\nmerchant reference key: {view.merchant_reference_key}"
    if view.provider == "adyen":
        text += f"\nmanual capture: {view.manual_capture}"
    if view.new_secret:
        text += f"\nnew secret:   {view.new_secret}\n(store it now: it cannot be shown again)"
    return text


def emit_account(as_json: bool, view: AccountView) -> None:
    """Print one account (``new_secret`` only when this command generated one)."""
    data = plain(asdict(view))
    if view.new_secret is None:
        del data["new_secret"]
    emit(as_json, data, account_text(view))


def given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (None: not given)."""
    return {name: value for name, value in options.items() if value is not None}


@provider.command("list")
@org_option
@json_option
@domain_errors
def provider_list(org_id: uuid.UUID, as_json: bool) -> None:
    """List the organisation's provider accounts; secrets by fingerprint only."""
    with unit_of_work() as session:
        get_organization(session=session, org_id=org_id)
        views = list_provider_accounts(session=session, org_id=org_id)
    data = [{k: v for k, v in plain(asdict(view)).items() if k != "new_secret"} for view in views]
    emit(
        as_json, {"items": data}, "\n\n".join(account_text(view) for view in views) or "no accounts"
    )


merchant_key_option = click.option(
    "--merchant-reference-key", help="Stripe: the metadata key holding the payment's external_id."
)
manual_capture_option = click.option(
    "--manual-capture/--automatic-capture",
    default=None,
    help="Adyen: the account captures manually.",
)


@provider.command("add")
@org_option
@click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDER_NAMES),
    required=True,
    help="Which provider sends the webhooks.",
)
@click.option(
    "--secret",
    help=(
        "The provider's signing secret (Stripe whsec_..., Adyen HMAC hex key, Standard "
        "whsec_...); generated and printed once when left out."
    ),
)
@click.option("--name", help="A label, e.g. the provider's account or merchant name.")
@merchant_key_option
@manual_capture_option
@json_option
@domain_errors
def provider_add(org_id: uuid.UUID, provider_name: str, as_json: bool, **options: Any) -> None:
    """Register a provider account and print the webhook path to configure at the provider."""
    new = validate_input(
        NewAccount, {"provider": provider_name, **given(**options)}, "account is invalid"
    )
    with unit_of_work() as session:
        get_organization(session=session, org_id=org_id)
        view = create_provider_account(session=session, org_id=org_id, new=new, actor=OPERATOR)
    emit_account(as_json, view)


def change_account(account_id: uuid.UUID, values: dict[str, Any], as_json: bool) -> None:
    """Apply ``values`` (an AccountChange) to the account and print it."""
    change = validate_input(AccountChange, values, "change is invalid")
    with unit_of_work() as session:
        view = change_provider_account(
            session=session, account_id=account_id, change=change, actor=OPERATOR
        )
    emit_account(as_json, view)


@provider.command("set")
@click.argument("account_id", type=click.UUID)
@click.option("--name", help="A new label.")
@click.option(
    "--active/--inactive", default=None, help="Receive webhooks (inactive: 404 to the provider)."
)
@merchant_key_option
@manual_capture_option
@json_option
@domain_errors
def provider_set(account_id: uuid.UUID, as_json: bool, **options: Any) -> None:
    """Change a provider account's label, active flag or options."""
    change_account(account_id, given(**options), as_json)


@provider.command("rotate-secret")
@click.argument("account_id", type=click.UUID)
@click.option("--secret", help="The new signing secret; generated and printed once when left out.")
@json_option
@domain_errors
def provider_rotate_secret(account_id: uuid.UUID, secret: str | None, as_json: bool) -> None:
    """Accept one more signing secret (both verify until the old one is retired)."""
    change_account(account_id, {"add_secret": secret if secret is not None else True}, as_json)


@provider.command("retire-secret")
@click.argument("account_id", type=click.UUID)
@click.argument("fingerprint")
@json_option
@domain_errors
def provider_retire_secret(account_id: uuid.UUID, fingerprint: str, as_json: bool) -> None:
    """Stop accepting the secret with FINGERPRINT (see `recon provider list`); the last
    secret cannot be retired."""
    change_account(account_id, {"retire_secret": fingerprint}, as_json)
