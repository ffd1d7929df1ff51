"""The daily endpoint's token: compared in constant time, and guessing it is rate limited."""

from __future__ import annotations

import hmac

from shared.platform.errors import ServiceUnavailable, Unauthenticated
from shared.platform.rate_limits import FailureLimit, check_not_blocked, record_failure
from shared.platform.settings import get_settings

TOKEN_HEADER = "x-reconciliation-token"  # noqa: S105 - a header name


def daily_token_limit() -> FailureLimit:
    """Wrong daily tokens allowed per client and window (DAILY_TOKEN_* settings)."""
    settings = get_settings()
    return FailureLimit(
        name="daily-token",
        limit=settings.daily_token_max_failures,
        window_seconds=settings.daily_token_window_seconds,
    )


def check_daily_token(*, sent: str | None, client: str) -> None:
    """Return only if ``sent`` is RECONCILIATION_DAILY_TOKEN and ``client`` is not blocked.

    503 while no token is configured; 429 (Retry-After) once ``client`` sent
    DAILY_TOKEN_MAX_FAILURES wrong tokens in the window, even with the right one; 401 for
    a missing or wrong token (counted). A header sent twice arrives joined (``a, a``)
    and is therefore wrong.
    """
    configured = get_settings().reconciliation_daily_token
    if configured is None:
        raise ServiceUnavailable("RECONCILIATION_DAILY_TOKEN is not configured")
    limit = daily_token_limit()
    check_not_blocked(limit, client)
    expected = configured.get_secret_value().encode()
    if not hmac.compare_digest((sent or "").encode(), expected):
        record_failure(limit, client)
        raise Unauthenticated(f"send the daily token in the {TOKEN_HEADER} header")
