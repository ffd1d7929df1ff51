"""RFC 9457 problem documents: the only shape an error leaves the API in."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shared.platform.errors import DomainError
from shared.platform.logs import get_logger

PROBLEM_TYPE_BASE = "https://recon.dev/problems/"
PROBLEM_JSON = "application/problem+json"

log = get_logger(__name__)


def problem(status: int, title: str, detail: str, slug: str, **extra: Any) -> Response:
    """A problem+json response."""
    body = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-").replace("'", "")


def problem_slug(error: DomainError | HTTPException) -> str:
    """The problem type (last segment of its URI) that ``error`` is answered with."""
    if isinstance(error, DomainError):
        return error.type_slug
    return _slug(error.name)


def register_problem_handlers(app: Flask) -> None:
    """Turn every exception into problem+json: domain errors, HTTP errors, the rest as 500."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        response = problem(error.status, error.title, error.detail, error.type_slug, **error.extra)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        code = error.code or 500
        title = error.name
        response = problem(code, title, error.description or title, _slug(title))
        for header in ("Allow", "Retry-After"):
            if error.get_response().headers.get(header):
                response.headers[header] = error.get_response().headers[header]
        return response

    @app.errorhandler(OperationalError)
    def _database_down(error: OperationalError) -> Response:
        log.warning("database.unavailable", error=type(error.orig).__name__)
        return _unavailable("the database is unreachable; retry shortly")

    @app.errorhandler(PoolTimeout)
    def _pool_exhausted(error: PoolTimeout) -> Response:
        log.warning("database.busy", error=type(error).__name__)
        return _unavailable("every database connection is busy; retry shortly")

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError) -> Response:
        log.error("database.error", error=type(error.orig).__name__)
        return problem(500, "Internal server error", "an unexpected error occurred", "internal")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("request.unhandled", error=type(error).__name__)
        return problem(500, "Internal server error", "an unexpected error occurred", "internal")


def _unavailable(detail: str) -> Response:
    """503 problem+json with ``Retry-After``: the request may be retried as it is."""
    response = problem(503, "Service unavailable", detail, "service-unavailable")
    response.headers["Retry-After"] = "5"
    return response
