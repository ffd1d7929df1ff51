"""Provider accounts: where webhooks come from, the secrets that sign them, and the options
that say how their events are read.

Every change is logged in the settings log (``provider_account:<id>``); a secret never
is: only its fingerprint (the first 8 hex digits of its SHA-256), by which it is shown
and retired. Once a change commits, this process's caches of the account are dropped;
other processes read it again within their cache's seconds.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.access.settings import Percent
from shared.access.settings_log import (
    OPERATOR,
    Actor,
    account_subject,
    record_change,
    record_changes,
)
from shared.models import SETTLEMENT_PROVIDERS, ProviderAccount, SettingsLogEntry
from shared.platform.cache import PROVIDER_ACCOUNT, forget_everywhere
from shared.platform.db import after_commit
from shared.platform.errors import Conflict, NotFound, ValidationFailed
from shared.providers.interface import AccountOptions
from shared.providers.registry import PROVIDER_NAMES, provider_named
from shared.values.changes import PartialChange
from shared.values.money import MAX_AMOUNT_MINOR
from shared.values.text import check_identifier

FINGERPRINT_LENGTH = 8
MAX_SECRET_LENGTH = 512
MAX_NAME_LENGTH = 200
# The settings log's words for secret changes (no secret in them).
SECRET_ADDED = "secret added"  # noqa: S105
SECRET_RETIRED = "secret retired"  # noqa: S105
SECRET_FIELD = "signing_secret"  # noqa: S105
# The options of an account: how its events are read (AccountOptions, each provider names
# those it reads), and the fee schedule its settlement lines are checked against (FeeMismatch:
# read for the providers whose settlement reports recon imports).
FEE_SCHEDULE = "fee_schedule"
# Business days after a payout's expected arrival before it counts as not received
# (PayoutNotReceived, shared/bank/): a setting of the providers whose payouts recon sees.
PAYOUT_ARRIVAL_DAYS = "payout_arrival_business_days"
SETTLEMENT_OPTIONS = (FEE_SCHEDULE, PAYOUT_ARRIVAL_DAYS)
OPTION_NAMES = (*(option.name for option in fields(AccountOptions)), *SETTLEMENT_OPTIONS)
MAX_PAYOUT_ARRIVAL_DAYS = 30

Name = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(check_identifier)
]
# A Stripe metadata key: at most 40 characters (Stripe's limit), no square brackets.
MetadataKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,40}$")]
SecretText = Annotated[
    str, Field(min_length=1, max_length=MAX_SECRET_LENGTH), AfterValidator(check_identifier)
]


class FeeRate(BaseModel):
    """The fees a provider is expected to take from a line in one settlement currency:
    ``percent`` of its gross plus ``fixed_minor``; more than ``tolerance_minor`` above that
    is a FeeMismatch."""

    model_config = ConfigDict(extra="forbid")

    percent: Percent
    fixed_minor: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_MINOR)] = 0
    tolerance_minor: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_MINOR)] = 0


def _stored_schedule(schedule: dict[str, FeeRate]) -> dict[str, dict[str, Any]]:
    """The schedule as stored (JSON; the percentage as exact decimal text)."""
    return {
        currency: {"percent": str(rate.percent), "fixed_minor": rate.fixed_minor,
                   "tolerance_minor": rate.tolerance_minor}
        for currency, rate in sorted(schedule.items())
    }  # fmt: skip


# Settlement currency → its FeeRate, stored as plain JSON.
FeeSchedule = Annotated[
    dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], FeeRate],
    Field(min_length=1, max_length=200),
    AfterValidator(_stored_schedule),
]


PayoutArrivalDays = Annotated[StrictInt, Field(ge=0, le=MAX_PAYOUT_ARRIVAL_DAYS)]


def _true(value: bool) -> bool:
    if value is not True:
        raise ValueError("send true to have a secret generated, or the new secret")
    return value


# ``true``, and only the JSON true: have a secret generated.
GenerateSecret = Annotated[StrictBool, AfterValidator(_true), WithJsonSchema({"const": True})]
Fingerprint = Annotated[str, Field(pattern=rf"^[0-9a-f]{{{FINGERPRINT_LENGTH}}}$")]


class NewAccount(BaseModel):
    """A provider account to register. Without ``secret`` one is generated and answered
    once. An option only for the providers that read it (``AccountOptions``)."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal[PROVIDER_NAMES]
    name: Name | None = None
    secret: SecretText | None = None
    active: StrictBool = True
    merchant_reference_key: MetadataKey | None = Field(default=None, description="Stripe only")
    manual_capture: StrictBool | None = Field(default=None, description="Adyen only")
    fee_schedule: FeeSchedule | None = Field(default=None, description="Stripe and Adyen")
    payout_arrival_business_days: PayoutArrivalDays | None = Field(
        default=None, description="Stripe and Adyen"
    )


class AccountChange(PartialChange):
    """A change of an account: its label, whether it receives webhooks, its options, and
    its secrets (``add_secret``: true for a generated one, answered once, or the new
    secret; ``retire_secret``: the fingerprint of one to stop accepting). A null
    ``fee_schedule`` removes it."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"fee_schedule"})

    name: Name | None = None
    active: StrictBool | None = None
    merchant_reference_key: MetadataKey | None = Field(default=None, description="Stripe only")
    manual_capture: StrictBool | None = Field(default=None, description="Adyen only")
    fee_schedule: FeeSchedule | None = Field(default=None, description="Stripe and Adyen")
    payout_arrival_business_days: PayoutArrivalDays | None = Field(
        default=None, description="Stripe and Adyen"
    )
    add_secret: GenerateSecret | SecretText | None = None
    retire_secret: Fingerprint | None = None


@dataclass(frozen=True)
class SecretView:
    """A signing secret as it may be shown: its fingerprint, and when it was added (None
    if before the settings log recorded it)."""

    fingerprint: str
    added_at: datetime | None


@dataclass(frozen=True)
class AccountView:
    """A provider account as it may be shown: everything but its secrets' values."""

    id: uuid.UUID
    provider: str
    name: str | None
    active: bool
    merchant_reference_key: str
    manual_capture: bool
    fee_schedule: dict[str, Any] | None
    payout_arrival_business_days: int
    webhook_path: str
    secrets: list[SecretView]
    created_at: datetime
    new_secret: str | None = None  # only in the answer of the change that added it


def webhook_path(account: ProviderAccount) -> str:
    """The path a provider posts this account's webhooks to."""
    return f"/webhooks/{account.provider}/{account.id}"


def secret_fingerprint(secret: str) -> str:
    """What identifies a secret in answers and logs without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def _checked_secret(provider: str, secret: str, field: str = "secret") -> str:
    secret = secret.strip()
    try:
        if not secret:
            raise ValidationFailed("signing secret must not be empty")
        provider_named(provider).check_secret(secret)
    except ValidationFailed as error:
        raise ValidationFailed(
            error.detail, errors=[{"field": field, "message": error.detail}]
        ) from None
    return secret


def options_read(provider: str) -> set[str]:
    """The options accounts of ``provider`` read (and may be given)."""
    settlement = set(SETTLEMENT_OPTIONS) if provider in SETTLEMENT_PROVIDERS else set()
    return set(provider_named(provider).account_options) | settlement


def _check_options(provider: str, named: set[str]) -> None:
    """ValidationFailed naming each option ``provider`` does not read."""
    foreign = sorted(named & set(OPTION_NAMES) - options_read(provider))
    if foreign:
        errors = [
            {"field": option, "message": f"{provider} accounts do not read {option}"}
            for option in foreign
        ]
        raise ValidationFailed("; ".join(e["message"] for e in errors), errors=errors)


def _snapshot(account: ProviderAccount) -> dict[str, Any]:
    """What the log compares before and after a change: the label, the flag and the
    options the account's provider reads (no secrets)."""
    read = sorted(options_read(account.provider))
    return {name: getattr(account, name) for name in ("name", "active", *read)}


def _log_secret(
    session: Session, account: ProviderAccount, actor: Actor, change: str, fp: str
) -> None:
    record_change(
        session=session,
        org_id=account.org_id,
        actor=actor,
        subject=account_subject(account.id),
        field=SECRET_FIELD,
        old=None,
        new={"change": change, "fingerprint": fp},
    )


def _forget_after_commit(session: Session, account: ProviderAccount) -> None:
    account_id = account.id
    after_commit(session, lambda: forget_everywhere(PROVIDER_ACCOUNT, account_id))


def _register(session: Session, account: ProviderAccount, actor: Actor) -> ProviderAccount:
    """Insert a new account and log it: its settings, and its first secret's fingerprint."""
    session.add(account)
    session.flush()
    record_changes(
        session=session,
        org_id=account.org_id,
        actor=actor,
        subject=account_subject(account.id),
        before={},
        after={"provider": account.provider, **_snapshot(account)},
    )
    fingerprint = secret_fingerprint(account.signing_secrets[0])
    _log_secret(session, account, actor, SECRET_ADDED, fingerprint)
    return account


def add_provider_account(
    *,
    session: Session,
    org_id: uuid.UUID,
    provider: str,
    secret: str,
    name: str | None = None,
    actor: Actor = OPERATOR,
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
    return _register(session, account, actor)


def create_provider_account(
    *, session: Session, org_id: uuid.UUID, new: NewAccount, actor: Actor
) -> AccountView:
    """Register the account ``new`` describes; its view answers a generated secret once."""
    named = {option for option in OPTION_NAMES if getattr(new, option) is not None}
    _check_options(new.provider, named)
    generated = None if new.secret is not None else provider_named(new.provider).new_secret()
    account = ProviderAccount(
        org_id=org_id,
        provider=new.provider,
        name=new.name,
        active=new.active,
        signing_secrets=[_checked_secret(new.provider, new.secret or generated)],
        **{option: getattr(new, option) for option in named},
    )
    return _view(session, _register(session, account, actor), new_secret=generated)


def get_provider_account(
    *,
    session: Session,
    account_id: uuid.UUID,
    org_id: uuid.UUID | None = None,
    lock: bool = True,
) -> ProviderAccount:
    """The provider account ``account_id`` (of ``org_id`` when given), locked for update
    unless told, or NotFound."""
    account = session.get(ProviderAccount, account_id, with_for_update=lock)
    if account is None or (org_id is not None and account.org_id != org_id):
        raise NotFound(f"provider account {account_id} does not exist")
    return account


def change_provider_account(
    *,
    session: Session,
    account_id: uuid.UUID,
    change: AccountChange,
    actor: Actor,
    org_id: uuid.UUID | None = None,
) -> AccountView:
    """Apply ``change`` to the account and log each change; its view answers a generated
    secret once. The last secret cannot be retired (409): add the new one first."""
    account = get_provider_account(session=session, account_id=account_id, org_id=org_id)
    values = change.changes()
    _check_options(account.provider, set(values))
    before = _snapshot(account)
    for name in ("name", "active", *OPTION_NAMES):
        if name in values:
            setattr(account, name, values[name])
    record_changes(
        session=session,
        org_id=account.org_id,
        actor=actor,
        subject=account_subject(account.id),
        before=before,
        after=_snapshot(account),
    )
    generated = None
    if change.add_secret is not None:
        generated = (
            provider_named(account.provider).new_secret() if change.add_secret is True else None
        )
        _add_secret(session, account, actor, generated or str(change.add_secret))
    if change.retire_secret is not None:
        _retire_secret(session, account, actor, change.retire_secret)
    _forget_after_commit(session, account)
    session.flush()
    return _view(session, account, new_secret=generated)


def _add_secret(session: Session, account: ProviderAccount, actor: Actor, secret: str) -> None:
    secret = _checked_secret(account.provider, secret, field="add_secret")
    if secret in account.signing_secrets:
        raise Conflict("that secret is already active on this account")
    account.signing_secrets = [*account.signing_secrets, secret]
    _log_secret(session, account, actor, SECRET_ADDED, secret_fingerprint(secret))


def _retire_secret(
    session: Session, account: ProviderAccount, actor: Actor, fingerprint: str
) -> None:
    matching = [s for s in account.signing_secrets if secret_fingerprint(s) == fingerprint]
    if len(matching) != 1:
        message = "no active secret of this account has this fingerprint"
        raise ValidationFailed(message, errors=[{"field": "retire_secret", "message": message}])
    if len(account.signing_secrets) == 1:
        raise Conflict("cannot retire the only secret: add the new one first")
    account.signing_secrets = [s for s in account.signing_secrets if s != matching[0]]
    _log_secret(session, account, actor, SECRET_RETIRED, fingerprint)


def show_provider_account(
    *, session: Session, org_id: uuid.UUID, account_id: uuid.UUID
) -> AccountView:
    """One of the organisation's provider accounts, secrets as fingerprints (NotFound in
    another organisation). Reads only."""
    account = get_provider_account(
        session=session, account_id=account_id, org_id=org_id, lock=False
    )
    return _view(session, account)


def list_provider_accounts(*, session: Session, org_id: uuid.UUID) -> list[AccountView]:
    """The organisation's provider accounts, oldest first, secrets as fingerprints."""
    query = select(ProviderAccount).where(ProviderAccount.org_id == org_id)
    accounts = session.scalars(query.order_by(ProviderAccount.created_at, ProviderAccount.id))
    added = _secrets_added_at(session, org_id)
    return [_view(session, account, added=added) for account in accounts]


def _secrets_added_at(session: Session, org_id: uuid.UUID) -> dict[tuple[str, str], datetime]:
    """(subject, fingerprint) → when the settings log last recorded that secret added."""
    query = select(
        SettingsLogEntry.subject, SettingsLogEntry.new_value, SettingsLogEntry.created_at
    ).where(
        SettingsLogEntry.org_id == org_id,
        SettingsLogEntry.field == SECRET_FIELD,
        SettingsLogEntry.new_value["change"].astext == SECRET_ADDED,
    )
    rows = session.execute(query.order_by(SettingsLogEntry.created_at))
    return {(subject, value["fingerprint"]): at for subject, value, at in rows}


def _view(
    session: Session,
    account: ProviderAccount,
    *,
    new_secret: str | None = None,
    added: dict[tuple[str, str], datetime] | None = None,
) -> AccountView:
    if added is None:
        session.flush()
        added = _secrets_added_at(session, account.org_id)
    subject = account_subject(account.id)
    secrets = [
        SecretView(fp, added.get((subject, fp)))
        for fp in (secret_fingerprint(secret) for secret in account.signing_secrets)
    ]
    return AccountView(
        id=account.id,
        provider=account.provider,
        name=account.name,
        active=account.active,
        merchant_reference_key=account.merchant_reference_key,
        manual_capture=account.manual_capture,
        fee_schedule=account.fee_schedule,
        payout_arrival_business_days=account.payout_arrival_business_days,
        webhook_path=webhook_path(account),
        secrets=secrets,
        created_at=account.created_at,
        new_secret=new_secret,
    )
