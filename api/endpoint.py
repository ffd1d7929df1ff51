"""The one wrapper every route goes through: one unit of work, and the caller if required."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request

from shared.access.api_keys import authenticate
from shared.platform.db import unit_of_work


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
                    kwargs["caller"] = authenticate(
                        session=session,
                        authorization=request.headers.get("Authorization"),
                        roles=roles,
                    )
                return view(session=session, **kwargs)

        wrapper.required_roles = roles  # read by the auth-matrix test and the OpenAPI spec
        return wrapper

    return decorator
