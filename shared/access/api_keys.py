"""API keys: random bearer tokens, stored only as a SHA-256 hash, compared in constant time.

The keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to
brute-force, and lookup by hash stays one indexed query (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.models import ROLES, ApiKey
from shared.platform.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed

KEY_PREFIX = "rk_"
DISPLAY_PREFIX_LENGTH = 11
MAX_KEY_LENGTH = 128
TRIAGE_ROLES = ("owner", "manager")
READ_ROLES = ("owner", "manager", "viewer")  # the evidence of verdicts: read-only routes
OWNER_ROLES = ("owner",)
LAST_USED_RESOLUTION = text("interval '1 minute'")
_LAST_USED_IS_STALE = or_(
    ApiKey.last_used_at.is_(None), ApiKey.last_used_at < func.now() - LAST_USED_RESOLUTION
)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``secret`` is shown once and never stored."""

    api_key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    *, session: Session, org_id: uuid.UUID, role: str, name: str | None = None
) -> IssuedKey:
    """Create a key of ``role`` for the organisation; the plaintext is only in the result."""
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}")
    get_organization(session=session, org_id=org_id)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        org_id=org_id,
        name=name or f"{role} key",
        role=role,
        key_hash=hash_key(secret),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
    )
    session.add(api_key)
    session.flush()
    return IssuedKey(api_key=api_key, secret=secret)


def revoke_api_key(*, session: Session, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
    api_key = session.get(ApiKey, key_id, with_for_update=True)
    if api_key is None:
        raise NotFound(f"API key {key_id} does not exist")
    if api_key.revoked_at is None:
        api_key.revoked_at = datetime.now(UTC)
    return api_key


# Built once: authentication runs on every request.
_ACTIVE_KEY = select(
    ApiKey.id,
    ApiKey.name,
    ApiKey.org_id,
    ApiKey.role,
    ApiKey.key_hash,
    _LAST_USED_IS_STALE.label("last_used_is_stale"),
).where(ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None))


def find_active_key(*, session: Session, secret: str) -> Row | None:
    """The unrevoked key whose secret is ``secret`` (id, name, org_id, role, and whether
    ``last_used_at`` is due for rewriting, on the database's clock), or None."""
    digest = hash_key(secret)
    row = session.execute(_ACTIVE_KEY, {"digest": digest}).one_or_none()
    # The lookup is by digest; comparing digests again in constant time keeps the check
    # timing-independent even if the index lookup were ever replaced by a scan.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, its organisation and role (the actor of audit entries)."""

    key_id: uuid.UUID
    key_name: str
    org_id: uuid.UUID
    role: str


def authenticate(*, session: Session, authorization: str | None, roles: tuple[str, ...]) -> Caller:
    """The caller behind an ``Authorization: Bearer`` header, allowed one of ``roles``.

    Unauthenticated (401) for a missing, malformed, unknown or revoked key; Forbidden
    (403) for a valid key of another role. ``last_used_at`` is kept to the minute.
    """
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_KEY_LENGTH:
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    api_key = find_active_key(session=session, secret=secret)
    if api_key is None:
        raise Unauthenticated("unknown or revoked API key")
    if api_key.role not in roles:
        raise Forbidden(f"a {api_key.role} key may not do this; use an {' or '.join(roles)} key")
    # Most requests come from a key used within the minute: they write nothing, and the
    # lookup above is their only statement (docs/decisions.md, "Triage API latency").
    if api_key.last_used_is_stale:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == api_key.id, _LAST_USED_IS_STALE)
            .values(last_used_at=func.now())
        )
    return Caller(
        key_id=api_key.id, key_name=api_key.name, org_id=api_key.org_id, role=api_key.role
    )
