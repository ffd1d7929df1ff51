"""The people of an organisation: who they are, their passwords, and signing in.

A person is added without a password and given a one-time link (:func:`add_user`); a
reset gives another (:func:`issue_password_link`). Only the SHA-256 of a link's token is
stored, like an API key's: the token carries 256 bits of randomness. Passwords are hashed
with argon2id (argon2-cffi's defaults, RFC 9106's second recommended set), and
:func:`check_password` spends the same work whether or not the email exists.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.access.organizations import get_organization
from shared.models import ROLES, PasswordToken, User
from shared.platform.errors import Conflict, DomainError, NotFound, ValidationFailed
from shared.platform.settings import get_settings
from shared.values.text import check_identifier

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1_024
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
SET_PASSWORD_PATH = "/console/set-password"  # noqa: S105 - a path

_hasher = PasswordHasher()  # argon2id with the library's defaults (docs/decisions.md)
# Verified against when no person matches, so an unknown email costs what a known one does.
_ABSENT_HASH = _hasher.hash(secrets.token_urlsafe(32))


class InvalidCredentials(DomainError, status=401, title="Unauthenticated", type_slug="sign-in"):
    """Wrong email or password, a disabled person, or one without a password yet: one
    answer for all, so it tells nothing about which."""


class InvalidPasswordLink(
    DomainError, status=400, title="Invalid link", type_slug="invalid-password-link"
):
    """A password link that is unknown, used, expired, or of a disabled person."""


@dataclass(frozen=True)
class PasswordLink:
    """A one-time link to set a password: shown once, only its token's hash is stored."""

    user: User
    token: str
    url: str
    expires_at: datetime


def normalise_email(email: str) -> str:
    """``email`` stripped and lower-cased; ValidationFailed if it is not an address."""
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    if not at or not local or "." not in domain or len(cleaned) > MAX_EMAIL_LENGTH:
        raise ValidationFailed("email must be an e-mail address")
    return check_identifier(cleaned, field="email")


def token_digest(token: str) -> str:
    """The stored form of a password link's token."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    *, session: Session, org_id: uuid.UUID, email: str, name: str, role: str
) -> PasswordLink:
    """Add a person to the organisation, without a password: the link sets it.

    Conflict when the organisation already has someone with that email (in any case).
    """
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    user = User(
        org_id=get_organization(session=session, org_id=org_id).id,
        email=normalise_email(email),
        name=check_identifier(name, field="name"),
        role=role,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise Conflict(f"the organisation already has a person with email {user.email}") from None
    return _issue(session, user, "set")


def find_user(*, session: Session, org_id: uuid.UUID, email: str) -> User:
    """The organisation's person with ``email`` (any case), or NotFound."""
    user = session.scalars(
        select(User).where(User.org_id == org_id, User.email == normalise_email(email))
    ).one_or_none()
    if user is None:
        raise NotFound(f"no person with email {email.strip().lower()} in organisation {org_id}")
    return user


def list_users(
    *, session: Session, org_id: uuid.UUID, include_disabled: bool = False
) -> list[User]:
    """The organisation's people who may sign in (and those disabled when asked), by name."""
    query = select(User).where(User.org_id == org_id)
    if not include_disabled:
        query = query.where(User.disabled_at.is_(None))
    return list(session.scalars(query.order_by(User.name, User.email)))


def issue_password_link(*, session: Session, org_id: uuid.UUID, email: str) -> PasswordLink:
    """A new one-time link to (re)set the person's password; earlier unused links stop
    working. The current password keeps working until the link is used."""
    user = find_user(session=session, org_id=org_id, email=email)
    if user.disabled_at is not None:
        raise Conflict(f"{user.email} is disabled")
    return _issue(session, user, "reset")


def _issue(session: Session, user: User, purpose: str) -> PasswordLink:
    now = datetime.now(UTC)
    session.execute(
        update(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
        .values(used_at=now)
    )
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.console_password_link_seconds)
    session.add(
        PasswordToken(
            org_id=user.org_id,
            user_id=user.id,
            purpose=purpose,
            token_hash=token_digest(token),
            expires_at=expires_at,
        )
    )
    session.flush()
    url = f"{settings.console_base_url}{SET_PASSWORD_PATH}?token={token}"
    return PasswordLink(user=user, token=token, url=url, expires_at=expires_at)


def person_of_link(*, session: Session, token: str) -> User:
    """The person a still-valid link is for (its token unused, unexpired, person enabled),
    or InvalidPasswordLink. Reads only."""
    return _valid_link(session, token)[1]


def set_password(*, session: Session, token: str, password: str) -> User:
    """Set the password of the link's person and use the link up (once only)."""
    check_password_rules(password)
    link, user = _valid_link(session, token, lock=True)
    link.used_at = datetime.now(UTC)
    user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def _valid_link(session: Session, token: str, lock: bool = False) -> tuple[PasswordToken, User]:
    query = (
        select(PasswordToken, User)
        .join(User, User.id == PasswordToken.user_id)
        .where(PasswordToken.token_hash == token_digest(token or ""))
    )
    row = session.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise InvalidPasswordLink("this link is unknown: ask for a new one")
    link, user = row
    if link.used_at is not None or link.expires_at <= datetime.now(UTC):
        raise InvalidPasswordLink("this link was used or has expired: ask for a new one")
    if user.disabled_at is not None:
        raise InvalidPasswordLink("this account is disabled")
    return link, user


def check_password_rules(password: str) -> None:
    """ValidationFailed unless ``password`` is 12 to 1,024 characters (NIST SP 800-63B:
    length, no composition rules)."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )


def disable_user(
    *, session: Session, org_id: uuid.UUID, email: str, by_user_id: uuid.UUID | None = None
) -> User:
    """Stop a person signing in (idempotent); their sessions end at their next request and
    their unused links stop working.

    Conflict when ``by_user_id`` (the person acting, if a person) is that person: nobody
    disables themselves, so an organisation's owner cannot lock the owners out by mistake.
    """
    user = find_user(session=session, org_id=org_id, email=email)
    if user.id == by_user_id:
        raise Conflict("you cannot disable yourself: ask another owner")
    if user.disabled_at is None:
        user.disabled_at = datetime.now(UTC)
        session.execute(
            update(PasswordToken)
            .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
            .values(used_at=user.disabled_at)
        )
    session.flush()
    return user


def check_password(*, session: Session, email: str, password: str) -> User:
    """The enabled person whose email and password these are, or InvalidCredentials.

    An email may belong to people of several organisations: the oldest whose password
    matches is the one signed in. An unknown email is checked against a stand-in hash, so
    it costs the same argon2 work as a wrong password.
    """
    try:
        email = normalise_email(email)
    except ValidationFailed:
        email = ""
    candidates = session.scalars(
        select(User)
        .where(User.email == email, User.disabled_at.is_(None), User.password_hash.is_not(None))
        .order_by(User.created_at, User.id)
    ).all()
    for user in candidates:
        if _verify(user.password_hash, password):
            return user
    if not candidates:
        _verify(_ABSENT_HASH, password)
    raise InvalidCredentials("wrong email or password")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
