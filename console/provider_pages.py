"""Provider accounts (owners): the list with the register form, and an account's page
with the form that changes it and its secrets (add, retire). A secret is never shown,
only its fingerprint, except the one a request has just generated, on that request's
page; a refusal is a message on the page (the API's words), nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from console.forms import parse_query
from console.owner_forms import (
    AccountQuery,
    fee_rows,
    parse_account_change,
    parse_new_account,
    parse_new_secret,
    parse_retirement,
    submitted_fee_rows,
)
from console.web import blueprint, page
from shared.access.api_keys import OWNER_ROLES, Caller
from shared.access.settings_log import Actor
from shared.platform.errors import Conflict, ValidationFailed
from shared.platform.settings import get_settings
from shared.providers.accounts import (
    FEE_SCHEDULE,
    OPTION_NAMES,
    PAYOUT_ARRIVAL_DAYS,
    AccountChange,
    AccountView,
    change_provider_account,
    create_provider_account,
    get_provider_account,
    list_provider_accounts,
    options_read,
    show_provider_account,
)
from shared.providers.registry import PROVIDER_NAMES

NOTICES = {"saved": "The account is saved.", "retired": "The secret is retired."}
REFUSED = (ValidationFailed, Conflict)


def webhook_url(view: AccountView) -> str:
    """Where the provider sends the account's webhooks: this service's public address
    (``CONSOLE_BASE_URL``: the console and the webhooks are one application)."""
    return f"{get_settings().console_base_url}{view.webhook_path}"


def render_accounts(
    session: Session,
    caller: Caller,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The accounts page, the register form holding ``values`` and ``error`` above it."""
    html = render_template(
        "console/provider_accounts.html",
        caller=caller,
        accounts=list_provider_accounts(session=session, org_id=caller.org_id),
        providers=PROVIDER_NAMES,
        readers={
            option: [provider for provider in PROVIDER_NAMES if option in options_read(provider)]
            for option in OPTION_NAMES
        },
        values=values or {"active": "true"},
        webhook_url=webhook_url,
        error=error,
    )
    return html, status


def render_account(
    session: Session,
    caller: Caller,
    account: AccountView,
    *,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """An account's page: its form (its values unless ``values``), its secrets (and
    ``account.new_secret`` once), ``notice`` or ``error`` on top."""
    current = {
        "name": account.name or "",
        "merchant_reference_key": account.merchant_reference_key,
        PAYOUT_ARRIVAL_DAYS: str(account.payout_arrival_business_days),
        **{flag: "true" for flag in ("active", "manual_capture") if getattr(account, flag)},
        "fees": fee_rows(account.fee_schedule),
    }
    html = render_template(
        "console/provider_account.html",
        caller=caller,
        account=account,
        url=webhook_url(account),
        reads=options_read(account.provider),
        fee_schedule=FEE_SCHEDULE,
        values=values or current,
        notice=notice,
        error=error,
    )
    return html, status


@blueprint.get("/provider-accounts")
@page(roles=OWNER_ROLES)
def provider_accounts(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's provider accounts (webhook URL, secrets' fingerprints), oldest
    first, and the form that registers one."""
    return render_accounts(session, caller)


@blueprint.post("/provider-accounts")
@page(roles=OWNER_ROLES)
def register_provider_account(session: Session, caller: Caller) -> tuple[str, int]:
    """Register an account (logged with the person), then its page: its webhook URL, and
    its secret once if one was generated (201)."""
    try:
        with session.begin_nested():
            account = create_provider_account(
                session=session,
                org_id=caller.org_id,
                new=parse_new_account(request.form),
                actor=Actor.of(caller),
            )
    except REFUSED as refused:
        values = {name: text for name, text in request.form.items() if name != "secret"}
        return render_accounts(
            session, caller, values=values, error=refused.detail, status=refused.status
        )
    notice = "The account is registered: configure its webhook URL at the provider."
    return render_account(session, caller, account, notice=notice, status=201)


@blueprint.get("/provider-accounts/<uuid:account_id>")
@page(roles=OWNER_ROLES)
def provider_account(session: Session, caller: Caller, account_id: uuid.UUID) -> tuple[str, int]:
    """One account (NotFound in another organisation), its form and its secrets."""
    account = show_provider_account(session=session, org_id=caller.org_id, account_id=account_id)
    notice = NOTICES.get(parse_query(AccountQuery).done or "")
    return render_account(session, caller, account, notice=notice)


def _change(
    session: Session, caller: Caller, account_id: uuid.UUID, change: AccountChange
) -> AccountView:
    return change_provider_account(
        session=session,
        account_id=account_id,
        org_id=caller.org_id,
        change=change,
        actor=Actor.of(caller),
    )


def refused_page(
    session: Session,
    caller: Caller,
    account_id: uuid.UUID,
    refused: ValidationFailed | Conflict,
    values: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """The account's page as it is (its form holding ``values`` when given), with why
    the change was refused and its status."""
    account = show_provider_account(session=session, org_id=caller.org_id, account_id=account_id)
    return render_account(
        session, caller, account, values=values, error=refused.detail, status=refused.status
    )


@blueprint.post("/provider-accounts/<uuid:account_id>")
@page(roles=OWNER_ROLES)
def change_account(
    session: Session, caller: Caller, account_id: uuid.UUID
) -> Response | tuple[str, int]:
    """Save the account's label, active flag and options (each change logged), then its
    page; a bad field changes nothing and shows the form again with the message."""
    provider = get_provider_account(
        session=session, account_id=account_id, org_id=caller.org_id, lock=False
    ).provider
    try:
        with session.begin_nested():
            _change(session, caller, account_id, parse_account_change(request.form, provider))
    except REFUSED as refused:
        values = request.form.to_dict() | {"fees": submitted_fee_rows(request.form)}
        return refused_page(session, caller, account_id, refused, values)
    return redirect(url_for("console.provider_account", account_id=account_id, done="saved"), 303)


@blueprint.post("/provider-accounts/<uuid:account_id>/secrets")
@page(roles=OWNER_ROLES)
def add_secret(session: Session, caller: Caller, account_id: uuid.UUID) -> tuple[str, int]:
    """Accept one more signing secret (typed in, or generated and shown on this page
    once); both verify until the old one is retired."""
    try:
        with session.begin_nested():
            account = _change(session, caller, account_id, parse_new_secret(request.form))
    except REFUSED as refused:
        return refused_page(session, caller, account_id, refused)
    notice = "The secret is added: both secrets verify until you retire the old one."
    return render_account(session, caller, account, notice=notice)


@blueprint.post("/provider-accounts/<uuid:account_id>/secrets/retire")
@page(roles=OWNER_ROLES)
def retire_secret(
    session: Session, caller: Caller, account_id: uuid.UUID
) -> Response | tuple[str, int]:
    """Stop accepting the secret with the fingerprint; the last one cannot be (409)."""
    try:
        with session.begin_nested():
            _change(session, caller, account_id, parse_retirement(request.form))
    except REFUSED as refused:
        return refused_page(session, caller, account_id, refused)
    return redirect(url_for("console.provider_account", account_id=account_id, done="retired"), 303)
