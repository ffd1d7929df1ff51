"""Console sessions: signing in (throttled), the server-side session, and who it is.

A session lives in Redis under the SHA-256 of its id, so the store never holds a usable
cookie; ending it is deleting that key. Its key expires after
``CONSOLE_SESSION_IDLE_SECONDS`` without a request (each read pushes the expiry back), and
a session older than ``CONSOLE_SESSION_MAX_SECONDS`` is ended whatever its use. Each
session carries its own CSRF token. The person is read from the database on every
request, so a disabled person or a changed role takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import asdict, dataclass

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller, check_role
from shared.access.users import InvalidCredentials, check_password, normalise_email
from shared.models import User
from shared.platform.errors import Forbidden, ServiceUnavailable, Unauthenticated, ValidationFailed
from shared.platform.logs import get_logger
from shared.platform.rate_limits import FailureLimit, check_not_blocked, record_failure
from shared.platform.redis_store import shared_redis
from shared.platform.settings import get_settings

SESSION_COOKIE = "recon_session"
CSRF_HEADER = "X-CSRF-Token"
KEY_PREFIX = "recon:console-session"
USER_ACTOR_PREFIX = "user:"

log = get_logger(__name__)


@dataclass(frozen=True)
class ConsoleSession:
    """What the store keeps for one signed-in session."""

    user_id: str
    org_id: str
    csrf_token: str
    started_at: float  # seconds since the epoch


@dataclass(frozen=True)
class SignedIn:
    """A new session: ``session_id`` goes in the cookie and nowhere else."""

    session_id: str
    session: ConsoleSession
    user: User


def _key(session_id: str) -> str:
    return f"{KEY_PREFIX}:{hashlib.sha256(session_id.encode()).hexdigest()}"


def _store_unavailable(error: RedisError) -> ServiceUnavailable:
    log.warning("console_session.store_unavailable", error=type(error).__name__)
    return ServiceUnavailable("the session store (Redis) does not answer; retry shortly")


def login_limits() -> tuple[FailureLimit, FailureLimit]:
    """Failed sign-ins allowed per account and per address (CONSOLE_LOGIN_* settings)."""
    settings = get_settings()
    window = settings.console_login_window_seconds
    return (
        FailureLimit("console-login-account", settings.console_login_max_failures, window),
        FailureLimit("console-login-address", settings.console_login_address_max_failures, window),
    )


def _account_client(email: str) -> str:
    # The counter's key (and the limiter's log line) names the account by a digest, not
    # by the address someone typed.
    try:
        email = normalise_email(email)
    except ValidationFailed:
        email = email.strip().lower()
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def sign_in(*, session: Session, email: str, password: str, address: str) -> SignedIn:
    """A new session for the person whose email and password these are.

    TooManyAttempts (429) while the account or the address has failed too often in the
    window, even with the right password; InvalidCredentials (one answer whether or not
    the email exists, and every failure counts for both). Always a new session id: one a
    visitor had before signing in is never promoted (session fixation).
    """
    account_limit, address_limit = login_limits()
    account = _account_client(email)
    check_not_blocked(address_limit, address)
    check_not_blocked(account_limit, account)
    try:
        user = check_password(session=session, email=email, password=password)
    except InvalidCredentials:
        record_failure(address_limit, address)
        record_failure(account_limit, account)
        raise
    return start_session(user)


def start_session(user: User) -> SignedIn:
    """Store a new session for ``user`` with a fresh id and CSRF token."""
    session_id = secrets.token_urlsafe(32)
    record = ConsoleSession(
        user_id=str(user.id),
        org_id=str(user.org_id),
        csrf_token=secrets.token_urlsafe(32),
        started_at=time.time(),
    )
    idle = get_settings().console_session_idle_seconds
    try:
        shared_redis().set(_key(session_id), json.dumps(asdict(record)), ex=idle)
    except RedisError as error:
        raise _store_unavailable(error) from None
    log.info("console_session.started", user_id=str(user.id))
    return SignedIn(session_id=session_id, session=record, user=user)


def read_session(session_id: str | None) -> ConsoleSession | None:
    """The session ``session_id`` names, its idle expiry pushed back; None when there is
    none, it went idle, or it passed its absolute lifetime (then it is ended)."""
    if not session_id:
        return None
    settings = get_settings()
    key = _key(session_id)
    try:
        stored = shared_redis().getex(key, ex=settings.console_session_idle_seconds)
    except RedisError as error:
        raise _store_unavailable(error) from None
    if stored is None:
        return None
    record = ConsoleSession(**json.loads(stored))
    if time.time() - record.started_at > settings.console_session_max_seconds:
        end_session(session_id)
        return None
    return record


def end_session(session_id: str | None) -> None:
    """End the session (signing out); nothing happens for one that does not exist."""
    if not session_id:
        return
    try:
        shared_redis().delete(_key(session_id))
    except RedisError as error:
        raise _store_unavailable(error) from None


def session_caller(
    *, session: Session, record: ConsoleSession | None, roles: tuple[str, ...]
) -> Caller:
    """The person behind a console session as a Caller (actor ``user:<id>``, their name).

    Unauthenticated when there is no session or the person is disabled (or gone);
    Forbidden when their role is not one of ``roles``.
    """
    if record is None:
        raise Unauthenticated("sign in to the console, or send an API key")
    user = session.get(User, uuid.UUID(record.user_id))
    if user is None or user.disabled_at is not None or str(user.org_id) != record.org_id:
        raise Unauthenticated("this session has ended: sign in again")
    check_role(user.role, roles, "person")
    return Caller(
        actor=f"{USER_ACTOR_PREFIX}{user.id}",
        actor_name=user.name,
        org_id=user.org_id,
        role=user.role,
    )


def person_id(caller: Caller) -> uuid.UUID | None:
    """The id of the person behind ``caller`` (None for an API key)."""
    prefix, _, user_id = caller.actor.partition(USER_ACTOR_PREFIX)
    return uuid.UUID(user_id) if not prefix and user_id else None


def check_csrf_token(expected: str, sent: str | None) -> None:
    """Forbidden (403) unless ``sent`` is ``expected`` (compared in constant time): every
    state-changing request made with a session cookie sends the session's token."""
    if not hmac.compare_digest((sent or "").encode(), expected.encode()):
        raise Forbidden("this request lacks its CSRF token: reload the page and try again")
