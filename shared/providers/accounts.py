"""Provider accounts: where webhooks come from, and the secrets that sign them."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.models import ProviderAccount
from shared.platform.errors import Conflict, NotFound, ValidationFailed
from shared.providers.registry import provider_named


def webhook_path(account: ProviderAccount) -> str:
    """The path a provider posts this account's webhooks to."""
    return f"/webhooks/{account.provider}/{account.id}"


def _checked_secret(provider: str, secret: str) -> str:
    secret = secret.strip()
    if not secret:
        raise ValidationFailed("signing secret must not be empty")
    provider_named(provider).check_secret(secret)
    return secret


def add_provider_account(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    secret: str,
    name: str | None = None,
) -> ProviderAccount:
    """Register a provider account of the organisation with its first signing secret."""
    provider_named(provider)  # ValidationFailed for a provider that is not registered
    get_organization(session=session, org_id=org_id)
    account = ProviderAccount(
        org_id=org_id,
        provider=provider,
        name=name,
        signing_secrets=[_checked_secret(provider, secret)],
    )
    session.add(account)
    session.flush()
    return account


def get_provider_account(*, session: Session, account_id: uuid.UUID) -> ProviderAccount:
    """The provider account ``account_id``, locked for update, or NotFound."""
    account = session.get(ProviderAccount, account_id, with_for_update=True)
    if account is None:
        raise NotFound(f"provider account {account_id} does not exist")
    return account


def add_signing_secret(*, session: Session, account_id: uuid.UUID, secret: str) -> ProviderAccount:
    """Accept one more secret (rotation: both verify until the old one is removed)."""
    account = get_provider_account(session=session, account_id=account_id)
    secret = _checked_secret(account.provider, secret)
    if secret in account.signing_secrets:
        raise Conflict("that secret is already active on this account")
    account.signing_secrets = [*account.signing_secrets, secret]
    return account


def remove_signing_secret(
    *, session: Session, account_id: uuid.UUID, secret: str
) -> ProviderAccount:
    """Stop accepting ``secret``; the last remaining secret cannot be removed."""
    account = get_provider_account(session=session, account_id=account_id)
    secret = secret.strip()
    if secret not in account.signing_secrets:
        raise NotFound("that secret is not active on this account")
    if len(account.signing_secrets) == 1:
        raise Conflict("cannot remove the only secret: add the new one first")
    account.signing_secrets = [s for s in account.signing_secrets if s != secret]
    return account
