"""The console's blueprint and what every page shares: the session cookie, the CSRF
check, the page wrapper (one unit of work and the signed-in person), security headers,
and error pages.

Every state-changing request (any POST) is checked here, before its view runs: it must
send the session's CSRF token in the form field ``csrf_token`` (before sign-in, the value
of the ``recon_csrf`` cookie: a double-submit token).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from shared.access.api_keys import OWNER_ROLES, TRIAGE_ROLES
from shared.access.console_sessions import (
    SESSION_COOKIE,
    ConsoleSession,
    check_csrf_token,
    read_session,
    session_caller,
)
from shared.models import ROLES
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError, Unauthenticated
from shared.platform.settings import get_settings
from shared.values.money import format_minor

PREFIX = "/console"
CSRF_FIELD = "csrf_token"
PRE_SESSION_CSRF_COOKIE = "recon_csrf"
# Nothing but this origin's own stylesheet and images; no script, no inline style, and
# no page may frame the console (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def current_session() -> ConsoleSession | None:
    """This request's console session, read once (None when signed out)."""
    if "console_session" not in g:
        g.console_session = read_session(request.cookies.get(SESSION_COOKIE))
    return g.console_session


def csrf_token() -> str:
    """The token this page's forms send: the session's, or before sign-in the
    double-submit cookie's (made now if the visitor has none)."""
    record = current_session()
    if record is not None:
        return record.csrf_token
    if "pre_session_csrf" not in g:
        g.pre_session_csrf = request.cookies.get(PRE_SESSION_CSRF_COOKIE) or secrets.token_urlsafe(
            32
        )
    return g.pre_session_csrf


def accepts_upload(limit: Callable[[], int]) -> Callable:
    """Mark a page that takes an uploaded file of at most ``limit()`` bytes (a setting),
    instead of the application's MAX_BODY_BYTES: set before the CSRF check reads the form."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        view.upload_limit = limit  # copied onto the page wrapper by functools.wraps
        return view

    return decorator


@blueprint.before_request
def _check_csrf() -> None:
    if request.method not in STATE_CHANGING:
        return
    limit = getattr(current_app.view_functions.get(request.endpoint), "upload_limit", None)
    if limit is not None:
        request.max_content_length = limit()
    record = current_session()
    expected = record.csrf_token if record else request.cookies.get(PRE_SESSION_CSRF_COOKIE, "")
    # An empty expected token (no cookie at all) must not match an empty field.
    check_csrf_token(expected or secrets.token_urlsafe(32), request.form.get(CSRF_FIELD))


def set_cookie(response: Response, name: str, value: str, **options: Any) -> None:
    """Set a console cookie: HttpOnly, SameSite=Lax unless told, Secure behind HTTPS, for
    the console's paths unless told (the session's is for the whole site: the API takes
    it too)."""
    response.set_cookie(
        name,
        value,
        path=options.pop("path", PREFIX),
        httponly=True,
        secure=get_settings().console_secure_cookies,
        samesite=options.pop("samesite", "Lax"),
        **options,
    )


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The set-password page's URL holds a one-time token: never send it on.
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    if "pre_session_csrf" in g and request.cookies.get(PRE_SESSION_CSRF_COOKIE) != (
        g.pre_session_csrf
    ):
        set_cookie(response, PRE_SESSION_CSRF_COOKIE, g.pre_session_csrf, samesite="Strict")
    return response


def page(*, roles: tuple[str, ...] = ROLES) -> Callable:
    """Run a page in one unit of work with the signed-in person (``caller``) of one of
    ``roles``: signed out → the sign-in page; another role → the 403 page."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            with unit_of_work() as session:
                caller = session_caller(session=session, record=current_session(), roles=roles)
                return view(session=session, caller=caller, **kwargs)

        wrapper.console_roles = roles  # read by the auth-matrix test
        return wrapper

    return decorator


def safe_next(target: str | None) -> str:
    """``target`` if it is a console path of this site, else the queue (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith(f"{PREFIX}/"):
            return target
    return url_for("console.queue")


@blueprint.app_template_filter("money")
def _money(amount_minor: int | None, currency: str) -> str:
    return "" if amount_minor is None else f"{format_minor(amount_minor, currency)} {currency}"


@blueprint.app_context_processor
def _layout_values() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "csrf_field": CSRF_FIELD,
        "triage_roles": TRIAGE_ROLES,
        "owner_roles": OWNER_ROLES,
    }


@blueprint.errorhandler(Unauthenticated)
def _sign_in_first(error: Unauthenticated) -> Response:
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("console.login", next=target), code=303)


@blueprint.errorhandler(DomainError)
def _error_page(error: DomainError) -> tuple[str, int]:
    return render_template("console/error.html", error=error), error.status


class FileTooLarge(DomainError, status=413, title="File too large", type_slug="file-too-large"):
    """An upload over the page's limit, as the console's error page shows it."""


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    limit = request.max_content_length
    refused = FileTooLarge(f"the file is larger than the {limit:,} bytes this page accepts")
    return _error_page(refused)
