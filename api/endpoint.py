"""The one wrapper every route goes through: one unit of work, and the caller if required."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request
from sqlalchemy.orm import Session

from shared.access.api_keys import Caller, authenticate
from shared.access.console_sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    check_csrf_token,
    read_session,
    session_caller,
)
from shared.platform.db import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def identify_caller(*, session: Session, roles: tuple[str, ...]) -> Caller:
    """The caller of this request: the API key of its ``Authorization`` header, else the
    person of its console session cookie (whose state-changing requests must send the
    session's CSRF token in ``X-CSRF-Token``). 401 with neither, 403 for another role."""
    authorization = request.headers.get("Authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization is not None or not cookie:
        return authenticate(session=session, authorization=authorization, roles=roles)
    record = read_session(cookie)
    caller = session_caller(session=session, record=record, roles=roles)
    if request.method not in SAFE_METHODS:
        check_csrf_token(record.csrf_token, request.headers.get(CSRF_HEADER))
    return caller


def endpoint(*, roles: tuple[str, ...] | None = None) -> Callable:
    """Run the view in one transaction, passing ``session`` (and ``caller`` when ``roles``).

    The transaction commits after the view returns and before the response is sent;
    a DomainError from the view rolls it back and becomes problem+json.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            with unit_of_work() as session:
                if roles is not None:
                    kwargs["caller"] = identify_caller(session=session, roles=roles)
                return view(session=session, **kwargs)

        wrapper.required_roles = roles  # read by the auth-matrix test and the OpenAPI spec
        return wrapper

    return decorator
