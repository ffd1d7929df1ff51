"""The organisation's settings (owners): what they are, the form that changes them at the
version it was read (a stale form is a message, never an error page), and the settings
log of every change, the provider accounts' included."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from console.forms import parse_query
from console.owner_forms import (
    DELAY_FIELD,
    SettingsQuery,
    parse_settings_form,
    settings_form_values,
    submitted_settings,
)
from console.web import blueprint, page
from shared.access.api_keys import OWNER_ROLES, Caller
from shared.access.organizations import get_organization
from shared.access.settings import OrganizationSettings, apply_settings_change
from shared.access.settings_log import Actor, account_subject, list_settings_history
from shared.models import SETTLEMENT_PROVIDERS
from shared.platform.errors import PreconditionFailed, ValidationFailed
from shared.providers.accounts import list_provider_accounts
from shared.settlements.rules import DEFAULT_SETTLEMENT_DELAY_DAYS

HISTORY_PAGE_SIZE = 50
STALE = (
    "Someone changed the settings while you were editing them. These are the settings "
    "now: check them, then save again."
)
NOTICES = {"saved": "The settings are saved.", "unchanged": "Nothing changed."}


@blueprint.app_template_filter("json_value")
def _json_value(value: Any) -> str:
    """A logged value as JSON text (a missing one as a dash)."""
    return "—" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def render_settings(
    session: Session,
    caller: Caller,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The settings page: the form (its current values unless ``values``), ``error``
    above it, and a page of the settings log (the query's cursor)."""
    query = parse_query(SettingsQuery)
    organization = get_organization(session=session, org_id=caller.org_id)
    history = list_settings_history(
        session=session, org_id=caller.org_id, cursor=query.cursor, limit=HISTORY_PAGE_SIZE
    )
    accounts = list_provider_accounts(session=session, org_id=caller.org_id)
    current = settings_form_values(
        OrganizationSettings.of(organization), organization.settings_version
    )
    html = render_template(
        "console/settings.html",
        caller=caller,
        query=query,
        values=values or current,
        delay_fields={provider: DELAY_FIELD.format(provider) for provider in SETTLEMENT_PROVIDERS},
        default_delay=DEFAULT_SETTLEMENT_DELAY_DAYS,
        history=history,
        accounts={account_subject(account.id): account for account in accounts},
        notice=NOTICES.get(query.done or ""),
        error=error,
    )
    return html, status


@blueprint.get("/settings")
@page(roles=OWNER_ROLES)
def settings(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's settings in their form, and the settings log, newest first."""
    return render_settings(session, caller)


@blueprint.post("/settings")
@page(roles=OWNER_ROLES)
def change_settings(session: Session, caller: Caller) -> Response | tuple[str, int]:
    """Save the form at the version it was read (logged with the person), then show the
    settings; a stale version or a bad field changes nothing and says why."""
    try:
        with session.begin_nested():
            version, change = parse_settings_form(request.form)
            organization = apply_settings_change(
                session=session,
                org_id=caller.org_id,
                change=change,
                actor=Actor.of(caller),
                expected_version=version,
            )
    except PreconditionFailed as stale:
        return render_settings(session, caller, error=STALE, status=stale.status)
    except ValidationFailed as invalid:
        values = submitted_settings(request.form)
        return render_settings(
            session, caller, values=values, error=invalid.detail, status=invalid.status
        )
    done = "saved" if organization.settings_version != version else "unchanged"
    return redirect(url_for("console.settings", done=done), code=303)
