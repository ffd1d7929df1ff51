"""The organisation's provider accounts (owner only): list, register, change, rotate secrets.

A generated secret is answered once, in the response of the request that generated it;
afterwards a secret is only ever shown by its fingerprint.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import documented
from api.requests import parse_json_body
from api.responses import json_response
from api.settings_schemas import AccountList, AccountWritten
from shared.access.api_keys import OWNER_ROLES, Caller
from shared.access.settings_log import Actor
from shared.providers.accounts import (
    AccountChange,
    NewAccount,
    change_provider_account,
    create_provider_account,
    list_provider_accounts,
)

blueprint = Blueprint("provider_accounts", __name__)

ACCOUNTS = "/billing/provider-accounts"


@blueprint.get(ACCOUNTS)
@documented(responses={200: AccountList})
@endpoint(roles=OWNER_ROLES)
def provider_accounts(session: Session, caller: Caller) -> Response:
    """The organisation's provider accounts, each secret by its fingerprint."""
    accounts = list_provider_accounts(session=session, org_id=caller.org_id)
    return json_response(AccountList.model_validate({"items": accounts}, from_attributes=True))


@blueprint.post(ACCOUNTS)
@documented(body=NewAccount, responses={201: AccountWritten})
@endpoint(roles=OWNER_ROLES)
def register_provider_account(session: Session, caller: Caller) -> Response:
    """Register a provider account; answers its webhook path, and its secret once if
    generated (send none to have one generated)."""
    account = create_provider_account(
        session=session,
        org_id=caller.org_id,
        new=parse_json_body(NewAccount),
        actor=Actor.of(caller),
    )
    return json_response(AccountWritten.model_validate(account), 201)


@blueprint.patch(f"{ACCOUNTS}/<uuid:account_id>")
@documented(body=AccountChange, responses={200: AccountWritten}, errors=(409,))
@endpoint(roles=OWNER_ROLES)
def change_account(session: Session, caller: Caller, account_id: uuid.UUID) -> Response:
    """Change an account: ``name``, ``active``, its options, ``add_secret`` (true: a
    generated one, answered once; or the secret), ``retire_secret`` (a fingerprint; the
    last secret cannot be retired: 409)."""
    account = change_provider_account(
        session=session,
        account_id=account_id,
        org_id=caller.org_id,
        change=parse_json_body(AccountChange),
        actor=Actor.of(caller),
    )
    return json_response(AccountWritten.model_validate(account))
