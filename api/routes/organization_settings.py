"""The organisation's settings: read them (owner, manager), change them (owner), and
read the log of every change.

``GET`` answers ``ETag: "<settings_version>"``; ``PATCH`` must send it back in
``If-Match`` (428 without it, 412 when someone changed the settings since).
"""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import Header, documented
from api.requests import if_match_version, parse_json_body, parse_query
from api.responses import json_response
from api.settings_schemas import (
    SettingsHistoryQuery,
    SettingsLogPage,
    SettingsOut,
)
from shared.access.api_keys import OWNER_ROLES, TRIAGE_ROLES, Caller
from shared.access.organizations import get_organization
from shared.access.settings import SettingsChange, apply_settings_change
from shared.access.settings_log import Actor, list_settings_history
from shared.models import Organization

blueprint = Blueprint("settings", __name__)

SETTINGS = "/billing/settings"
IF_MATCH_REQUIRED = Header(
    "If-Match",
    'The settings_version this change is based on ("3" or 3): missing → 428, stale → 412.',
    required=True,
)


def settings_response(organization: Organization) -> Response:
    """The settings as JSON with their version as the ETag."""
    body = SettingsOut.model_validate(organization)
    response = json_response(body)
    response.headers["ETag"] = f'"{body.settings_version}"'
    return response


@blueprint.get(SETTINGS)
@documented(responses={200: SettingsOut})
@endpoint(roles=TRIAGE_ROLES)
def show_settings(session: Session, caller: Caller) -> Response:
    """The organisation's settings, with ``settings_version`` as the ETag."""
    return settings_response(get_organization(session=session, org_id=caller.org_id))


@blueprint.patch(SETTINGS)
@documented(
    body=SettingsChange,
    responses={200: SettingsOut},
    headers=(IF_MATCH_REQUIRED,),
    errors=(400, 412, 428),
)
@endpoint(roles=OWNER_ROLES)
def change_settings(session: Session, caller: Caller) -> Response:
    """Change some settings; each changed field is logged and the version bumped.

    No restart: every process (the workers that match events included) uses the change
    within 5 seconds of its commit, and the next period run reads it.
    """
    expected = if_match_version(required=True)
    organization = apply_settings_change(
        session=session,
        org_id=caller.org_id,
        change=parse_json_body(SettingsChange),
        actor=Actor.of(caller),
        expected_version=expected,
    )
    return settings_response(organization)


@blueprint.get(f"{SETTINGS}/history")
@documented(query=SettingsHistoryQuery, responses={200: SettingsLogPage}, errors=(400,))
@endpoint(roles=TRIAGE_ROLES)
def settings_history(session: Session, caller: Caller) -> Response:
    """Every change of the organisation's settings and provider accounts, newest first."""
    query = parse_query(SettingsHistoryQuery)
    page = list_settings_history(
        session=session, org_id=caller.org_id, cursor=query.cursor, limit=query.limit
    )
    return json_response(SettingsLogPage.model_validate(page, from_attributes=True))
